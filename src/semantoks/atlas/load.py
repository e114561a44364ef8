"""Load an atlas (Schaefer-2018 [+ Tian] from TemplateFlow, or custom) and write labels.tsv + dseg.nii.gz."""

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from semantoks.atlas.custom import custom_parcel_table
from semantoks.atlas.grid import resample_to_grid
from semantoks.atlas.images import check_labels_match, label_data, label_image, read_label_image, xform_code
from semantoks.atlas.names import LABEL_COLUMNS, SUBCORTEX, network_order, parcel_table
from semantoks.atlas.resolve import atlas_files
from semantoks.atlas.tables import read_index_name_table, read_labels_tsv
from semantoks.atomic import atomic_path, write_table_tsv
from semantoks.errors import SemantoksError

TIAN_REGIONS = {"S1": 16, "S2": 32}


@dataclasses.dataclass(frozen=True, eq=False)
class Atlas:
    """A labelled volume and its parcel table (label order); networks in order of first appearance."""

    image: nib.Nifti1Image
    labels: pd.DataFrame
    atlas_id: str
    space: str

    @property
    def networks(self):
        return network_order(self.labels["network"])

    @property
    def parcel_network_index(self):
        position = {network: i for i, network in enumerate(self.networks)}
        return np.array([position[network] for network in self.labels["network"]], dtype=np.int64)


def load_atlas(spec, templateflow_home=None, allow_download=False):
    """The atlas `spec` describes; TemplateFlow files come from `templateflow_home` (network only if allowed)."""
    if spec.family == "custom":
        image = read_label_image(spec.dseg)
        table = custom_parcel_table(spec, image, templateflow_home, allow_download)
        return Atlas(image, table, spec.atlas_id, spec.space)
    if spec.family == "brainsemantoks457":
        from semantoks.atlas.paper_space import load_paper_space

        image, table = load_paper_space(spec, templateflow_home, allow_download)
        return Atlas(image, table, spec.atlas_id, spec.space)
    desc = f"{spec.n_parcels}Parcels{spec.n_networks}Networks"
    image, table = _templateflow_atlas(spec, "Schaefer2018", desc, spec.n_parcels, templateflow_home, allow_download)
    if spec.subcortex:
        tian_image, tian_table = _templateflow_atlas(
            spec, "Tian2020", spec.subcortex, TIAN_REGIONS[spec.subcortex], templateflow_home, allow_download)
        image, table = merge_subcortex(image, table, tian_image, tian_table)
    return Atlas(image, table, spec.atlas_id, spec.space)


def _templateflow_atlas(spec, atlas, desc, n_parcels, templateflow_home, allow_download):
    volume, table_path = atlas_files(spec.space, atlas, desc, spec.resolution, templateflow_home, allow_download)
    names = read_index_name_table(table_path)
    if len(names) != n_parcels:
        raise SemantoksError(
            f"{table_path}: lists {len(names)} parcels where {atlas} {desc} has {n_parcels}; "
            "replace it with the TemplateFlow file.")
    table = parcel_table(names["name"], spec.n_networks, names["index"], source=str(table_path))
    image = read_label_image(volume)
    check_labels_match(image, table, volume, table_path, require_all=False)
    return image, table


def merge_subcortex(cortex_image, cortex_table, subcortex_image, subcortex_table):
    """Subcortical labels appended after the cortical ones (offset by the largest cortical label), only where cortex is 0."""
    if subcortex_table["network"].ne(SUBCORTEX).any():
        raise ValueError("subcortex table holds non-subcortical parcels")
    subcortex_data = label_data(resample_to_grid(subcortex_image, cortex_image))
    offset = int(cortex_table["index"].max())
    merged = label_data(cortex_image).copy()
    fill = (merged == 0) & (subcortex_data > 0)
    merged[fill] = subcortex_data[fill] + offset
    shifted = subcortex_table.assign(index=subcortex_table["index"] + offset)
    table = pd.concat([cortex_table, shifted], ignore_index=True)
    return label_image(merged, cortex_image.affine, xform_code(cortex_image)), table


def write_atlas(atlas, out_dir):
    """Write `labels.tsv` (index, name, network, hemisphere, then any extra columns) and `dseg.nii.gz`."""
    out_dir = Path(out_dir)
    extra = [column for column in atlas.labels.columns if column not in LABEL_COLUMNS]
    write_table_tsv(out_dir / "labels.tsv", atlas.labels[[*LABEL_COLUMNS, *extra]])
    with atomic_path(out_dir / "dseg.nii.gz") as tmp:
        nib.save(atlas.image, tmp)
    return out_dir / "labels.tsv", out_dir / "dseg.nii.gz"


def read_atlas(atlas_dir, atlas_id, space):
    """An Atlas from a folder written by `write_atlas`."""
    atlas_dir = Path(atlas_dir)
    table = read_labels_tsv(atlas_dir / "labels.tsv")
    image = read_label_image(atlas_dir / "dseg.nii.gz")
    check_labels_match(image, table, atlas_dir / "dseg.nii.gz", atlas_dir / "labels.tsv", require_all=False)
    return Atlas(image, table, atlas_id, space)
