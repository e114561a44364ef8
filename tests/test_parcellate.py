import gzip
import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from nilearn.maskers import NiftiLabelsMasker

from semantoks.bids_names import parse_entities, qc_name, scan_id, subject_dir, timeseries_name
from semantoks.config import validate_config
from semantoks.confounds import load_confounds, resolve_strategy, select_confounds
from semantoks.errors import SemantoksError
from semantoks.parcellate import parcellate_run

SPACE = "MNI152NLin2009cAsym"
ATLAS_ID = "Schaefer100x7"
BOLD_NAME = f"sub-01_ses-1_task-rest_run-1_space-{SPACE}_res-2_desc-preproc_bold.nii.gz"
# a block of the 2 mm grid over left occipito-parietal cortex: several whole and cut parcels
CROP = (slice(14, 38), slice(10, 40), slice(30, 52))


@pytest.fixture(scope="module")
def schaefer(templateflow_home):
    folder = templateflow_home / f"tpl-{SPACE}"
    dseg = nib.load(folder / f"tpl-{SPACE}_res-02_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz")
    labels = pd.read_csv(folder / f"tpl-{SPACE}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv", sep="\t")
    parts = labels["name"].str.split("_")
    labels = labels.assign(network=parts.str[2], hemisphere=parts.str[1].str[0])[["index", "name", "network", "hemisphere"]]
    return dseg, labels


@pytest.fixture(scope="module")
def crop_atlas(schaefer):
    dseg, _ = schaefer
    cropped = dseg.slicer[CROP]
    return nib.Nifti1Image(np.asarray(cropped.dataobj).astype(np.int16), cropped.affine)


@pytest.fixture(scope="module")
def real_confounds(shared_data):
    folder = shared_data / "fmriprep_confounds_sample"
    return pd.read_csv(folder / "test_desc-confounds_regressors.tsv", sep="\t", nrows=0).columns.tolist(), \
        json.loads((folder / "test_desc-confounds_regressors.json").read_text())


