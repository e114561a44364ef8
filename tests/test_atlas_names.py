"""Parcel-name parsing and spec validation: the errors users hit first."""

import pytest

from semantoks.atlas import AtlasSpec, parcel_table
from semantoks.errors import SemantoksError


def test_cbig_and_tian_names_give_network_and_hemisphere():
    table = parcel_table([
        "7Networks_LH_Vis_1", "7Networks_RH_SalVentAttn_FrOperIns_2", "7Networks_RH_Default_PFCdPFCm_7",
        "HIP-rh", "CAU-lh",
    ], 7)
    assert table["index"].tolist() == [1, 2, 3, 4, 5]
    assert table["network"].tolist() == ["Vis", "SalVentAttn", "Default", "Subcortex", "Subcortex"]
    assert table["hemisphere"].tolist() == ["L", "R", "R", "R", "L"]


def test_17_network_names_in_both_spellings():
    names = [
        "17Networks_LH_VisCent_ExStr_1", "17Networks_LH_Limbic_OFC_1", "17Networks_LH_LimbicB_OFC_1",
        "17Networks_RH_Limbic_TempPole_1", "17Networks_RH_LimbicA_TempPole_1", "17Networks_LH_TempPar_1",
    ]
    table = parcel_table(names, 17, indices=[5, 6, 7, 8, 9, 10])
    assert table["network"].tolist() == ["VisCent", "LimbicB", "LimbicB", "LimbicA", "LimbicA", "TempPar"]
    assert table["index"].tolist() == [5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize("name, n_networks, fragment", [
    ("7Networks_LH_Visual_1", 7, "'Visual'"),
    ("17Networks_LH_Limbic_Insula_1", 17, "'Insula'"),
    ("17Networks_LH_VisCent_ExStr_1", 7, "atlas.n_networks"),
    ("7Networks_LH_Vis_1", 17, "atlas.n_networks"),
    ("17Networks_LH_Vis_1", 17, "'Vis'"),
    ("Background", 7, "'Background'"),
])
def test_unknown_names_are_refused_by_name(name, n_networks, fragment):
    with pytest.raises(SemantoksError, match=fragment) as error:
        parcel_table([name], n_networks, source="my_labels.tsv")
    assert str(error.value).startswith("my_labels.tsv")


@pytest.mark.parametrize("fields, expected", [
    (dict(), "Schaefer100x7"),
    (dict(n_parcels=1000, n_networks=17, subcortex="S2"), "Schaefer1000x17TianS2"),
    (dict(family="custom", name="Glasser360", dseg="a.nii.gz", labels="a.tsv"), "Glasser360"),
])
def test_atlas_id(fields, expected):
    assert AtlasSpec(**fields).atlas_id == expected


@pytest.mark.parametrize("fields, key", [
    (dict(family="custom", name="my-atlas", dseg="a.nii.gz", labels="a.tsv"), "atlas.name"),
    (dict(family="custom", name="my_atlas", dseg="a.nii.gz", labels="a.tsv"), "atlas.name"),
    (dict(family="custom", name="Mine", labels="a.tsv"), "atlas.family"),
    (dict(n_parcels=150), "atlas.n_parcels"),
    (dict(n_parcels=100.0), "atlas.n_parcels"),
    (dict(n_networks=8), "atlas.n_networks"),
    (dict(subcortex="S3"), "atlas.subcortex"),
    (dict(family="yeo"), "atlas.family"),
    (dict(space="MNI/../x"), "atlas.space"),
])
def test_bad_specs_are_refused_naming_the_key(fields, key):
    with pytest.raises(SemantoksError, match=key.replace(".", r"\.")):
        AtlasSpec(**fields)


def test_spec_from_config_ignores_loading_keys():
    spec = AtlasSpec.from_config({
        "n_parcels": 200, "n_networks": 17, "subcortex": None, "templateflow_home": "/x", "allow_download": False,
    })
    assert spec == AtlasSpec(n_parcels=200, n_networks=17)
