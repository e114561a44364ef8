import dataclasses
import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import signal
from nilearn.maskers import NiftiLabelsMasker

from semantoks.errors import SemantoksError
from semantoks.simulate import (
    NETWORKS,
    SimulationParams,
    cohort_paths,
    derivative_paths,
    plan_cohort,
    run_outputs,
    simulate_cohort,
    simulate_run,
)
from semantoks.confounds import resolve_strategy
from semantoks.parcellate import parcellate_run
from semantoks.simulate import signals
from semantoks.simulate.bold import run_latents
from semantoks.simulate.dynamics import coupling_order_asymmetry, coupling_states, network_dynamics, state_transitions
from semantoks.simulate.grid import build_grid, latent_network
from semantoks.simulate.signals import band_limited

TEMPLATE = "tpl-MNI152NLin2009cAsym"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
# columns fMRIPrep >= 21 writes that the older real sample does not have
V21_FAMILIES = {"rmsd", "csf_wm", "tcompcor", "c_comp_cor_", "w_comp_cor_", "motion_outlier"}


@pytest.fixture(scope="module")
def atlas(templateflow_home):
    try:
        from semantoks.atlas import AtlasSpec, load_atlas
    except ImportError:
        folder = templateflow_home / TEMPLATE
        image = nib.load(folder / f"{TEMPLATE}_res-02_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.nii.gz")
        labels = pd.read_csv(folder / f"{TEMPLATE}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv", sep="\t")
        labels["network"] = labels["name"].str.split("_").str[2]
        labels["hemisphere"] = labels["name"].str.split("_").str[1].str[0]
        return image, labels
    loaded = load_atlas(AtlasSpec(n_parcels=100, n_networks=7), templateflow_home)
    return loaded.image, loaded.labels


@pytest.fixture(scope="module")
def cohort(atlas, tmp_path_factory):
    root = tmp_path_factory.mktemp("simulated")
    image, labels = atlas
    plan = simulate_cohort(root, image, labels, n_subjects=4, seed=1, resolution_mm=6, n_volumes=(80, 100))
    return plan, root


def _confounds(root, run):
    return pd.read_csv(derivative_paths(root, run)["confounds"], sep="\t", na_values="n/a")


def _family(column):
    return re.sub(r"\d+$", "", column)


def test_plan_is_deterministic_and_depends_on_seed():
    assert plan_cohort(8, seed=3) == plan_cohort(8, seed=3)
    assert plan_cohort(8, seed=3).subjects != plan_cohort(8, seed=4).subjects


def test_default_plan_covers_the_cases_the_pipeline_must_handle():
    plan = plan_cohort()
    assert len(plan.subjects) == 48
    assert sum(s.diagnosis == "patient" for s in plan.subjects) == 24
    assert {s.sex for s in plan.subjects} == {"M", "F"}
    assert {run.tr for run in plan.runs} == {2.0, 1.5}
    assert any(run.session for run in plan.runs) and any(run.session is None for run in plan.runs)
    assert any(run.run for run in plan.runs) and any(run.run is None for run in plan.runs)
    assert all(150 <= run.n_volumes <= 260 for run in plan.runs)
    heavy_subjects = [s for s in plan.subjects if s.heavy_motion]
    assert 3 <= len(heavy_subjects) <= 7
    assert all(plan.runs_of(s.label)[0].heavy_motion for s in heavy_subjects)
    assert len({run.scan_id for run in plan.runs}) == len(plan.runs)


def test_plan_refuses_bad_arguments_with_a_clear_error():
    with pytest.raises(SemantoksError, match="n_subjects"):
        plan_cohort(n_subjects=1)
    with pytest.raises(SemantoksError, match="no run"):
        plan_cohort(4).run("sub-99_task-rest")


def test_written_files_are_exactly_the_planned_ones(cohort):
    plan, root = cohort
    expected = {p for run in plan.runs for p in run_outputs(root, run)} | set(cohort_paths(root).values())
    written = {p for p in root.rglob("*") if p.is_file()}
    assert written == expected
    for run in plan.runs:
        paths = derivative_paths(root, run)
        assert paths["bold"].name.startswith(run.scan_id + "_space-MNI152NLin2009cAsym_desc-preproc_bold")
        assert json.loads(paths["sidecar"].read_text())["RepetitionTime"] == run.tr
        assert json.loads(paths["raw_sidecar"].read_text())["RepetitionTime"] == run.tr