def fabricate_run(folder, atlas, real_confounds, n_volumes=120, tr=2.0, seed=0, name=BOLD_NAME, grid=None,
                  sidecar=True, dtype=np.float32, fd_spikes=(), mask=None, extension=".nii.gz", background=0.05):
    """A fMRIPrep-like run: BOLD (baseline + parcel signals + confound effects + noise), mask, confounds, sidecar."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    grid = grid if grid is not None else atlas
    if grid is not atlas:
        from nilearn.image import resample_to_img
        labels = np.asarray(resample_to_img(atlas, grid, interpolation="nearest", force_resample=True, copy_header=True).dataobj)
    else:
        labels = np.asarray(atlas.dataobj)
    columns, metadata = real_confounds
    confounds = pd.DataFrame(rng.standard_normal((n_volumes, len(columns))) * 0.1, columns=columns)
    confounds["framewise_displacement"] = rng.uniform(0.02, 0.2, n_volumes)
    confounds.loc[list(fd_spikes), "framewise_displacement"] = 0.9
    confounds["std_dvars"] = rng.uniform(0.9, 1.2, n_volumes)
    confounds["non_steady_state_outlier00"] = np.eye(n_volumes)[0]
    confounds.loc[0, [c for c in columns if "derivative" in c] + ["framewise_displacement", "std_dvars", "dvars"]] = np.nan
    parcel_signals = rng.standard_normal((n_volumes, labels.max() + 1))
    nuisance = confounds[["trans_x", "rot_y", "csf", "white_matter"]].fillna(0).to_numpy() @ rng.standard_normal(4) * 20
    baseline = rng.uniform(500, 1500, labels.shape).astype(np.float32)
    data = baseline[..., None] + 8 * np.moveaxis(parcel_signals[:, labels].astype(np.float32), 0, -1) \
        + nuisance.astype(np.float32) + 4 * rng.standard_normal(labels.shape + (n_volumes,), dtype=np.float32)
    data[labels == 0] *= background
    bold = nib.Nifti1Image(data.astype(np.float32), grid.affine)
    # int16 makes nibabel store scl_slope/scl_inter, as many scanners' files do
    bold.set_data_dtype(dtype)
    bold.header.set_xyzt_units("mm", "sec")
    bold.header["pixdim"][4] = tr
    paths = {"bold": folder / name.replace(".nii.gz", extension), "mask": folder / "brain_mask.nii.gz",
             "confounds": folder / "confounds_timeseries.tsv", "sidecar": folder / name.replace(".nii.gz", ".json")}
    nib.save(bold, paths["bold"])
    brain = (labels > 0) if mask is None else mask
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), grid.affine), paths["mask"])
    confounds.to_csv(paths["confounds"], sep="\t", index=False, na_rep="n/a")
    (folder / "confounds_timeseries.json").write_text(json.dumps(metadata))
    if sidecar:
        paths["sidecar"].write_text(json.dumps({"RepetitionTime": tr, "SkullStripped": False}))
    return paths


def run(paths, atlas, labels, out, strategy="simple", **kwargs):
    strategy = kwargs.pop("resolved", None) or resolve_strategy(strategy, kwargs.pop("overrides", None))
    return parcellate_run(paths["bold"], paths["mask"], paths["confounds"], atlas, labels, strategy,
                          out / "ts.parquet", out / "qc.json", ATLAS_ID, kwargs.pop("atlas_space", SPACE), "demo", **kwargs)


def nilearn_reference(paths, atlas, strategy, tr, mask=None):
    table, metadata = load_confounds(paths["confounds"])
    regressors, kept, _ = select_confounds(table, strategy, metadata)
    filtered = strategy["high_pass"] is not None or strategy["low_pass"] is not None
    masker = NiftiLabelsMasker(atlas, mask_img=paths["mask"] if mask is None else mask, standardize=strategy["standardize"] or None,
                               detrend=strategy["detrend"], high_pass=strategy["high_pass"], low_pass=strategy["low_pass"],
                               t_r=tr, clean_args={"filter": "butterworth" if filtered else False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        values = masker.fit_transform(str(paths["bold"]), confounds=regressors.to_numpy(), sample_mask=kept)
    ids = [label for key, label in masker.region_ids_.items() if key != "background"]
    return pd.DataFrame(values, columns=ids), kept


def ours_by_label(out, labels):
    frame = pq.read_table(out / "ts.parquet").to_pandas()
    by_label = frame.drop(columns="frame")
    by_label.columns = labels["index"].tolist()
    return frame["frame"].to_numpy(), by_label


def assert_nothing_written(out):
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("preset, overrides", [
    ("simple", {}),
    ("scrubbing", {"fd_threshold": 0.5}),
    ("36P", {"low_pass": 0.1}),
    ("compcor", {"n_compcor": 5, "standardize": False, "detrend": False}),
])
def test_matches_nilearn_labels_masker(tmp_path, crop_atlas, schaefer, real_confounds, preset, overrides):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, fd_spikes=(30, 31, 70))
    strategy = resolve_strategy(preset, {**overrides, "min_remaining_seconds": 60})
    record = run(paths, crop_atlas, labels, tmp_path / "out", resolved=strategy)
    expected, kept = nilearn_reference(paths, crop_atlas, strategy, 2.0)
    frames, ours = ours_by_label(tmp_path / "out", labels)
    assert record["included"] and record["n_frames"] == len(kept) == len(frames)
    np.testing.assert_array_equal(frames, kept)
    assert (len(kept) < 119) == (preset == "scrubbing")
    np.testing.assert_allclose(ours[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-4, atol=2e-4)
    absent = [i for i in labels["index"] if i not in expected.columns]
    assert absent and ours[absent].isna().all().all()


def test_outputs_follow_the_design_contract(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds)
    record = run(paths, crop_atlas, labels, tmp_path / "out")
    table = pq.read_table(tmp_path / "out" / "ts.parquet")
    assert table.column_names == ["frame", *labels["name"]]
    assert str(table.schema.field("frame").type) == "int32"
    assert {str(table.schema.field(name).type) for name in labels["name"]} == {"float"}
    embedded = json.loads(table.schema.metadata[b"semantoks"])
    on_disk = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert on_disk == record == {k: embedded[k] for k in record}
    assert embedded["parcel_names"] == labels["name"].tolist() and embedded["strategy_params"]["name"] == "simple"
    assert {k: record[k] for k in ("subject", "session", "task", "run", "scan_id", "tr", "n_volumes", "n_dummy")} == {
        "subject": "01", "session": "1", "task": "rest", "run": "1", "scan_id": "sub-01_ses-1_task-rest_run-1",
        "tr": 2.0, "n_volumes": 120, "n_dummy": 1}
    assert record["n_frames"] == table.num_rows == 119 and record["reason"] is None
    fd = pd.read_csv(paths["confounds"], sep="\t", na_values="n/a")["framewise_displacement"][1:]
    assert record["mean_fd"] == pytest.approx(fd.mean()) and record["max_fd"] == pytest.approx(fd.max())
    assert len(record["parcel_coverage"]) == len(labels)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["qc.json", "ts.parquet"]


def test_parcel_outside_the_mask_is_nan_with_zero_coverage(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    atlas = np.asarray(crop_atlas.dataobj)
    present = [int(i) for i in np.unique(atlas) if i]
    outside, halved = present[0], present[1]
    mask = (atlas > 0) & (atlas != outside)
    halved_voxels = np.argwhere(atlas == halved)
    dropped = halved_voxels[: len(halved_voxels) // 2]
    mask[tuple(dropped.T)] = False
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, mask=mask)
    record = run(paths, crop_atlas, labels, tmp_path / "out")
    _, ours = ours_by_label(tmp_path / "out", labels)
    coverage = dict(zip(labels["index"], record["parcel_coverage"]))
    assert ours[outside].isna().all() and coverage[outside] == 0
    assert coverage[halved] == pytest.approx((len(halved_voxels) - len(dropped)) / len(halved_voxels), abs=1e-6)
    assert all(coverage[i] == 1 for i in present[2:])
    assert all(coverage[i] == 0 for i in labels["index"] if i not in present)
    assert ours[present[1:]].notna().all().all()
    assert pq.read_table(tmp_path / "out" / "ts.parquet").num_columns == len(labels) + 1


def test_nan_and_all_zero_voxels_are_left_out_of_parcel_means(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds)
    image = nib.load(paths["bold"])
    data = np.asarray(image.dataobj).copy()
    atlas = np.asarray(crop_atlas.dataobj)
    target = int(np.unique(atlas)[1])
    voxels = np.argwhere(atlas == target)
    nan_voxels, zero_voxels = voxels[:3], voxels[3:6]
    data[tuple(nan_voxels.T) + (5,)] = np.nan
    data[tuple(zero_voxels.T)] = 0.0
    nib.save(nib.Nifti1Image(data, image.affine, image.header), paths["bold"])
    record = run(paths, crop_atlas, labels, tmp_path / "out")
    _, ours = ours_by_label(tmp_path / "out", labels)
    assert ours.notna().sum().sum() > 0 and ours[target].notna().all()
    coverage = dict(zip(labels["index"], record["parcel_coverage"]))
    assert coverage[target] == pytest.approx((len(voxels) - 6) / len(voxels))
    # the same as nilearn with those voxels removed from the mask
    clean_mask = atlas > 0
    clean_mask[tuple(np.r_[nan_voxels, zero_voxels].T)] = False
    clean = nib.Nifti1Image(np.nan_to_num(data), image.affine, image.header)
    nib.save(clean, tmp_path / "clean_bold.nii.gz")
    expected, _ = nilearn_reference({**paths, "bold": tmp_path / "clean_bold.nii.gz"}, crop_atlas,
                                    resolve_strategy("simple"), 2.0, nib.Nifti1Image(clean_mask.astype(np.uint8), image.affine))
    np.testing.assert_allclose(ours[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-4, atol=2e-4)


@pytest.mark.filterwarnings("ignore:After resampling the label image")
def test_atlas_on_another_grid_of_the_same_space_is_resampled(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    # a 3 mm BOLD grid over the same block, shifted by half a voxel
    affine = crop_atlas.affine.copy()
    affine[:3, :3] *= 1.5
    affine[:3, 3] += 1.0
    grid = nib.Nifti1Image(np.zeros((16, 20, 15), np.uint8), affine)
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, grid=grid)
    record = run(paths, crop_atlas, labels, tmp_path / "out")
    expected, _ = nilearn_reference(paths, crop_atlas, resolve_strategy("simple"), 2.0)
    _, ours = ours_by_label(tmp_path / "out", labels)
    assert record["included"] and expected.shape[1] > 3
    np.testing.assert_allclose(ours[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-4, atol=2e-4)


def test_scaled_int16_and_uncompressed_images_give_the_same_series(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    results = []
    for folder, dtype, extension in (("f", np.float32, ".nii.gz"), ("i", np.int16, ".nii.gz"), ("u", np.float32, ".nii")):
        paths = fabricate_run(tmp_path / folder, crop_atlas, real_confounds, dtype=dtype, extension=extension)
        run(paths, crop_atlas, labels, tmp_path / folder / "out")
        results.append(ours_by_label(tmp_path / folder / "out", labels)[1].dropna(axis=1))
    assert nib.load(tmp_path / "i" / BOLD_NAME).get_data_dtype() == np.int16
    np.testing.assert_allclose(results[1].to_numpy(), results[0].to_numpy(), atol=5e-3)
    np.testing.assert_array_equal(results[2].to_numpy(), results[0].to_numpy())


def test_too_short_run_is_recorded_not_raised(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, n_volumes=40, fd_spikes=range(10, 25))
    record = run(paths, crop_atlas, labels, tmp_path / "out", "scrubbing", overrides={"min_remaining_seconds": 60})
    table = pq.read_table(tmp_path / "out" / "ts.parquet")
    assert table.num_rows == 0 and table.column_names == ["frame", *labels["name"]]
    assert record["included"] is False and record["n_frames"] == 0
    assert "Only 24 volumes (48 s) remain" in record["reason"] and "60 s" in record["reason"]
    assert record["pct_censored"] == pytest.approx(100 * 15 / 39)
    assert json.loads((tmp_path / "out" / "qc.json").read_text())["reason"] == record["reason"]


def test_all_zero_bold_is_recorded_not_raised(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, n_volumes=30)
    image = nib.load(paths["bold"])
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine, image.header), paths["bold"])
    record = run(paths, crop_atlas, labels, tmp_path / "out", overrides={"min_remaining_seconds": 0})
    assert record["included"] is False and "no finite nonzero voxel" in record["reason"]
    assert set(record["parcel_coverage"]) == {0.0}
    assert pq.read_table(tmp_path / "out" / "ts.parquet").num_rows == 0


def _truncate(path):
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def _flip_bytes(path):
    blob = bytearray(path.read_bytes())
    middle = len(blob) // 2
    blob[middle:middle + 64] = bytes(255 - b for b in blob[middle:middle + 64])
    path.write_bytes(bytes(blob))


def _drop_a_confound_row(paths):
    table = pd.read_csv(paths["confounds"], sep="\t")
    table.iloc[:-1].to_csv(paths["confounds"], sep="\t", index=False)


def _drop_repetition_time(paths):
    paths["sidecar"].write_text(json.dumps({"SkullStripped": False}))


@pytest.mark.parametrize("damage, named, words", [
    (lambda p: _truncate(p["bold"]), "bold", "re-run fMRIPrep for this run or remove it"),
    (lambda p: _flip_bytes(p["bold"]), "bold", "re-run fMRIPrep for this run or remove it"),
    (lambda p: p["bold"].write_bytes(gzip.compress(b"not a nifti at all")), "bold", "re-run fMRIPrep"),
    (_drop_a_confound_row, "confounds", "119 rows but"),
    (lambda p: p["sidecar"].unlink(), "sidecar", "add it with RepetitionTime"),
    (lambda p: p["mask"].unlink(), "mask", "brain mask not found"),
    (_drop_repetition_time, "sidecar", "add RepetitionTime"),
])
def test_bad_inputs_are_refused_naming_the_file_and_write_nothing(tmp_path, crop_atlas, schaefer, real_confounds,
                                                                  damage, named, words):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds)
    damage(paths)
    with pytest.raises(SemantoksError) as error:
        run(paths, crop_atlas, labels, tmp_path / "out")
    assert str(paths[named]) in str(error.value) and words in str(error.value)
    if named == "confounds":
        assert str(paths["bold"]) in str(error.value)
    assert_nothing_written(tmp_path / "out")


def test_space_mismatch_is_refused(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, name=BOLD_NAME.replace(SPACE, "MNI152NLin6Asym"))
    with pytest.raises(SemantoksError, match="MNI152NLin6Asym") as error:
        run(paths, crop_atlas, labels, tmp_path / "out")
    assert str(paths["bold"]) in str(error.value)
    assert_nothing_written(tmp_path / "out")


def test_tr_argument_wins_and_header_disagreement_warns(tmp_path, crop_atlas, schaefer, real_confounds):
    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, sidecar=False)
    with pytest.warns(UserWarning, match="header TR 2 s differs from RepetitionTime 1.5 s"):
        record = run(paths, crop_atlas, labels, tmp_path / "out", tr=1.5)
    assert record["tr"] == 1.5


@pytest.mark.slow
def test_full_2mm_grid_run(tmp_path, schaefer, real_confounds):
    dseg, labels = schaefer
    atlas = nib.Nifti1Image(np.asarray(dseg.dataobj).astype(np.int16), dseg.affine)
    paths = fabricate_run(tmp_path / "in", atlas, real_confounds, n_volumes=20, tr=2.0, background=0.0)
    assert nib.load(paths["bold"]).shape == (97, 115, 97, 20)
    # few regressors: 19 kept frames cannot carry the 18 of the full preset plus the trend
    strategy = resolve_strategy("simple", {"min_remaining_seconds": 30, "motion": "basic", "cosine": False})
    record = run(paths, atlas, labels, tmp_path / "out", resolved=strategy)
    expected, _ = nilearn_reference(paths, atlas, strategy, 2.0)
    _, ours = ours_by_label(tmp_path / "out", labels)
    assert record["included"] and record["n_frames"] == 19 and expected.shape[1] == 100
    assert min(record["parcel_coverage"]) == 1.0
    np.testing.assert_allclose(ours[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-4, atol=2e-4)


def test_bids_names_of_a_fmriprep_run():
    entities = parse_entities(f"/d/sub-01/ses-1/func/{BOLD_NAME}")
    assert entities == {"sub": "01", "ses": "1", "task": "rest", "acq": None, "run": "1", "space": SPACE, "res": "2",
                        "desc": "preproc", "suffix": "bold", "extension": ".nii.gz"}
    assert scan_id(entities) == "sub-01_ses-1_task-rest_run-1"
    assert timeseries_name(entities, ATLAS_ID, "36P") == \
        f"sub-01_ses-1_task-rest_run-1_space-{SPACE}_atlas-{ATLAS_ID}_desc-36P_timeseries.parquet"
    assert qc_name(entities, ATLAS_ID, "simple").endswith("_atlas-Schaefer100x7_desc-simple_qc.json")
    assert str(subject_dir(entities)) == "sub-01/ses-1"
    plain = parse_entities("sub-A1_task-movie_acq-mb8_space-T1w_desc-preproc_bold.nii.gz")
    assert scan_id(plain) == "sub-A1_task-movie_acq-mb8" and str(subject_dir(plain)) == "sub-A1"
    directions = [scan_id(parse_entities(f"sub-1_task-rest_dir-{d}_bold.nii.gz")) for d in ("AP", "PA")]
    assert directions[0] != directions[1]


@pytest.mark.parametrize("name", ["sub-01_task-my_rest_bold.nii.gz", "sub-0.1_task-rest_bold.nii.gz",
                                  "task-rest_bold.nii.gz", "sub-01_task-rest-1_bold.nii.gz", "bold.nii.gz"])
def test_non_bids_names_are_refused(name):
    with pytest.raises(SemantoksError, match="sub-0.1_|BIDS|alphanumeric"):
        parse_entities(name)


def test_output_labels_must_be_alphanumeric():
    entities = parse_entities(BOLD_NAME)
    with pytest.raises(SemantoksError, match="alphanumeric"):
        timeseries_name(entities, "Schaefer_100", "simple")
    with pytest.raises(SemantoksError, match="alphanumeric"):
        timeseries_name(entities, ATLAS_ID, "36P_scrub")


def _present_labels(crop_atlas, labels):
    present = [int(i) for i in np.unique(np.asarray(crop_atlas.dataobj)) if i]
    return present, labels[labels["index"].isin(present)].reset_index(drop=True)


def _mask_keeping(crop_atlas, fractions):
    """A brain mask keeping the given fraction of each named parcel's voxels (all of every other parcel)."""
    atlas = np.asarray(crop_atlas.dataobj)
    mask = atlas > 0
    for parcel, fraction in fractions.items():
        voxels = np.argwhere(atlas == parcel)
        dropped = voxels[int(round(len(voxels) * fraction)):]
        mask[tuple(dropped.T)] = False
    return mask


