"""The whole Snakemake DAG, run for real on a small simulated cohort, and dry runs of other cohort kinds."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from semantoks.dataset import iter_scans, read_atlas_metadata
from semantoks.simulate import plan_cohort
from semantoks.snakemake_threads import job_timeline, most_threads_at_once

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# the small demo every end-to-end test runs: .test/config/config.yaml (the distribution convention)
DEMO_CONFIG_FILE = Path(__file__).resolve().parents[1] / ".test" / "config" / "config.yaml"
DEMO_CONFIG = yaml.safe_load(DEMO_CONFIG_FILE.read_text())
SIMULATE = DEMO_CONFIG["cohorts"]["demo"]["simulate"]


def run_snakemake(workdir, repo_root, templateflow_home, *args, check=True):
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(templateflow_home), "SEMANTOKS_CACHE_DIR": str(workdir / ".cache")}
    command = [*SNAKEMAKE, "--snakefile", str(repo_root / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, repo_root, templateflow_home):
    workdir = tmp_path_factory.mktemp("demo")
    shutil.copy(DEMO_CONFIG_FILE, workdir / "config.yaml")
    run_snakemake(workdir, repo_root, templateflow_home)
    return workdir / "results"


@pytest.mark.slow
def test_demo_dataset_has_schema_metadata_and_one_row_per_included_scan(demo_run):
    plan = plan_cohort(**SIMULATE)
    root = demo_run / "dataset"
    manifest = pd.read_parquet(root / "manifest" / "atlas=Schaefer100x7" / "cohort=demo" / "part-0.parquet")
    assert sorted(manifest["scan_id"]) == sorted(run.scan_id for run in plan.runs)

    table = ds.dataset(root / "timeseries", partitioning="hive").to_table()
    assert table.num_rows == int(manifest["included"].sum()) > 0
    assert set(table.column("scan_id").to_pylist()) == set(manifest.loc[manifest["included"], "scan_id"])
    assert table.schema.field("timeseries").type.value_type == "float"

    metadata = read_atlas_metadata(root, "Schaefer100x7")
    assert metadata["atlas_id"] == "Schaefer100x7" and metadata["space"] == "MNI152NLin2009cAsym"
    assert [label["name"] for label in metadata["labels"]][:2] == ["7Networks_LH_Vis_1", "7Networks_LH_Vis_2"]
    assert metadata["networks"] == ["Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default"]
    assert metadata["strategy"]["name"] == "scrubbing" and metadata["strategy"]["fd_threshold"] == 0.5
    assert metadata["config_hash"] and metadata["pipeline_version"]
    assert json.loads((root / "dataset_description.json").read_text())["DatasetType"] == "derivative"


@pytest.mark.slow
def test_heavy_motion_runs_are_skipped_with_their_reason_in_the_manifest(demo_run):
    heavy = {run.scan_id for run in plan_cohort(**SIMULATE).runs if run.heavy_motion}
    manifest = pd.read_parquet(demo_run / "dataset" / "manifest" / "atlas=Schaefer100x7" / "cohort=demo" / "part-0.parquet")
    excluded = manifest[~manifest["included"]]
    assert heavy and set(excluded["scan_id"]) == heavy
    assert excluded["reason"].str.contains("below the 120 s the strategy requires").all()
    assert (excluded["mean_fd"] > 0.5).all() and (manifest.loc[manifest["included"], "mean_fd"] < 0.5).all()


@pytest.mark.slow
def test_planted_network_structure_is_visible_in_the_exported_time_series(demo_run):
    root = demo_run / "dataset"
    networks = np.array([label["network"] for label in read_atlas_metadata(root, "Schaefer100x7")["labels"]])
    same = networks[:, None] == networks[None, :]
    off_diagonal = ~np.eye(len(networks), dtype=bool)
    gaps = []
    for scan in iter_scans(root, "Schaefer100x7"):
        corr = np.corrcoef(scan.data.T)
        gaps.append(np.nanmean(corr[same & off_diagonal]) - np.nanmean(corr[~same]))
    assert len(gaps) > 20 and min(gaps) > 0.1


@pytest.mark.slow
def test_connectivity_baseline_recovers_the_planted_diagnosis_above_its_shuffled_control(demo_run):
    summary = pd.read_csv(demo_run / "probes" / "summary.tsv", sep="\t")
    row = summary.query("feature_set == 'fc' and phenotype == 'diagnosis' and metric == 'balanced_accuracy'").iloc[0]
    assert row["status"] == "ok" and row["n_repeats"] == 5
    assert row["mean"] > row["shuffled_mean"] + 0.1
    # the language sets (the .test config turns the stages on) sit beside the main ones
    codes = f"codes_{DEMO_CONFIG['language']['codes_k']}"
    vq = f"vq_{DEMO_CONFIG['language']['vq_codebook_size']}"
    baselines = {"fc", "network_fc", "tangent_fc", "dynamics", "fc+dynamics"}
    # model and random_init pooled over the pretraining seeds, and one row per seed
    per_seed = {f"{name}@{seed}" for name in ("model", "random_init") for seed in range(DEMO_CONFIG["pretrain"]["seeds"])}
    assert set(summary["feature_set"]) == {"model", "random_init", *per_seed, *baselines, "model_aligned", codes, vq}
    assert (summary.query("feature_set in @baselines")["status"] == "ok").all()
    assert set(summary["phenotype"]) == {"diagnosis", "age", "age_binned", "state_order"}
    assert summary["shuffled_mean"].notna().all()


@pytest.mark.slow
def test_checkpoint_carries_atlas_order_and_preprocessing(demo_run):
    import torch

    checkpoint = torch.load(demo_run / "models" / "tiny_Schaefer100x7" / "seed-0" / "checkpoint.pt", weights_only=False)
    identity = checkpoint["data_identity"]
    labels = pd.read_csv(demo_run / "atlas" / "Schaefer100x7" / "labels.tsv", sep="\t")
    assert identity["atlas_id"] == "Schaefer100x7"
    assert identity["parcel_names"] == labels["name"].tolist()
    assert identity["preprocessing"]["model_tr"] == 2.0 and identity["strategy"]["name"] == "scrubbing"
    embeddings = pq.read_table(demo_run / "features" / "model" / "seed-0.parquet")
    assert embeddings.num_rows == pq.read_metadata(
        demo_run / "dataset" / "timeseries" / "atlas=Schaefer100x7" / "cohort=demo" / "part-0.parquet").num_rows


@pytest.mark.slow
def test_language_stages_end_with_evaluation_codes_and_report_section(demo_run):
    language = demo_run / "language"
    results = json.loads((language / "evaluation.json").read_text())
    assert {"aligned", "unaligned_ridge", "network_fc_ridge"} <= set(results["retrieval_scan"])
    assert results["retrieval_scan"]["aligned"]["n"] == results["split"]["n_test_scans"] > 0
    assert set(results["few_shot"]["diagnosis"]) == {"aligned", "unaligned", "codes", "vq_codes", "network_fc"}
    assert pd.read_parquet(language / "codes" / "codes_8.parquet")["embedding"].map(len).eq(7 * 8).all()
    assert pd.read_parquet(language / "vq" / "vq_8.parquet")["embedding"].map(len).eq(7 * 8).all()
    # tie-aware retrieval beside the scan-blind constant row, repeated over the .test config's splits
    assert "constant" in results["retrieval_scan"] and "constant" in results["retrieval_network"]
    assert results["retrieval_splits"]["seeds"] == [0, 1, 2]
    assert {"diagnosis", "diagnosis_logistic_probe"} <= set(results["label_transfer"])
    assert "Language-aligned tokens" in (demo_run / "report" / "report.html").read_text()


@pytest.mark.slow
def test_language_feature_sets_are_probed_on_the_main_splits_and_reach_the_summary(demo_run):
    summary = pd.read_csv(demo_run / "probes" / "summary.tsv", sep="\t", na_values=["n/a"])
    assert {"model_aligned", "codes_8"} <= set(summary["feature_set"])
    main = json.loads((demo_run / "probes" / "diagnosis.json").read_text())
    language = json.loads((demo_run / "probes" / "language" / "diagnosis.json").read_text())
    assert language["splits"] == main["splits"]
    assert list(language["feature_sets"]) == ["model_aligned", "codes_8", "vq_8"]
    paired = pd.read_csv(demo_run / "probes" / "paired.tsv", sep="\t", na_values=["n/a"])
    assert {("model_aligned", "model"), ("codes_8", "network_fc")} <= set(zip(paired["a"], paired["b"]))
    assert "model_aligned" in (demo_run / "report" / "report.html").read_text()


@pytest.mark.slow
def test_a_language_edit_reruns_the_language_probes_but_no_other_probe(demo_run, repo_root, templateflow_home):
    config_file = demo_run.parent / "config.yaml"
    original = config_file.read_text()
    config = yaml.safe_load(original)
    config["language"]["align_steps"] += 1
    config_file.write_text(yaml.safe_dump(config))
    try:
        jobs = run_snakemake(demo_run.parent, repo_root, templateflow_home, "-n").stdout
    finally:
        config_file.write_text(original)
    counts = dict(line.split()[:2] for line in jobs.splitlines() if len(line.split()) == 2)
    # one language probe per phenotype job: diagnosis, age, age_binned, state_order
    assert counts.get("probe_language") == "4" and counts.get("align") == "1"
    assert "probe_phenotype" not in counts and "embed" not in counts


@pytest.mark.slow
def test_report_is_written_and_a_finished_workflow_has_nothing_to_do(demo_run, repo_root, templateflow_home):
    html = (demo_run / "report" / "report.html").read_text()
    assert "diagnosis" in html and "data:image/png;base64" in html
    # health is measured at the last step too, so even the short test run gets a plain verdict line
    assert re.search(r"<b>model</b>: <b>(learning|indistinguishable from its random init|collapsed)</b> at step 20", html)
    result = run_snakemake(demo_run.parent, repo_root, templateflow_home, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_running_threads_never_exceed_the_cores(demo_run):
    # the fixture's run is the first log; Snakemake 9.10-9.16 ran 5-7 threads on 2 cores before the fix
    first_log = sorted((demo_run.parent / ".snakemake" / "log").glob("*.snakemake.log"))[0]
    jobs = job_timeline(first_log.read_text())
    assert len(jobs) > 50
    assert most_threads_at_once(jobs) <= 2


def test_lint_is_clean(repo_root, templateflow_home, tmp_path):
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(templateflow_home)}
    result = subprocess.run([*SNAKEMAKE, "--lint"], cwd=repo_root, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_raw_bids_cohort_dry_run_shows_one_fmriprep_job_per_subject(repo_root, templateflow_home, tmp_path):
    bids = tmp_path / "bids"
    (bids).mkdir()
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "raw", "BIDSVersion": "1.9.0"}))
    for subject in ("01", "02"):
        func = bids / f"sub-{subject}" / "func"
        func.mkdir(parents=True)
        (func / f"sub-{subject}_task-rest_bold.nii.gz").write_bytes(b"")
        (func / f"sub-{subject}_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    license_file = tmp_path / "license.txt"
    license_file.write_text("stand-in licence\n")
    config = {
        "cohorts": {"raw": {"source": "bids", "bids": str(bids)}},
        "fmriprep": {"runner": "docker", "fs_license": str(license_file)},
        "pretrain": {"enabled": False},
        "probe": {"phenotypes": {}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, repo_root, templateflow_home, "-n")
    jobs = result.stdout
    assert "fmriprep_subject" in jobs and "parcellate_run" in jobs
    counts = dict(line.split()[:2] for line in jobs.splitlines() if line.split()[:1] in (["fmriprep_subject"], ["parcellate_run"]))
    assert counts == {"fmriprep_subject": "2", "parcellate_run": "2"}


@pytest.mark.slow
def test_paired_table_compares_the_model_with_its_random_init_control(demo_run):
    paired = pd.read_csv(demo_run / "probes" / "paired.tsv", sep="\t", na_values=["n/a"])
    row = paired.query("phenotype == 'diagnosis' and metric == 'balanced_accuracy' and a == 'model' and b == 'random_init'")
    assert len(row) == 1 and row.iloc[0]["n_splits"] == 5 and 0 <= row.iloc[0]["p_corrected"] <= 1
    # pooled over the seeds, and per seed against the same seed's control; Holm never lowers a p
    assert row.iloc[0]["p_corrected"] <= row.iloc[0]["p_holm"] <= 1 and pd.isna(row.iloc[0]["seed"])
    seeds = paired.query("phenotype == 'diagnosis' and metric == 'balanced_accuracy' and a.str.startswith('model@')"
                         " and b.str.startswith('random_init@')")
    assert sorted(zip(seeds["a"], seeds["b"])) == [("model@0", "random_init@0"), ("model@1", "random_init@1")]
    summary = pd.read_csv(demo_run / "probes" / "summary.tsv", sep="\t", na_values=["n/a"])
    model = summary.query("phenotype == 'diagnosis' and metric == 'balanced_accuracy' and feature_set == 'model'")
    per_seed = summary.query("phenotype == 'diagnosis' and metric == 'balanced_accuracy' and feature_set.str.startswith('model@')")
    assert model.iloc[0]["n_seeds"] == 2 and model.iloc[0]["seed_min"] == per_seed["mean"].min()
    assert "Paired comparisons" in (demo_run / "report" / "report.html").read_text()


def test_fused_feature_set_reads_its_parts_and_writes_no_file_of_its_own(repo_root, templateflow_home, tmp_path):
    probe = {**DEMO_CONFIG["probe"], "feature_sets": ["network_fc", "model+network_fc"]}
    # language off: its evaluation reads random_init and network_fc of its own, which would blur the count
    config = {**DEMO_CONFIG, "probe": probe, "language": {"enabled": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = run_snakemake(tmp_path, repo_root, templateflow_home, "-n").stdout
    counts = dict(line.split()[:2] for line in jobs.splitlines() if len(line.split()) == 2)
    assert counts.get("embed") == str(DEMO_CONFIG["pretrain"]["seeds"]) and counts.get("connectivity_features") == "1"
    assert "features/model/seed-0.parquet" in jobs and "features/network_fc.parquet" in jobs
    assert "features/model+network_fc" not in jobs


def test_each_pretraining_seed_is_one_pretrain_job_in_its_own_folder_and_one_embed_per_set(
    repo_root, templateflow_home, tmp_path
):
    config = {**DEMO_CONFIG, "pretrain": {**DEMO_CONFIG["pretrain"], "seed": 5, "seeds": 3}, "language": {"enabled": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = run_snakemake(tmp_path, repo_root, templateflow_home, "-n").stdout
    counts = dict(line.split()[:2] for line in jobs.splitlines() if len(line.split()) == 2)
    assert counts.get("pretrain") == "3" and counts.get("embed") == "6"
    for seed in (5, 6, 7):
        assert f"models/tiny_Schaefer100x7/seed-{seed}/checkpoint.pt" in jobs
        assert f"features/model/seed-{seed}.parquet" in jobs and f"features/random_init/seed-{seed}.parquet" in jobs


def test_baseline_sets_are_written_by_their_registry_rules_and_the_fused_one_by_none(repo_root, templateflow_home,
                                                                                     tmp_path):
    probe = {**DEMO_CONFIG["probe"], "feature_sets": ["tangent_fc", "fc+dynamics"]}
    config = {**DEMO_CONFIG, "probe": probe, "language": {"enabled": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = run_snakemake(tmp_path, repo_root, templateflow_home, "-n").stdout
    counts = dict(line.split()[:2] for line in jobs.splitlines() if len(line.split()) == 2)
    assert counts.get("connectivity_features") == "2" and counts.get("dynamics_features") == "1"
    assert "features/tangent_fc.parquet" in jobs and "features/dynamics.parquet" in jobs
    assert "features/fc+dynamics" not in jobs


def test_misspelled_config_key_stops_the_workflow_with_one_clear_line(repo_root, templateflow_home, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**DEMO_CONFIG, "atlas": {"n_parcel": 200}}))
    result = run_snakemake(tmp_path, repo_root, templateflow_home, "-n", check=False)
    assert result.returncode != 0
    assert "'atlas.n_parcel' is not a known setting; did you mean 'n_parcels'?" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_existing_derivatives_cohort_skips_a_run_without_confounds_with_its_reason(
    repo_root, templateflow_home, tmp_path
):
    from semantoks.atlas import AtlasSpec, load_atlas
    from semantoks.simulate import simulate_cohort

    atlas = load_atlas(AtlasSpec(), templateflow_home=templateflow_home)
    plan = simulate_cohort(tmp_path / "cohort", atlas.image, atlas.labels, n_subjects=4, seed=3)
    broken = sorted((tmp_path / "cohort" / "derivatives" / "fmriprep").rglob("*_desc-confounds_timeseries.tsv"))[0]
    broken.unlink()
    config = {
        "cohorts": {"site": {"source": "fmriprep", "derivatives": str(tmp_path / "cohort" / "derivatives" / "fmriprep")}},
        "pretrain": {"enabled": False},
        "probe": {"phenotypes": {}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, repo_root, templateflow_home)
    manifest = pd.read_parquet(tmp_path / "results" / "dataset" / "manifest" / "atlas=Schaefer100x7" / "cohort=site")
    assert len(manifest) == len(plan.runs)
    skipped = manifest[manifest["scan_id"] == broken.name.split("_desc-")[0]].iloc[0]
    assert not skipped["included"] and "confounds" in skipped["reason"]
    assert manifest.drop(skipped.name)["included"].sum() >= len(plan.runs) - 2


def test_roi_cohort_test_config_dry_runs_from_import_to_report(repo_root, templateflow_home, shared_data, tmp_path):
    text = (repo_root / ".test" / "config_roi" / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(text.replace("/data/", f"{shared_data}/"))
    jobs = run_snakemake(tmp_path, repo_root, templateflow_home, "-n").stdout
    counts = dict(line.split()[:2] for line in jobs.splitlines()
                  if line.split()[:1] in (["import_roi_timeseries"], ["dataset_partition"], ["report"]))
    assert counts == {"import_roi_timeseries": "1", "dataset_partition": "1", "report": "1"}
    assert "parcellate_run" not in jobs and "simulate_subject" not in jobs


def test_a_second_workflow_writing_to_the_same_results_folder_stops_at_parse_time(repo_root, templateflow_home,
                                                                                   tmp_path):
    # run B (`simple`) replaced run A's (`scrubbing`) dataset and checkpoint from another working directory
    from semantoks.results_owner import OWNER_FILE

    shared = tmp_path / "shared_results"
    first, second = tmp_path / "a", tmp_path / "b"
    for workdir in (first, second):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump({**DEMO_CONFIG, "results": str(shared)}))
    labels = f"{shared}/atlas/Schaefer100x7/labels.tsv"
    run_snakemake(first, repo_root, templateflow_home, "-n", labels)
    assert not (shared / OWNER_FILE).exists()
    # a run that executes jobs claims the folder for its working directory
    run_snakemake(first, repo_root, templateflow_home, labels)
    assert json.loads((shared / OWNER_FILE).read_text())["workdir"] == str(first)
    assert run_snakemake(first, repo_root, templateflow_home, "-n").returncode == 0
    result = run_snakemake(second, repo_root, templateflow_home, "-n", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert f"{OWNER_FILE}: this results folder belongs to the workflow run from {first}" in result.stdout + result.stderr