def test_bold_is_int16_on_the_coarse_grid_aligned_with_the_atlas(cohort, atlas):
    plan, root = cohort
    run = plan.runs[0]
    bold = nib.load(derivative_paths(root, run)["bold"])
    mask = nib.load(derivative_paths(root, run)["mask"])
    assert bold.shape == (33, 39, 33, run.n_volumes)
    assert bold.get_data_dtype() == np.int16
    assert bold.header.get_zooms() == pytest.approx((6.0, 6.0, 6.0, run.tr))
    assert np.allclose(bold.affine[:3, 3], atlas[0].affine[:3, 3])
    data = np.asarray(bold.dataobj)
    inside = np.asarray(mask.dataobj).astype(bool)
    assert not data[~inside].any()
    assert (data[inside].mean(axis=1) > 100).all()
    # the atlas sampled on this grid lies inside the brain mask
    centres = nib.affines.apply_affine(np.linalg.inv(atlas[0].affine), nib.affines.apply_affine(
        bold.affine, np.argwhere(np.ones(inside.shape, dtype=bool))))
    labels = np.asarray(atlas[0].dataobj)[tuple(np.rint(centres).astype(int).T)].reshape(inside.shape)
    assert inside[labels > 0].all()


def test_participants_and_descriptions(cohort):
    plan, root = cohort
    paths = cohort_paths(root)
    table = pd.read_csv(paths["participants"], sep="\t", keep_default_na=False)
    assert list(table["participant_id"]) == [s.participant_id for s in plan.subjects]
    assert set(table.columns) == set(json.loads(paths["participants_sidecar"].read_text()))
    assert not (table == "n/a").any().any()
    assert table["age"].between(18, 70).all()
    generated = json.loads(paths["derivatives_description"].read_text())["GeneratedBy"][0]
    assert generated["Name"] == "semantoks-simulate" and "fMRIPrep" in generated["Description"]
    truth = json.loads(paths["ground_truth"].read_text())
    assert [s["participant_id"] for s in truth["subjects"]] == list(table["participant_id"])
    assert truth["networks"] == list(NETWORKS)
    assert list(table["score"]) == [s.score for s in plan.subjects]
    assert [s["spectral_exponent"]["Default"] for s in truth["subjects"]] == [
        round(s.exponent[NETWORKS.index("Default")], 4) for s in plan.subjects]
    assert list(table["state_order"]) == [s["state_order"] for s in truth["subjects"]] == [
        s.state_order for s in plan.subjects]
    kinds = {(e["phenotype"], e["kind"]) for e in truth["effects"]}
    assert {("diagnosis", "spectral_exponent"), ("age", "spectral_exponent"), ("score", "spectral_exponent"),
            ("state_order", "state_order")} <= kinds


def test_confounds_use_fmriprep_names_and_ranges(cohort, shared_data):
    plan, root = cohort
    real = pd.read_csv(shared_data / "fmriprep_confounds_sample" / "test_desc-confounds_regressors.tsv",
                       sep="\t", na_values="n/a")
    real_families = {_family(c) for c in real.columns if not c.startswith("aroma_motion")}
    run = next(r for r in plan.runs if not r.heavy_motion)
    table = _confounds(root, run)
    ours = {_family(c) for c in table.columns}
    assert real_families <= ours
    assert ours <= real_families | V21_FAMILIES
    first_row_missing = {c for c in table.columns if np.isnan(table[c].iloc[0])}
    assert first_row_missing == {c for c in table.columns if "derivative1" in c} | {
        "framewise_displacement", "dvars", "std_dvars", "rmsd"}
    assert not table.iloc[1:].isna().any().any()
    for column in ("global_signal", "csf", "white_matter"):
        assert 0.5 < table[column].mean() / real[column].mean() < 2.0
    # as in real data: CSF brightest, then white matter, then the whole-brain mean
    assert table["csf"].mean() > table["white_matter"].mean() > table["global_signal"].mean()
    assert 0.8 < table["std_dvars"].median() < 1.3
    assert 0.5 < table["dvars"].median() / real["dvars"].median() < 3.0
    assert 0.03 < table["framewise_displacement"].mean() < 0.4