def test_parcels_below_min_coverage_are_nan_and_counted(tmp_path, crop_atlas, schaefer, real_confounds):
    present, labels = _present_labels(crop_atlas, schaefer[1])
    thin, half = present[0], present[1]
    mask = _mask_keeping(crop_atlas, {thin: 0.25, half: 0.6})
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, mask=mask)
    record = run(paths, crop_atlas, labels, tmp_path / "out", min_coverage=0.5, max_uncovered_fraction=0.5)
    _, ours = ours_by_label(tmp_path / "out", labels)
    coverage = dict(zip(labels["index"], record["parcel_coverage"]))
    assert coverage[thin] == pytest.approx(0.25, abs=0.02) and coverage[half] == pytest.approx(0.6, abs=0.02)
    # XCP-D's rule: below min_coverage the parcel is NaN but keeps its column and coverage value
    assert record["included"] and record["n_uncovered_parcels"] == 1 and record["min_coverage"] == 0.5
    assert ours[thin].isna().all() and ours[[i for i in present if i != thin]].notna().all().all()
    # without a threshold the thin parcel is measured from its quarter of voxels
    default = run(paths, crop_atlas, labels, tmp_path / "default")
    assert default["n_uncovered_parcels"] == 0 and ours_by_label(tmp_path / "default", labels)[1][thin].notna().all()


