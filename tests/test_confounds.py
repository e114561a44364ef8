import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nilearn.interfaces.fmriprep import load_confounds_strategy

from semantoks.confounds import (NILEARN_PRESETS, PRESET_INFO, PRESET_KEYS, PRESETS, load_confounds, resolve_strategy,
                                 select_confounds)
from semantoks.errors import SemantoksError

MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]


@pytest.fixture(scope="module")
def sample(shared_data):
    path = shared_data / "fmriprep_confounds_sample" / "test_desc-confounds_regressors.tsv"
    table, metadata = load_confounds(path)
    return path, table, metadata


def _combined_retained(table, metadata):
    return [c for c in table.columns if c.startswith("a_comp_cor_") and metadata[c]["Mask"] == "combined"]


def _expected_columns(name, table, metadata):
    n_cosine = sum(c.startswith("cosine") for c in table.columns)
    return {
        "simple": 24 + 2 + n_cosine,
        "scrubbing": 24 + 8 + n_cosine,
        "compcor": 24 + len(_combined_retained(table, metadata)) + n_cosine,
        "36P": 36,
        "36Pscrub": 36,
    }[name]


def _kept_by_hand(fd, dvars, n_dummy, fd_max, dvars_max, min_segment):
    kept = []
    for i in range(len(fd)):
        too_much = (fd_max is not None and fd[i] == fd[i] and fd[i] > fd_max) or (
            dvars_max is not None and dvars[i] == dvars[i] and dvars[i] > dvars_max)
        kept.append(i >= n_dummy and not too_much)
    segment = []
    for i, keep in enumerate(kept + [False]):
        if keep:
            segment.append(i)
            continue
        if 0 < len(segment) < min_segment:
            for j in segment:
                kept[j] = False
        segment = []
    return [i for i, keep in enumerate(kept) if keep]


def test_the_real_table_reads_na_as_missing_and_keeps_modern_names(sample):
    _, table, metadata = sample
    assert table.shape == (30, 189)
    assert np.isnan(table.loc[0, "framewise_displacement"]) and not table.loc[1:, "framewise_displacement"].isna().any()
    assert metadata["a_comp_cor_00"]["Mask"] == "combined"


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_on_the_real_table(sample, name):
    path, table, metadata = sample
    strategy = resolve_strategy(name)
    regressors, kept, qc = select_confounds(table, strategy, metadata, source=path)
    assert regressors.shape == (30, _expected_columns(name, table, metadata))
    assert not regressors.isna().any().any()
    assert qc["n_dummy"] == 1
    fd = table["framewise_displacement"].to_numpy()
    assert qc["mean_fd"] == pytest.approx(np.nanmean(fd[1:])) and qc["max_fd"] == pytest.approx(np.nanmax(fd[1:]))
    # the real run never exceeds 0.5 mm or std DVARS 1.5, so even the scrubbing presets keep every volume
    assert kept.tolist() == list(range(1, 30)) and qc["n_censored"] == 0


def _nilearn_layout(shared_data, folder, confounds=None):
    """The sample beside a (never read) BOLD name, which is how nilearn finds a run's confounds."""
    sample = shared_data / "fmriprep_confounds_sample"
    stem = "sub-01_task-rest"
    shutil.copy(sample / "test_desc-confounds_regressors.json", folder / f"{stem}_desc-confounds_regressors.json")
    tsv = folder / f"{stem}_desc-confounds_regressors.tsv"
    if confounds is None:
        shutil.copy(sample / "test_desc-confounds_regressors.tsv", tsv)
    else:
        confounds.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    bold = folder / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    bold.touch()
    return str(bold), tsv


@pytest.mark.parametrize("name", NILEARN_PRESETS)
def test_nilearn_named_presets_select_nilearns_regressors(shared_data, tmp_path, name):
    bold, tsv = _nilearn_layout(shared_data, tmp_path)
    theirs, their_mask = load_confounds_strategy(bold, name)
    table, metadata = load_confounds(tsv)
    ours, kept, _ = select_confounds(table, resolve_strategy(name), metadata, source=tsv)
    assert sorted(ours.columns) == sorted(theirs.columns)
    np.testing.assert_allclose(ours.loc[1:, theirs.columns].to_numpy(), table.loc[1:, theirs.columns].to_numpy())
    assert kept.tolist() == their_mask.tolist()


def test_scrubbing_censors_the_volumes_nilearn_censors(shared_data, tmp_path):
    table, _ = load_confounds(shared_data / "fmriprep_confounds_sample" / "test_desc-confounds_regressors.tsv")
    moved = table.copy()
    # a motion burst mid-run and a short kept segment between two spikes, both within nilearn's rules
    moved.loc[[9, 10, 15, 24], "framewise_displacement"] = 0.8
    bold, tsv = _nilearn_layout(shared_data, tmp_path, moved)
    _, their_mask = load_confounds_strategy(bold, "scrubbing")
    reread, metadata = load_confounds(tsv)
    _, kept, qc = select_confounds(reread, resolve_strategy("scrubbing"), metadata, source=tsv)
    assert qc["n_censored"] > 4 and kept.tolist() == their_mask.tolist()


