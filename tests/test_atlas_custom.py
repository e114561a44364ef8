"""Custom atlases: a real Schaefer volume treated as a user's own, networks by Yeo 2011 majority overlap."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from semantoks.atlas import AtlasSpec, load_atlas, resample_to_grid, write_atlas
from semantoks.atlas.images import label_data
from semantoks.errors import SemantoksError

NLIN2009 = "MNI152NLin2009cAsym"
# measured: 95% (100x7), 92.5% (200x7), 94% (400x7) of parcels get CBIG's own network
MIN_AGREEMENT = 0.90


@pytest.fixture(scope="module")
def schaefer(templateflow_home):
    return {
        n: load_atlas(AtlasSpec(n_parcels=n, n_networks=7), templateflow_home) for n in (100, 200)
    } | {"100S1": load_atlas(AtlasSpec(n_parcels=100, n_networks=7, subcortex="S1"), templateflow_home)}


def _as_custom(atlas, folder, columns=("index", "name"), image=None):
    """Write an atlas as a user would hand it over: a dseg and a label table."""
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(image if image is not None else atlas.image, folder / "mine_dseg.nii.gz")
    atlas.labels[list(columns)].to_csv(folder / "mine.tsv", sep="\t", index=False)
    return dict(family="custom", name="Mine", space=NLIN2009, dseg=folder / "mine_dseg.nii.gz",
                labels=folder / "mine.tsv")


@pytest.mark.parametrize("n_parcels", [100, 200])
def test_majority_yeo_overlap_recovers_cbig_networks(schaefer, templateflow_home, tmp_path, n_parcels):
    reference = schaefer[n_parcels]
    custom = load_atlas(AtlasSpec(**_as_custom(reference, tmp_path)), templateflow_home)
    assert custom.atlas_id == "Mine"
    labels = custom.labels
    assert list(labels.columns) == ["index", "name", "network", "hemisphere", "network_overlap"]
    assert (labels["network"] == reference.labels["network"]).mean() >= MIN_AGREEMENT
    assert labels["hemisphere"].tolist() == reference.labels["hemisphere"].tolist()
    assert sorted(custom.networks) == sorted(reference.networks)
    assert labels["network_overlap"].between(0.3, 1.0).all()


def test_majority_yeo_overlap_on_a_coarser_grid(schaefer, templateflow_home, tmp_path):
    reference = schaefer[100]
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = reference.image.affine[:3, 3]
    coarse = resample_to_grid(reference.image, nib.Nifti1Image(np.zeros((65, 77, 65), np.float32), affine))
    present = np.isin(reference.labels["index"], np.unique(label_data(coarse)))
    kept = reference.labels[present]
    fields = _as_custom(reference, tmp_path, image=coarse)
    kept[["index", "name"]].to_csv(fields["labels"], sep="\t", index=False)
    custom = load_atlas(AtlasSpec(**fields), templateflow_home)
    assert custom.image.shape == (65, 77, 65)
    agreement = (custom.labels["network"].to_numpy() == kept["network"].to_numpy()).mean()
    assert agreement >= MIN_AGREEMENT


def test_subcortical_parcels_are_unassigned(schaefer, templateflow_home, tmp_path):
    merged = schaefer["100S1"]
    custom = load_atlas(AtlasSpec(**_as_custom(merged, tmp_path)), templateflow_home)
    is_tian = (merged.labels["network"] == "Subcortex").to_numpy()
    assert set(custom.labels.loc[is_tian, "network"]) == {"Unassigned"}
    assert (custom.labels.loc[is_tian, "network_overlap"] == 0).all()
    assert "Unassigned" not in set(custom.labels.loc[~is_tian, "network"])
    assert custom.labels.loc[is_tian, "hemisphere"].tolist() == merged.labels.loc[is_tian, "hemisphere"].tolist()


def test_network_column_wins_over_yeo(schaefer, tmp_path):
    reference = schaefer[100]
    fields = _as_custom(reference, tmp_path, columns=("index", "name", "network"))
    # an empty TemplateFlow home proves Yeo was never needed
    custom = load_atlas(AtlasSpec(**fields), templateflow_home=tmp_path / "empty")
    assert custom.labels["network"].tolist() == reference.labels["network"].tolist()
    assert "network_overlap" not in custom.labels.columns


def test_network_table_wins_and_must_cover_every_parcel(schaefer, tmp_path):
    reference = schaefer[100]
    fields = _as_custom(reference, tmp_path, columns=("index", "name", "network"))
    table = reference.labels[["name"]].assign(network=np.where(reference.labels["hemisphere"] == "L", "Left", "Right"))
    table.to_csv(tmp_path / "networks.tsv", sep="\t", index=False)
    custom = load_atlas(AtlasSpec(**fields, network_table=tmp_path / "networks.tsv"), tmp_path / "empty")
    assert custom.networks == ["Left", "Right"]
    table.iloc[1:].to_csv(tmp_path / "networks.tsv", sep="\t", index=False)
    with pytest.raises(SemantoksError, match="networks.tsv.*7Networks_LH_Vis_1"):
        load_atlas(AtlasSpec(**fields, network_table=tmp_path / "networks.tsv"), tmp_path / "empty")


def test_label_table_must_match_the_volume(schaefer, tmp_path):
    reference = schaefer[100]
    fields = _as_custom(reference, tmp_path)
    reference.labels[["index", "name"]].iloc[:-1].to_csv(fields["labels"], sep="\t", index=False)
    with pytest.raises(SemantoksError, match=r"mine_dseg\.nii\.gz.*\[100\]"):
        load_atlas(AtlasSpec(**fields), tmp_path / "empty")
    extra = pd.concat([reference.labels[["index", "name"]], pd.DataFrame({"index": [500], "name": ["ghost"]})])
    extra.to_csv(fields["labels"], sep="\t", index=False)
    with pytest.raises(SemantoksError, match=r"mine\.tsv.*\[500\]"):
        load_atlas(AtlasSpec(**fields), tmp_path / "empty")


def test_label_table_without_name_column_is_refused(schaefer, tmp_path):
    fields = _as_custom(schaefer[100], tmp_path, columns=("index", "network"))
    with pytest.raises(SemantoksError, match=r"mine\.tsv.*name"):
        load_atlas(AtlasSpec(**fields), tmp_path / "empty")


def test_written_custom_atlas_keeps_overlap_after_the_standard_columns(schaefer, templateflow_home, tmp_path):
    custom = load_atlas(AtlasSpec(**_as_custom(schaefer[100], tmp_path / "in")), templateflow_home)
    labels_path, _ = write_atlas(custom, tmp_path / "out")
    header = labels_path.read_text().splitlines()[0].split("\t")
    assert header == ["index", "name", "network", "hemisphere", "network_overlap"]