def test_run_with_too_many_uncovered_parcels_is_skipped_with_its_reason(tmp_path, crop_atlas, schaefer, real_confounds):
    present, labels = _present_labels(crop_atlas, schaefer[1])
    mask = _mask_keeping(crop_atlas, {parcel: 0.2 for parcel in present[:2]})
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, mask=mask)
    allowed = 1.5 / len(present)
    record = run(paths, crop_atlas, labels, tmp_path / "out", min_coverage=0.5, max_uncovered_fraction=allowed)
    assert not record["included"] and record["n_uncovered_parcels"] == 2 and record["n_frames"] == 0
    assert record["reason"].startswith(f"2 of {len(present)} parcels have less than 0.5") and "max_uncovered_fraction" in record["reason"]
    assert pq.read_table(tmp_path / "out" / "ts.parquet").num_rows == 0
    assert run(paths, crop_atlas, labels, tmp_path / "ok", min_coverage=0.5, max_uncovered_fraction=2.5 / len(present))["included"]


def test_manifest_has_the_coverage_summary(tmp_path, crop_atlas, schaefer, real_confounds):
    from semantoks.dataset import build_partition

    present, labels = _present_labels(crop_atlas, schaefer[1])
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, mask=_mask_keeping(crop_atlas, {present[0]: 0.3}))
    run(paths, crop_atlas, labels, tmp_path / "out", min_coverage=0.5, max_uncovered_fraction=0.5)
    build_partition([(tmp_path / "out" / "ts.parquet", tmp_path / "out" / "qc.json")], tmp_path / "dataset", "demo", ATLAS_ID,
                    labels, SPACE, resolve_strategy("simple"), "test", "hash")
    manifest = pd.read_parquet(tmp_path / "dataset" / "manifest")
    assert manifest["n_uncovered_parcels"].tolist() == [1]