def test_every_preset_has_a_description_citations_and_a_docs_entry(shared_data):
    docs = (Path(__file__).parents[1] / "docs" / "denoising.md").read_text()
    for name, info in PRESET_INFO.items():
        assert len(info["description"]) > 100 and info["citations"]
        assert f"`{name}`" in docs and all(citation.split(" (")[0] in docs for citation in info["citations"])
    assert set(PRESET_KEYS) == set(PRESETS["simple"])


def test_36p_is_motion_wm_csf_and_global_signal_with_all_expansions(sample):
    path, table, metadata = sample
    regressors, _, _ = select_confounds(table, resolve_strategy("36P"), metadata, source=path)
    bases = MOTION + ["csf", "white_matter", "global_signal"]
    expansions = ["", "_derivative1", "_power2", "_derivative1_power2"]
    assert sorted(regressors.columns) == sorted(b + e for b in bases for e in expansions)
    # first-row n/a of the derivatives becomes 0; every other value is fMRIPrep's own
    assert (regressors.loc[0, [c for c in regressors.columns if "derivative" in c]] == 0).all()
    np.testing.assert_array_equal(regressors.loc[1:].to_numpy(), table.loc[1:, regressors.columns].to_numpy())


@pytest.mark.parametrize("fd_max, dvars_max, min_segment", [
    (0.15, None, 5), (0.1, None, 0), (0.1, 1.1, 3), (None, 1.09, 1), (0.12, 1.2, 4)])
def test_censoring_matches_thresholds_computed_by_hand(sample, fd_max, dvars_max, min_segment):
    path, table, metadata = sample
    strategy = resolve_strategy("scrubbing", {
        "fd_threshold": fd_max, "std_dvars_threshold": dvars_max, "scrub_min_segment": min_segment})
    _, kept, qc = select_confounds(table, strategy, metadata, source=path)
    expected = _kept_by_hand(table["framewise_displacement"].tolist(), table["std_dvars"].tolist(), 1,
                             fd_max, dvars_max, min_segment)
    assert kept.tolist() == expected
    assert qc["n_censored"] == 29 - len(expected) > 0
    assert qc["pct_censored"] == pytest.approx(100 * (29 - len(expected)) / 29)


def test_compcor_takes_combined_mask_components_from_the_sidecar(sample):
    path, table, metadata = sample
    combined = _combined_retained(table, metadata)
    assert 0 < len(combined) < sum(c.startswith("a_comp_cor_") for c in table.columns)
    regressors, _, _ = select_confounds(table, resolve_strategy("compcor"), metadata, source=path)
    assert [c for c in regressors.columns if c.startswith("a_comp_cor")] == combined
    top5, _, _ = select_confounds(table, resolve_strategy("compcor", {"n_compcor": 5}), metadata, source=path)
    assert [c for c in top5.columns if c.startswith("a_comp_cor")] == combined[:5]
    temporal, _, _ = select_confounds(table, resolve_strategy("compcor", {"compcor": "temporal"}), metadata, source=path)
    assert [c for c in temporal.columns if "comp_cor" in c] == [f"t_comp_cor_{i:02d}" for i in range(6)]


def test_compcor_without_the_sidecar_is_refused_unless_masks_are_unambiguous(sample):
    path, table, _ = sample
    with pytest.raises(SemantoksError, match="JSON sidecar"):
        select_confounds(table, resolve_strategy("compcor"), None, source=path)
    newer = pd.concat([table, pd.DataFrame({"c_comp_cor_00": np.zeros(len(table))})], axis=1)
    regressors, _, _ = select_confounds(newer, resolve_strategy("compcor"), None, source=path)
    assert sum(c.startswith("a_comp_cor_") for c in regressors.columns) == sum(c.startswith("a_comp_cor_") for c in table.columns)