def test_compcor_cosine_and_outlier_columns(cohort):
    plan, root = cohort
    run = next(r for r in plan.runs if not r.heavy_motion)
    table = _confounds(root, run)
    sidecar = json.loads(derivative_paths(root, run)["confounds_sidecar"].read_text())
    steady = table.iloc[run.n_dummy:]
    for prefix, mask in (("a", "combined"), ("c", "CSF"), ("w", "WM")):
        names = [c for c in table.columns if c.startswith(f"{prefix}_comp_cor_")]
        assert names and all(sidecar[n]["Mask"] == mask and sidecar[n]["Retained"] for n in names)
        assert sidecar[names[-1]]["CumulativeVarianceExplained"] >= 0.5
        assert len(names) == 1 or sidecar[names[-2]]["CumulativeVarianceExplained"] < 0.5
        assert np.allclose((steady[names] ** 2).sum(), 1.0, atol=1e-3)
        assert (table[names].iloc[: run.n_dummy] == 0).all().all()
    assert [c for c in table.columns if c.startswith("t_comp_cor")] == [f"t_comp_cor_{k:02d}" for k in range(6)]
    cosines = steady[[c for c in table.columns if c.startswith("cosine")]].to_numpy()
    assert cosines.shape[1] == int(2 * len(steady) * run.tr // 128) - 1
    assert np.allclose(cosines.T @ cosines, np.eye(cosines.shape[1]), atol=1e-3)
    outliers = table[[c for c in table.columns if c.startswith("non_steady_state_outlier")]].to_numpy()
    assert outliers.shape[1] == run.n_dummy and np.array_equal(outliers[: run.n_dummy], np.eye(run.n_dummy))
    # non-steady-state volumes are brighter, as at the start of a real run
    assert table["global_signal"].iloc[0] > 1.2 * steady["global_signal"].median()
    spikes = table[[c for c in table.columns if c.startswith("motion_outlier")]].to_numpy().sum(axis=1)
    flagged = (table["framewise_displacement"] > 0.5) | (table["std_dvars"] > 1.5)
    assert np.array_equal(spikes.astype(bool), flagged.to_numpy())


def test_framewise_displacement_tracks_the_motion_parameters(cohort):
    plan, root = cohort
    for run in plan.runs:
        table = _confounds(root, run)
        motion = table[MOTION].to_numpy()
        change = np.abs(np.diff(motion, axis=0))
        power_fd = change[:, :3].sum(axis=1) + 50.0 * change[:, 3:].sum(axis=1)
        assert np.allclose(table["framewise_displacement"].iloc[1:], power_fd, rtol=1e-3, atol=1e-4)
        assert np.corrcoef(table["rmsd"].iloc[1:], power_fd)[0, 1] > 0.8
        assert np.allclose(table["trans_x_derivative1"].iloc[1:], np.diff(motion[:, 0]), rtol=1e-3, atol=1e-5)


def test_heavy_movers_have_high_fd_and_others_do_not(cohort):
    plan, root = cohort
    heavy = [r for r in plan.runs if r.heavy_motion]
    assert heavy
    for run in plan.runs:
        fd = _confounds(root, run)["framewise_displacement"]
        if run.heavy_motion:
            assert fd.mean() > 0.5 and (fd > 0.5).mean() > 0.3
        else:
            assert fd.mean() < 0.4 and (fd > 0.5).mean() < 0.15


def _within_minus_between(series, networks):
    corr = np.corrcoef(series.T)
    upper = np.triu_indices(len(networks), 1)
    same = (networks[:, None] == networks[None, :])[upper]
    return corr[upper][same].mean() - corr[upper][~same].mean()


@pytest.mark.filterwarnings("ignore:From release 0.14.0:DeprecationWarning")
def test_network_structure_survives_parcel_averaging_and_denoising_improves_it(cohort, atlas):
    plan, root = cohort
    image, labels = atlas
    networks = labels["network"].to_numpy()
    masker = NiftiLabelsMasker(image, resampling_target="data", strategy="mean")
    for run in (r for r in plan.runs if not r.heavy_motion):
        paths = derivative_paths(root, run)
        parcels = masker.fit_transform(str(paths["bold"]))[run.n_dummy:]
        table = _confounds(root, run).iloc[run.n_dummy:]
        columns = MOTION + [f"{c}_derivative1" for c in MOTION] + ["csf", "white_matter"]
        columns += [c for c in table.columns if c.startswith("cosine")]
        raw = _within_minus_between(parcels, networks)
        cleaned = signal.clean(parcels, confounds=table[columns].fillna(0).to_numpy(), detrend=True,
                               standardize="zscore_sample")
        denoised = _within_minus_between(cleaned, networks)
        assert raw > 0.05
        assert denoised > raw + 0.1


def test_phenotype_effects_are_planted_in_the_coupling():
    plan = plan_cohort()
    params = plan.params
    cont, default, dorsattn, vis = (NETWORKS.index(n) for n in ("Cont", "Default", "DorsAttn", "Vis"))
    patients = np.array([s.diagnosis == "patient" for s in plan.subjects])
    cont_default = np.array([s.coupling[cont][default] for s in plan.subjects])
    difference = cont_default[patients].mean() - cont_default[~patients].mean()
    assert difference == pytest.approx(params.patient_cont_default_delta, abs=0.06)
    ages = np.array([s.age for s in plan.subjects])
    dorsattn_default = np.array([s.coupling[dorsattn][default] for s in plan.subjects])
    assert np.corrcoef(ages, dorsattn_default)[0, 1] > 0.7
    females = np.array([s.sex == "F" for s in plan.subjects])
    vis_amplitude = np.array([s.amplitude[vis] for s in plan.subjects])
    assert vis_amplitude[females].mean() / vis_amplitude[~females].mean() > 1.2
    for subject in plan.subjects:
        assert np.all(np.linalg.eigvalsh(np.array(subject.coupling)) > 0)


def test_spectral_exponents_are_planted_per_network():
    plan = plan_cohort()
    params = plan.params
    salience, vis, default = (NETWORKS.index(n) for n in ("SalVentAttn", "Vis", "Default"))
    exponent = np.array([s.exponent for s in plan.subjects])
    patients = np.array([s.diagnosis == "patient" for s in plan.subjects])
    difference = exponent[patients, salience].mean() - exponent[~patients, salience].mean()
    assert difference == pytest.approx(params.patient_salventattn_exponent, abs=0.25)
    ages = np.array([s.age for s in plan.subjects])
    scores = np.array([s.score for s in plan.subjects])
    assert np.corrcoef(ages, exponent[:, vis])[0, 1] < -0.8
    assert np.corrcoef(scores, exponent[:, default])[0, 1] > 0.9
    # score is its own phenotype: independent of the others by construction
    assert abs(np.corrcoef(scores, ages)[0, 1]) < 0.3


def test_a_positive_exponent_slows_a_series_and_zero_keeps_the_flat_band():
    draw = lambda exponent: band_limited(np.random.default_rng(0), 400, 50, 2.0, 0.01, 0.1, exponent=exponent)
    flat = band_limited(np.random.default_rng(0), 400, 50, 2.0, 0.01, 0.1)
    np.testing.assert_allclose(draw(np.zeros(50)), flat)
    lag1 = {e: np.mean([np.corrcoef(x[:-1], x[1:])[0, 1] for x in draw(np.full(50, e)).T]) for e in (-1.0, 0.0, 1.5)}
    assert lag1[-1.0] + 0.15 < lag1[0.0] < lag1[1.5] - 0.15


@pytest.fixture(scope="module")
def denoised_dynamics(atlas, tmp_path_factory):
    """Per-subject network slow-power fractions after the workflow's default denoising (z-scored parcels).

    The slow-power fraction, not lag-1 autocorrelation: after the nilearn-equal scrubbing preset censors frames,
    lag-1 over the few consecutive pairs left is the noisier reading of the same planted exponent.
    """
    root = tmp_path_factory.mktemp("dynamics")
    image, labels = atlas
    networks = labels["network"].tolist()
    plan = simulate_cohort(root, image, labels, n_subjects=24, seed=2, resolution_mm=6, n_volumes=(150, 200))
    strategy = resolve_strategy("scrubbing")
    rows = []
    for run in plan.runs:
        paths = derivative_paths(root, run)
        out = root / "timeseries" / f"{run.scan_id}.parquet"
        record = parcellate_run(paths["bold"], paths["mask"], paths["confounds"], image, labels, strategy, out,
                                out.with_suffix(".json"), "Schaefer100x7", "MNI152NLin2009cAsym", "sim",
                                sidecar_path=paths["sidecar"])
        if not record["included"]:
            continue
        table = pd.read_parquet(out)
        measured = network_dynamics(table.drop(columns="frame").to_numpy(), networks, run.tr, table["frame"].to_numpy())
        rows.append({"subject": run.subject, **{network: values[1] for network, values in measured.items()}})
    slow = pd.DataFrame(rows).groupby("subject").mean()
    subjects = pd.DataFrame([{"subject": s.label, "age": s.age, "score": s.score, "patient": s.diagnosis == "patient"}
                             for s in plan.subjects]).set_index("subject")
    return slow.join(subjects, how="inner")


def _cohens_d(values, group):
    a, b = values[group], values[~group]
    return (a.mean() - b.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)


def test_planted_dynamics_effects_survive_denoising_and_z_scoring(denoised_dynamics):
    table = denoised_dynamics
    assert len(table) >= 20
    patients = table["patient"].to_numpy()
    # 24 subjects after the nilearn-equal scrubbing preset (36 regressors, FD 0.5): r -0.38 and 0.64 here
    assert _cohens_d(table["SalVentAttn"].to_numpy(), patients) > 1.0
    assert np.corrcoef(table["age"], table["Vis"])[0, 1] < -0.3
    assert np.corrcoef(table["score"], table["Default"])[0, 1] > 0.45
    # each effect sits in its own network
    assert abs(_cohens_d(table["Default"].to_numpy(), patients)) < 1.0
    assert abs(np.corrcoef(table["score"], table["Vis"])[0, 1]) < 0.45


def test_same_seed_gives_identical_files_and_another_seed_differs(atlas, tmp_path):
    image, labels = atlas
    plan = plan_cohort(2, seed=5, n_volumes=(20, 24))
    grid = build_grid(image, labels, plan.resolution_mm, plan.params)
    run = plan.runs[0]
    for folder in ("a", "b"):
        simulate_run(plan, run.scan_id, image, labels, tmp_path / folder, grid=grid)
    for path in run_outputs(tmp_path / "a", run):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    other = dataclasses.replace(plan, seed=6)
    simulate_run(other, run, image, labels, tmp_path / "c", grid=grid)
    first = np.asarray(nib.load(derivative_paths(tmp_path / "a", run)["bold"]).dataobj)
    second = np.asarray(nib.load(derivative_paths(tmp_path / "c", run)["bold"]).dataobj)
    assert first.shape == second.shape and not np.array_equal(first, second)


def test_full_2mm_template_grid(atlas, tmp_path):
    image, labels = atlas
    plan = plan_cohort(2, seed=0, resolution_mm=2, n_volumes=(20, 22))
    run = next(r for r in plan.runs if not r.heavy_motion)
    simulate_run(plan, run, image, labels, tmp_path)
    paths = derivative_paths(tmp_path, run)
    bold = nib.load(paths["bold"])
    assert bold.shape == (97, 115, 97, run.n_volumes)
    assert np.allclose(bold.affine, image.affine)
    inside = np.asarray(nib.load(paths["mask"]).dataobj).astype(bool)
    assert inside[np.asarray(image.dataobj) > 0].all()
    assert len(_confounds(tmp_path, run)) == run.n_volumes


def test_seventeen_network_names_map_onto_the_latent_networks(templateflow_home):
    expected = {"VisCent": "Vis", "VisPeri": "Vis", "SomMotB": "SomMot", "LimbicA": "Limbic", "ContC": "Cont",
                "DefaultB": "Default", "TempPar": "Default", "Subcortex": "Subcortex", "Default": "Default"}
    for name, network in expected.items():
        assert NETWORKS[latent_network(name)] == network
    assert latent_network("Unassigned") == -1


def test_documented_parameters_match_the_code(repo_root):
    text = (repo_root / "docs" / "simulated_cohort.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| `(.+)` \|$", text.split("## Parameters")[1], flags=re.M))
    actual = {f.name: repr(getattr(SimulationParams(), f.name)) for f in dataclasses.fields(SimulationParams)}
    assert documented == actual