def _write_sidecar(path, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))


def test_raw_bids_sidecar_stands_in_for_a_derivative_sidecar_without_tr(tmp_path, crop_atlas, schaefer, real_confounds):
    from semantoks.cohorts.derivatives import raw_sidecars

    _, labels = schaefer
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, tr=2.0)
    _write_sidecar(paths["sidecar"], SkullStripped=False)
    with pytest.raises(SemantoksError, match="has no RepetitionTime.*set the cohort's tr"):
        run(paths, crop_atlas, labels, tmp_path / "refused")
    bids = tmp_path / "bids"
    _write_sidecar(bids / "task-rest_bold.json", RepetitionTime=2.5)
    _write_sidecar(bids / "sub-01" / "ses-1" / "func" / "sub-01_ses-1_task-rest_run-1_bold.json", EchoTime=0.03)
    _write_sidecar(bids / "sub-01" / "sub-01_task-rest_bold.json", RepetitionTime=2.0)
    _write_sidecar(bids / "task-other_bold.json", RepetitionTime=9.0)
    entities = parse_entities(paths["bold"])
    candidates = raw_sidecars(bids, entities)
    assert [p.rsplit("/", 1)[1] for p in candidates] == [
        "sub-01_ses-1_task-rest_run-1_bold.json", "sub-01_task-rest_bold.json", "task-rest_bold.json"]
    # the most specific sidecar that holds RepetitionTime wins, as BIDS inheritance says
    record = run(paths, crop_atlas, labels, tmp_path / "out", raw_sidecar_paths=candidates)
    assert record["included"] and record["tr"] == 2.0
    paths["sidecar"].unlink()
    with pytest.warns(UserWarning, match="header TR 2 s differs from RepetitionTime 2.5 s"):
        assert run(paths, crop_atlas, labels, tmp_path / "no_sidecar", raw_sidecar_paths=candidates[2:])["tr"] == 2.5


