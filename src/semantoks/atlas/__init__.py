"""Atlases: Schaefer-2018 (+ Tian subcortex) by TemplateFlow name, or custom volumes; parcel -> network."""

from semantoks.atlas.grid import check_space, resample_to_grid
from semantoks.atlas.images import label_centroids, read_label_image
from semantoks.atlas.load import Atlas, load_atlas, merge_subcortex, read_atlas, write_atlas
from semantoks.atlas.names import SUBCORTEX, UNASSIGNED, YEO7_NETWORKS, YEO17_NETWORKS, parcel_table
from semantoks.atlas.resolve import templateflow_home
from semantoks.atlas.spec import AtlasSpec
from semantoks.atlas.tables import read_labels_tsv

__all__ = [
    "Atlas", "AtlasSpec", "SUBCORTEX", "UNASSIGNED", "YEO7_NETWORKS", "YEO17_NETWORKS", "check_space",
    "label_centroids", "load_atlas", "merge_subcortex", "parcel_table", "read_atlas", "read_label_image",
    "read_labels_tsv", "resample_to_grid", "templateflow_home", "write_atlas",
]