def _welch_t(values, group):
    a, b = values[group], values[~group]
    return (a.mean(axis=0) - b.mean(axis=0)) / np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))


@pytest.fixture(scope="module")
def state_order_cohort():
    """Per subject (mean over runs) of the simulated latents: FC, per-network log-PSD bins, dwell and order."""
    plan = plan_cohort(48, seed=0)
    first, second = (NETWORKS.index(n) for n in plan.params.state_networks)
    upper = np.triu_indices(len(NETWORKS), 1)
    rows = []
    for subject in plan.subjects:
        fc, spectra, dwell, order = [], [], [], []
        for run in plan.runs_of(subject.label):
            latents = run_latents(plan, subject, run, np.random.default_rng([subject.number, run.order]))
            fc.append(np.corrcoef(latents.T)[upper])
            freqs = np.fft.rfftfreq(run.n_volumes, d=run.tr)
            power = np.abs(np.fft.rfft(latents - latents.mean(axis=0), axis=0)) ** 2
            edges = np.geomspace(0.01, 0.1, 6)
            spectra.append(np.log([power[(freqs >= lo) & (freqs < hi)].mean(axis=0)
                                   for lo, hi in zip(edges[:-1], edges[1:])]).ravel())
            dwell.append(state_transitions(coupling_states(latents[:, first], latents[:, second],
                                                           int(round(30 / run.tr))), min_dwell=4)[2] * run.tr)
            order.append(coupling_order_asymmetry(latents[:, first], latents[:, second], run.tr))
        rows.append((np.mean(fc, axis=0), np.mean(spectra, axis=0), np.mean(dwell), np.mean(order)))
    reverse = np.array([s.state_order == "reverse" for s in plan.subjects])
    return reverse, [np.array(column) for column in zip(*rows)]