def test_tsv_outputs_have_xcpd_names_and_the_parquet_values(tmp_path, crop_atlas, schaefer, real_confounds):
    present, labels = _present_labels(crop_atlas, schaefer[1])
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, mask=_mask_keeping(crop_atlas, {present[0]: 0.3}))
    entities = parse_entities(paths["bold"])
    out = tmp_path / "out" / subject_dir(entities)
    parquet = out / timeseries_name(entities, ATLAS_ID, "simple")
    record = parcellate_run(paths["bold"], paths["mask"], paths["confounds"], crop_atlas, labels, resolve_strategy("simple"),
                            parquet, out / qc_name(entities, ATLAS_ID, "simple"), ATLAS_ID, SPACE, "demo",
                            min_coverage=0.5, max_uncovered_fraction=0.5, tsv_outputs=True)
    stem = f"sub-01_ses-1_task-rest_run-1_space-{SPACE}_atlas-{ATLAS_ID}_desc-simple"
    assert sorted(p.name for p in out.glob("*.tsv")) == sorted(
        [f"{stem}_stat-coverage_bold.tsv", f"{stem}_stat-mean_timeseries.tsv", f"{stem}_stat-pearsoncorrelation_relmat.tsv"])
    series = pq.read_table(parquet).to_pandas().drop(columns="frame")
    mean = pd.read_csv(out / f"{stem}_stat-mean_timeseries.tsv", sep="\t", na_values="n/a")
    assert list(mean.columns) == list(labels["name"]) and mean.iloc[:, 0].isna().all()
    np.testing.assert_allclose(mean.to_numpy(), series.to_numpy(), rtol=1e-6, atol=1e-6)
    coverage = pd.read_csv(out / f"{stem}_stat-coverage_bold.tsv", sep="\t")
    assert coverage["Node"].tolist() == list(labels["name"])
    np.testing.assert_allclose(coverage["coverage"], record["parcel_coverage"], atol=1e-6)
    relmat = pd.read_csv(out / f"{stem}_stat-pearsoncorrelation_relmat.tsv", sep="\t", na_values="n/a", index_col="Node")
    assert list(relmat.index) == list(relmat.columns) == list(labels["name"])
    measured = series.columns[1:]
    np.testing.assert_allclose(relmat.loc[measured, measured].to_numpy(), np.corrcoef(series[measured].to_numpy().T), atol=1e-5)
    assert relmat.iloc[0].isna().all()