def test_legacy_camelcase_table_gives_the_same_regressors(sample, tmp_path):
    path, table, metadata = sample
    legacy_names = {"trans_x": "X", "trans_y": "Y", "trans_z": "Z", "rot_x": "RotX", "rot_y": "RotY", "rot_z": "RotZ",
                    "framewise_displacement": "FramewiseDisplacement", "std_dvars": "stdDVARS",
                    "white_matter": "WhiteMatter", "csf": "CSF", "global_signal": "GlobalSignal",
                    "non_steady_state_outlier00": "NonSteadyStateOutlier00"}
    legacy_names.update({f"cosine{i:02d}": f"Cosine{i:02d}" for i in range(4)})
    legacy = table[list(legacy_names)].rename(columns=legacy_names)
    legacy_path = tmp_path / "sub-01_task-rest_bold_confounds.tsv"
    legacy.to_csv(legacy_path, sep="\t", index=False, na_rep="n/a")
    reread, legacy_metadata = load_confounds(legacy_path)
    assert legacy_metadata is None
    for name in ("simple", "36P"):
        strategy = resolve_strategy(name)
        modern, kept, qc = select_confounds(table, strategy, metadata, source=path)
        derived, legacy_kept, legacy_qc = select_confounds(reread, strategy, None, source=legacy_path)
        # fMRIPrep differentiates unrounded values and this sample's first row was zeroed, so compare from row 2
        # within the table's 6-decimal rounding
        pd.testing.assert_frame_equal(derived.loc[2:, modern.columns], modern.loc[2:], rtol=1e-4, atol=2.5e-6)
        assert legacy_kept.tolist() == kept.tolist() and legacy_qc == qc


def test_missing_columns_are_named_with_the_file(sample):
    path, table, metadata = sample
    lacking = table.drop(columns=["global_signal", "global_signal_derivative1", "cosine00", "cosine01", "cosine02", "cosine03"])
    with pytest.raises(SemantoksError) as error:
        select_confounds(lacking, resolve_strategy("36P"), metadata, source=path)
    assert str(path) in str(error.value) and "global_signal" in str(error.value)
    with pytest.raises(SemantoksError, match="cosine00") as error:
        select_confounds(lacking, resolve_strategy("simple"), metadata, source=path)
    assert str(path) in str(error.value)
    with pytest.raises(SemantoksError, match="framewise_displacement"):
        select_confounds(table.drop(columns=["framewise_displacement"]), resolve_strategy("scrubbing"), metadata, source=path)
    with pytest.raises(SemantoksError, match="only 57"):
        select_confounds(table, resolve_strategy("compcor", {"n_compcor": 80}), metadata, source=path)


def test_na_beyond_the_first_row_is_refused(sample):
    path, table, metadata = sample
    broken = table.copy()
    broken.loc[5, "trans_x_derivative1"] = np.nan
    with pytest.raises(SemantoksError, match="trans_x_derivative1"):
        select_confounds(broken, resolve_strategy("simple"), metadata, source=path)


def test_dummy_scans_override_and_short_segments(sample):
    path, table, metadata = sample
    _, kept, qc = select_confounds(table, resolve_strategy("simple", {"dummy_scans": 4}), metadata, source=path)
    assert kept.tolist() == list(range(4, 30)) and qc["n_dummy"] == 4
    spiky = table.copy()
    spiky["non_steady_state_outlier01"] = 0.0
    _, kept, qc = select_confounds(spiky, resolve_strategy("simple"), metadata, source=path)
    assert qc["n_dummy"] == 2 and kept[0] == 2


@pytest.mark.parametrize("name, overrides, named", [
    ("denoise", {}, "denoise"),
    ("simple", {"motoin": "full"}, "motoin"),
    ("simple", {"motion": "lots"}, "motion"),
    ("simple", {"n_compcor": 0}, "n_compcor"),
    ("simple", {"fd_threshold": -1}, "fd_threshold"),
    ("simple", {"standardize": "zscore"}, "standardize"),
    ("simple", {"dummy_scans": "some"}, "dummy_scans"),
    ("simple", {"cosine": "yes"}, "cosine"),
    ("simple", {"high_pass": 0.1, "low_pass": 0.08}, "high_pass"),
])
def test_bad_strategies_are_refused_naming_the_key(name, overrides, named):
    with pytest.raises(SemantoksError, match=named):
        resolve_strategy(name, overrides, source="config.yaml")


def test_overrides_apply_key_by_key_without_touching_the_preset():
    strategy = resolve_strategy("scrubbing", {"fd_threshold": 0.3, "standardize": False})
    assert strategy["fd_threshold"] == 0.3 and strategy["standardize"] is False
    assert strategy["std_dvars_threshold"] == 1.5 and strategy["name"] == "scrubbing"
    assert resolve_strategy("scrubbing")["fd_threshold"] == 0.5
    assert json.loads(json.dumps(strategy)) == strategy


def test_unreadable_sidecar_and_table_are_named(tmp_path):
    table = tmp_path / "x_desc-confounds_timeseries.tsv"
    table.write_text("trans_x\n0\n")
    (tmp_path / "x_desc-confounds_timeseries.json").write_text("{not json")
    with pytest.raises(SemantoksError, match="confounds_timeseries.json"):
        load_confounds(table)
    with pytest.raises(SemantoksError, match="not found"):
        load_confounds(tmp_path / "missing.tsv")


def test_the_schema_offers_exactly_the_registered_presets():
    from semantoks.config import load_schema

    schema = load_schema()
    assert set(schema["properties"]["denoise"]["properties"]["strategy"]["enum"]) == set(PRESETS)