def test_state_order_is_balanced_and_independent_of_the_other_phenotypes():
    plan = plan_cohort()
    orders = np.array([s.state_order for s in plan.subjects])
    assert sorted(set(orders)) == ["forward", "reverse"] and (orders == "reverse").sum() == 24
    patients = np.array([s.diagnosis == "patient" for s in plan.subjects])
    assert abs(np.corrcoef(orders == "reverse", patients)[0, 1]) < 0.4


def test_state_order_leaves_fc_and_spectra_alone_but_reverses_the_coupling_order(state_order_cohort):
    reverse, (fc, spectra, dwell, order) = state_order_cohort
    # 28 FC pairs and 40 log-PSD bins: no group difference beyond sampling error (|t| < 3.5 ~ p 0.001 each)
    assert np.abs(_welch_t(fc, reverse)).max() < 3.5
    assert np.abs(_welch_t(spectra, reverse)).max() < 3.5
    # the state pair's coupling does switch (dwell tens of seconds), at the same rate in both groups
    assert 20 < dwell.mean() < 120 and abs(_welch_t(dwell, reverse)) < 3.0
    # only the direction of time tells the groups apart: strong -> none -> negative (> 0) or back (< 0)
    assert order[~reverse].mean() > 0 > order[reverse].mean()
    assert _welch_t(order, reverse) < -4.0