def test_unusable_run_writes_empty_tsv_outputs(tmp_path, schaefer):
    from semantoks.parcellate import write_unusable_run

    _, labels = schaefer
    entities = {"sub": "02", "task": "rest", "space": SPACE}
    parquet = tmp_path / timeseries_name(entities, ATLAS_ID, "simple")
    record = write_unusable_run(parquet, tmp_path / "qc.json", labels, resolve_strategy("simple"), ATLAS_ID, SPACE, "demo",
                                entities, "Excluded in the config: scanner fault.", tsv_outputs=True)
    assert record["reason"] == "Excluded in the config: scanner fault."
    mean = pd.read_csv(str(parquet).replace("_timeseries.parquet", "_stat-mean_timeseries.tsv"), sep="\t")
    assert mean.shape == (0, len(labels))


def test_band_pass_in_denoising_does_not_filter_across_scrubbing_gaps(tmp_path, crop_atlas, schaefer, real_confounds):
    from semantoks.model.data import band_pass

    present, labels = _present_labels(crop_atlas, schaefer[1])
    tr, n_volumes, gap = 2.0, 160, list(range(80, 85))
    paths = fabricate_run(tmp_path / "in", crop_atlas, real_confounds, n_volumes=n_volumes, tr=tr, fd_spikes=gap)
    # every parcel: a 0.03 Hz oscillation (in band), and a large motion spike on the censored frames
    times = np.arange(n_volumes) * tr
    wave = 10 * np.sin(2 * np.pi * 0.03 * times)
    course = 1000 + wave
    course[gap] += 400
    image = nib.load(paths["bold"])
    inside = np.asarray(crop_atlas.dataobj) > 0
    data = np.zeros(image.shape, np.float32)
    data[inside] = course
    nib.save(nib.Nifti1Image(data, image.affine, image.header), paths["bold"])
    strategy = resolve_strategy("scrubbing", {
        "motion": "none", "wm_csf": "none", "cosine": False, "std_dvars_threshold": None, "scrub_min_segment": 0,
        "detrend": False, "standardize": False, "high_pass": 0.01, "low_pass": 0.1, "min_remaining_seconds": 60})
    record = run(paths, crop_atlas, labels, tmp_path / "out", resolved=strategy)
    frames, ours = ours_by_label(tmp_path / "out", labels)
    assert record["included"] and not set(gap) & set(frames)
    # what band-passing the gap-closed series (the model's band_pass on the dataset's frames) gives
    closed = band_pass(course[frames][:, None] - 1000, tr, 0.01, 0.1)[:, 0]
    near_gap = np.abs(frames - gap[0]) <= 15
    censor_aware_error = np.abs(ours[present[0]].to_numpy() - wave[frames])[near_gap].max()
    gap_closed_error = np.abs(closed - wave[frames])[near_gap].max()
    # closing the 10 s gap shifts the oscillation's phase: a filter step of about half its amplitude
    assert gap_closed_error > 3 and censor_aware_error < gap_closed_error / 10
    # so the model does not band-pass the gap-closed series unless asked
    assert validate_config({"cohorts": {"demo": {"source": "simulated"}}})["pretrain"]["band_pass"] is None
