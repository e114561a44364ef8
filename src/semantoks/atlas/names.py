"""Parcel name -> functional network: CBIG Schaefer-2018 names (2018 and v0.14.3 spellings) and Tian names."""

import re

import pandas as pd

from semantoks.errors import SemantoksError

YEO7_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")
YEO17_NETWORKS = (
    "VisCent", "VisPeri", "SomMotA", "SomMotB", "DorsAttnA", "DorsAttnB", "SalVentAttnA", "SalVentAttnB",
    "LimbicA", "LimbicB", "ContA", "ContB", "ContC", "DefaultA", "DefaultB", "DefaultC", "TempPar",
)
SUBCORTEX = "Subcortex"
UNASSIGNED = "Unassigned"
LABEL_COLUMNS = ("index", "name", "network", "hemisphere")

# the 2018 names call both limbic networks "Limbic"; the region tells them apart (v0.14.3 spells it out)
LIMBIC17_BY_REGION = {"TempPole": "LimbicA", "OFC": "LimbicB"}

CBIG_NAME = re.compile(r"(?P<k>7|17)Networks_(?P<hemi>LH|RH)_(?P<network>[A-Za-z]+)(?:_(?P<region>[A-Za-z0-9_]+?))?_\d+")
TIAN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*-(?P<hemi>lh|rh)")


def parcel_table(names, n_networks, indices=None, source="atlas label table"):
    """Table [index, name, network, hemisphere] for CBIG Schaefer and Tian names, in the given order."""
    names = [str(name) for name in names]
    indices = list(range(1, len(names) + 1)) if indices is None else [int(index) for index in indices]
    if len(indices) != len(names):
        raise ValueError("indices and names differ in length")
    parsed = [parse_parcel_name(name, n_networks, source) for name in names]
    return pd.DataFrame({
        "index": pd.array(indices, dtype="int64"),
        "name": names,
        "network": [network for network, _ in parsed],
        "hemisphere": [hemisphere for _, hemisphere in parsed],
    })


def parse_parcel_name(name, n_networks, source="atlas label table"):
    """(network, hemisphere) of one CBIG Schaefer name (e.g. 17Networks_LH_Limbic_OFC_1) or Tian name (HIP-rh)."""
    cbig = CBIG_NAME.fullmatch(name)
    if cbig:
        if int(cbig["k"]) != n_networks:
            raise SemantoksError(
                f"{source}: parcel {name!r} belongs to a {cbig['k']}-network atlas but atlas.n_networks is "
                f"{n_networks}; set atlas.n_networks: {cbig['k']} or use the {n_networks}-network label file.")
        return _cbig_network(cbig["network"], cbig["region"], n_networks, name, source), cbig["hemi"][0]
    tian = TIAN_NAME.fullmatch(name)
    if tian:
        return SUBCORTEX, tian["hemi"][0].upper()
    raise SemantoksError(
        f"{source}: parcel name {name!r} is neither a CBIG Schaefer name (7Networks_LH_Vis_1) nor a Tian name "
        "(HIP-rh); give the atlas a network column or atlas.network_table.")


def _cbig_network(token, region, n_networks, name, source):
    if n_networks == 17 and token == "Limbic":
        if region in LIMBIC17_BY_REGION:
            return LIMBIC17_BY_REGION[region]
        raise SemantoksError(
            f"{source}: parcel {name!r} is a 17-network Limbic parcel whose region {region!r} is neither "
            "TempPole (LimbicA) nor OFC (LimbicB); use the CBIG label file or give atlas.network_table.")
    known = YEO7_NETWORKS if n_networks == 7 else YEO17_NETWORKS
    if token not in known:
        raise SemantoksError(
            f"{source}: parcel {name!r} has network {token!r}, which is not one of the Yeo {n_networks} networks "
            f"({', '.join(known)}); use the CBIG label file or give atlas.network_table.")
    return token


def network_order(networks):
    """Networks in order of first appearance."""
    return list(dict.fromkeys(networks))