def test_switching_couples_only_the_state_pair_and_keeps_every_other_series():
    plan = plan_cohort(4, seed=0)
    subject, run = plan.subjects[0], plan.runs[0]
    switched = run_latents(plan, subject, run, np.random.default_rng(0))
    still = run_latents(plan, dataclasses.replace(subject, state_order="forward"), run, np.random.default_rng(0))
    kept = [i for i, n in enumerate(NETWORKS) if n not in plan.params.state_networks]
    np.testing.assert_array_equal(switched[:, kept], still[:, kept])
    constant = dataclasses.replace(plan, params=dataclasses.replace(plan.params, state_coupling_deltas=(0.0, 0.0, 0.0)))
    unswitched = run_latents(constant, subject, run, np.random.default_rng(0))
    np.testing.assert_allclose(unswitched, signals.network_latents(
        np.random.default_rng(0), run.n_volumes, run.tr, subject.coupling, subject.amplitude, plan.params.band_hz,
        subject.exponent), atol=1e-12)


def test_state_estimates_count_forward_steps_and_time_reversal_flips_the_order_statistic():
    sawtooth = np.array([2, 2, 2, 1, 2, 1, 1, 1, 0, 0, 0, 2, 2, 2, 1, 1, 1])
    assert state_transitions(sawtooth, min_dwell=2) == (4, 0, len(sawtooth) / 5)
    assert state_transitions(sawtooth[::-1], min_dwell=2)[:2] == (0, 4)
    rng = np.random.default_rng(0)
    first, second = band_limited(rng, 200, 2, 2.0, 0.01, 0.1).T
    forward = coupling_order_asymmetry(first, second, 2.0)
    assert coupling_order_asymmetry(first[::-1], second[::-1], 2.0) == pytest.approx(-forward)
