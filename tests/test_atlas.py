"""Schaefer/Tian atlases from the real TemplateFlow tree: counts, networks, hemispheres, merging, files."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from semantoks.atlas import (
    AtlasSpec, YEO7_NETWORKS, YEO17_NETWORKS, check_space, label_centroids, load_atlas, read_atlas,
    read_label_image, read_labels_tsv, resample_to_grid, write_atlas,
)
from semantoks.atlas.images import label_data
from semantoks.errors import SemantoksError

NLIN2009 = "MNI152NLin2009cAsym"
NLIN6 = "MNI152NLin6Asym"


@pytest.fixture(scope="module")
def atlases(templateflow_home):
    """Loaded atlases cached by spec, so every test reads each file once."""
    cache = {}

    def get(**fields):
        spec = AtlasSpec(**fields)
        if spec not in cache:
            cache[spec] = load_atlas(spec, templateflow_home)
        return cache[spec]

    return get


@pytest.mark.parametrize("n_parcels", [100, 200, 400])
@pytest.mark.parametrize("n_networks", [7, 17])
def test_schaefer_has_every_parcel_and_exactly_its_networks(atlases, n_parcels, n_networks):
    atlas = atlases(n_parcels=n_parcels, n_networks=n_networks)
    assert atlas.atlas_id == f"Schaefer{n_parcels}x{n_networks}"
    assert list(atlas.labels["index"]) == list(range(1, n_parcels + 1))
    assert set(np.unique(label_data(atlas.image))) == set(range(n_parcels + 1))
    expected = YEO7_NETWORKS if n_networks == 7 else YEO17_NETWORKS
    assert sorted(atlas.networks) == sorted(expected)
    assert len(atlas.networks) == n_networks
    index = atlas.parcel_network_index
    assert index.dtype == np.int64
    assert [atlas.networks[i] for i in index] == list(atlas.labels["network"])
    # network order is order of first appearance in label order
    assert atlas.networks == list(dict.fromkeys(atlas.labels["network"]))


@pytest.mark.parametrize("n_parcels", [100, 200, 400])
def test_17_network_limbic_parcels_split_by_region(atlases, n_parcels):
    labels = atlases(n_parcels=n_parcels, n_networks=17).labels
    limbic = labels[labels["name"].str.contains("_Limbic")]
    assert len(limbic) > 0
    is_ofc = limbic["name"].str.contains("_OFC_")
    assert set(limbic.loc[is_ofc, "network"]) == {"LimbicB"}
    assert set(limbic.loc[~is_ofc, "network"]) == {"LimbicA"}
    assert limbic.loc[~is_ofc, "name"].str.contains("_TempPole_").all()


def _cbig_names(path):
    table = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1], names=["index", "name"])
    return table["index"].tolist(), table["name"].tolist()


@pytest.mark.parametrize("file_name, n_networks", [
    ("Schaefer2018_100Parcels_17Networks_order.txt", 17),
    ("Schaefer2018_200Parcels_7Networks_order.txt", 7),
])
def test_both_cbig_naming_versions_give_the_same_network_per_parcel(shared_data, file_name, n_networks):
    from semantoks.atlas import parcel_table

    old_index, old_names = _cbig_names(shared_data / "cbig_labels" / "original2018" / file_name)
    new_index, new_names = _cbig_names(shared_data / "cbig_labels" / "v0.14.3" / file_name)
    assert old_index == new_index
    # the versions really spell parcels differently, so agreement below is not trivial
    assert sum(a != b for a, b in zip(old_names, new_names)) > 10
    old = parcel_table(old_names, n_networks, old_index)
    new = parcel_table(new_names, n_networks, new_index)
    assert old["network"].tolist() == new["network"].tolist()
    assert old["hemisphere"].tolist() == new["hemisphere"].tolist()
    assert old["network"].nunique() == n_networks


def test_templateflow_names_are_the_original_cbig_names(shared_data, atlases):
    _, names = _cbig_names(shared_data / "cbig_labels" / "original2018" / "Schaefer2018_400Parcels_17Networks_order.txt")
    assert atlases(n_parcels=400, n_networks=17).labels["name"].tolist() == names


@pytest.mark.parametrize("fields", [
    dict(n_parcels=100, n_networks=7, subcortex="S2"),
    dict(n_parcels=200, n_networks=17, subcortex="S1"),
    dict(n_parcels=400, n_networks=17),
    dict(n_parcels=400, n_networks=7, space=NLIN6, subcortex="S2"),
])
def test_every_parcel_centroid_lies_in_its_named_hemisphere(atlases, fields):
    # all parcels, none excused: the closest centroid to the midline is still 2.6 mm away
    atlas = atlases(**fields)
    x = label_centroids(atlas.image, atlas.labels["index"])[:, 0]
    assert np.all(np.isfinite(x))
    assert np.array_equal(np.where(x < 0, "L", "R"), atlas.labels["hemisphere"].to_numpy())


def test_tian_s1_is_appended_after_cortex_without_overwriting_it(atlases):
    cortex = atlases(n_parcels=100, n_networks=7)
    merged = atlases(n_parcels=100, n_networks=7, subcortex="S1")
    assert merged.atlas_id == "Schaefer100x7TianS1"
    labels = merged.labels
    assert len(labels) == 116
    subcortex = labels[labels["network"] == "Subcortex"]
    assert list(subcortex["index"]) == list(range(101, 117))
    assert (labels["network"] == "Subcortex").sum() == 16
    assert merged.networks[-1] == "Subcortex"
    assert subcortex.set_index("name").loc[["HIP-rh", "CAU-lh"], "hemisphere"].tolist() == ["R", "L"]
    cortex_data, merged_data = label_data(cortex.image), label_data(merged.image)
    in_cortex = cortex_data > 0
    assert np.array_equal(merged_data[in_cortex], cortex_data[in_cortex])
    assert set(np.unique(merged_data[~in_cortex])) == set(range(101, 117)) | {0}
    assert np.allclose(merged.image.affine, cortex.image.affine)


def test_mni152nlin6asym_resolves_on_its_own_grid(atlases, templateflow_home):
    atlas = atlases(n_parcels=200, n_networks=7, space=NLIN6)
    assert atlas.space == NLIN6
    assert atlas.image.shape == (91, 109, 91)
    assert len(atlas.labels) == 200
    assert atlas.image.affine[0, 0] < 0
    assert not np.allclose(atlas.image.affine, atlases(n_parcels=200, n_networks=7).image.affine)


def test_yeo_volume_with_qform_only_keeps_its_template_position(templateflow_home):
    folder = templateflow_home / f"tpl-{NLIN2009}"
    yeo_path = folder / f"tpl-{NLIN2009}_res-02_atlas-Yeo2011_desc-7Networks_dseg.nii.gz"
    raw = nib.load(yeo_path)
    assert int(raw.header["sform_code"]) == 0
    yeo = read_label_image(yeo_path)
    t1w = nib.load(folder / f"tpl-{NLIN2009}_res-02_T1w.nii.gz")
    assert np.allclose(yeo.affine, t1w.affine)
    assert int(yeo.header["sform_code"]) > 0
    assert yeo.get_data_dtype() == np.int32
    assert set(np.unique(label_data(yeo))) == set(range(8))


def test_volume_without_any_affine_code_is_refused(tmp_path, templateflow_home):
    source = nib.load(templateflow_home / f"tpl-{NLIN6}" / f"tpl-{NLIN6}_res-02_atlas-Tian2020_desc-S1_dseg.nii.gz")
    image = nib.Nifti1Image(np.asarray(source.dataobj), source.affine)
    image.set_sform(None, code=0)
    image.set_qform(None, code=0)
    nib.save(image, tmp_path / "noaffine.nii.gz")
    with pytest.raises(SemantoksError, match="neither sform nor qform"):
        read_label_image(tmp_path / "noaffine.nii.gz")


def test_written_atlas_reads_back_identically(atlases, tmp_path):
    atlas = atlases(n_parcels=100, n_networks=17, subcortex="S1")
    labels_path, dseg_path = write_atlas(atlas, tmp_path / "Schaefer100x17TianS1")
    assert labels_path.read_text().splitlines()[0] == "index\tname\tnetwork\themisphere"
    assert sorted(p.name for p in labels_path.parent.iterdir()) == ["dseg.nii.gz", "labels.tsv"]
    again = read_atlas(labels_path.parent, atlas.atlas_id, atlas.space)
    pd.testing.assert_frame_equal(again.labels, atlas.labels, check_dtype=False)
    assert again.labels["index"].dtype == np.int64
    assert np.array_equal(label_data(again.image), label_data(atlas.image))
    assert np.allclose(again.image.affine, atlas.image.affine)
    assert again.networks == atlas.networks


def test_labels_tsv_without_network_column_is_refused(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("index\tname\themisphere\n1\t7Networks_LH_Vis_1\tL\n")
    with pytest.raises(SemantoksError, match=r"labels\.tsv.*network"):
        read_labels_tsv(path)


def test_resample_to_grid_keeps_labels_and_takes_the_reference_grid(atlases):
    atlas = atlases(n_parcels=100, n_networks=7)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = atlas.image.affine[:3, 3]
    reference = nib.Nifti1Image(np.zeros((65, 77, 65, 2), dtype=np.float32), affine)
    coarse = resample_to_grid(atlas.image, reference)
    assert coarse.shape == (65, 77, 65)
    assert np.allclose(coarse.affine, affine)
    assert coarse.get_data_dtype() == np.int32
    values = set(np.unique(label_data(coarse)))
    assert values <= set(range(101)) and len(values) > 95
    assert resample_to_grid(atlas.image, atlas.image) is atlas.image


def test_check_space_names_the_bold_file_and_the_fix():
    check_space(NLIN2009, NLIN2009, "sub-01_bold.nii.gz")
    with pytest.raises(SemantoksError) as error:
        check_space(NLIN6, NLIN2009, "sub-01_space-MNI152NLin6Asym_bold.nii.gz")
    message = str(error.value)
    assert "sub-01_space-MNI152NLin6Asym_bold.nii.gz" in message
    assert f"atlas.space: {NLIN6}" in message
