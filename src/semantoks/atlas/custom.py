"""A user's own labelled volume: networks from their table, else by majority overlap with Yeo 2011.

Network assignment, in order of precedence: `atlas.network_table` (TSV name -> network), a `network`
column in the label table, else the Yeo 2011 network holding most of the parcel's voxels (ties go to
the lower Yeo label). `network_overlap` is then the fraction of the parcel's voxels inside that
network. A parcel with less than MIN_CORTEX_FRACTION of its voxels in Yeo's cortex (e.g. a subcortical
region) gets network "Unassigned" and overlap 0: a sliver of cortex must not name its network.
Hemisphere is the side of the parcel's centroid (world x < 0 -> L, else R).
"""

import numpy as np

from semantoks.atlas.grid import resample_to_grid
from semantoks.atlas.images import check_labels_match, label_centroids, label_data, read_label_image
from semantoks.atlas.names import UNASSIGNED, YEO7_NETWORKS, YEO17_NETWORKS
from semantoks.atlas.resolve import atlas_files
from semantoks.atlas.tables import read_index_name_table, read_tsv
from semantoks.errors import SemantoksError

# TemplateFlow ships the Yeo 2011 volume at 2 mm; it is resampled onto the atlas grid anyway
YEO_RESOLUTION = 2
# measured on Schaefer 100-400 + Tian S2 in MNI152NLin2009cAsym: cortical parcels >= 0.59, Tian <= 0.09
MIN_CORTEX_FRACTION = 0.25


def custom_parcel_table(spec, image, templateflow_home=None, allow_download=False):
    """[index, name, network, hemisphere(, network_overlap)] for a custom atlas volume `image`."""
    table = read_index_name_table(spec.labels)
    check_labels_match(image, table, spec.dseg, spec.labels, require_all=True)
    table["hemisphere"] = hemispheres_from_centroids(image, table["index"])
    if spec.network_table is not None:
        table["network"] = _networks_from_table(spec.network_table, table["name"])
    elif "network" in table.columns:
        table["network"] = _network_column(table["network"], spec.labels)
    else:
        yeo_image, yeo_networks = load_yeo_networks(spec.space, spec.n_networks, templateflow_home, allow_download)
        networks, overlap = majority_networks(image, table["index"], yeo_image, yeo_networks)
        table["network"] = networks
        table["network_overlap"] = overlap
    extra = [column for column in ("network_overlap",) if column in table.columns]
    return table[["index", "name", "network", "hemisphere", *extra]]


def hemispheres_from_centroids(image, indices):
    """L where the parcel centroid's world x is negative (RAS+ mm), else R."""
    x = label_centroids(image, indices)[:, 0]
    return np.where(x < 0, "L", "R").tolist()


def load_yeo_networks(space, n_networks, templateflow_home=None, allow_download=False):
    """The Yeo 2011 volume in `space` and its network name per label value {value: network}."""
    volume, table_path = atlas_files(
        space, "Yeo2011", f"{n_networks}Networks", YEO_RESOLUTION, templateflow_home, allow_download)
    table = read_index_name_table(table_path, "Yeo 2011 label table")
    known = YEO7_NETWORKS if n_networks == 7 else YEO17_NETWORKS
    networks = {}
    for index, name in zip(table["index"], table["name"]):
        network = name.removeprefix(f"{n_networks}Networks_")
        if network not in known:
            raise SemantoksError(
                f"{table_path}: name {name!r} is not one of the Yeo {n_networks} networks ({', '.join(known)}); "
                "use the TemplateFlow Yeo2011 table.")
        networks[int(index)] = network
    image = read_label_image(volume)
    check_labels_match(image, table, volume, table_path, require_all=False)
    return image, networks


def majority_networks(image, indices, yeo_image, yeo_networks):
    """(network, fraction of the parcel's voxels in it) per parcel, by majority voxel vote."""
    yeo_on_grid = resample_to_grid(yeo_image, image)
    parcels = label_data(image).ravel()
    yeo_values = sorted(yeo_networks)
    # column 0 counts voxels outside Yeo's cortex; column j the j-th Yeo label
    yeo_column = np.zeros(max(yeo_values) + 1, dtype=np.int64)
    yeo_column[yeo_values] = np.arange(1, len(yeo_values) + 1)
    columns = yeo_column[label_data(yeo_on_grid).ravel()]
    width = len(yeo_values) + 1
    size = int(max(parcels.max(), max(indices))) + 1
    joint = np.bincount(parcels.astype(np.int64) * width + columns, minlength=size * width).reshape(size, width)
    networks, overlap = [], []
    for index in indices:
        counts = joint[int(index)]
        in_cortex = counts[1:].sum()
        if in_cortex == 0 or in_cortex < MIN_CORTEX_FRACTION * counts.sum():
            networks.append(UNASSIGNED)
            overlap.append(0.0)
            continue
        best = int(np.argmax(counts[1:]))
        networks.append(yeo_networks[yeo_values[best]])
        overlap.append(float(counts[1 + best] / counts.sum()))
    return networks, np.asarray(overlap, dtype=float)


def _networks_from_table(path, names):
    table = read_tsv(path, ("name", "network"), "network table")
    lookup = dict(zip(table["name"].astype(str), table["network"].astype(str)))
    missing = [name for name in names if name not in lookup]
    if missing:
        raise SemantoksError(
            f"{path}: no network for parcel(s) {missing[:5]}; add a name<TAB>network line for every parcel.")
    return [lookup[name] for name in names]


def _network_column(networks, path):
    if networks.isna().any() or (networks.astype(str).str.strip() == "").any():
        raise SemantoksError(f"{path}: the network column has empty values; fill in every parcel's network.")
    return networks.astype(str).str.strip().tolist()
