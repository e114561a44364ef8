"""The ABIDE I study (benchmarks/abide.py, config/abide1.yaml) end to end on a CI-sized slice of abide1_cc200.

Five real sites: Caltech and CMU pretrain, SBL, Leuven_1 and Leuven_2 are the held-out probe sites. Only run
lengths and the site list are shortened; the study's design (hold_out, only_held_out, site_grouped) is the
config's own.
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

ABIDE = "abide1_cc200"
PROBE_SITES = ["SBL", "LEUVEN_1", "LEUVEN_2"]
CI_SIZE = {
    "cohorts": {"abide": {"roi": {"pattern": r"(?:Caltech|CMU_[ab]|SBL|Leuven_[12])_(?P<subject>\d{7})_rois_cc200\.npy"}}},
    "pretrain": {"steps": 4, "batch_size": 8, "checkpoint_every": 4, "hold_out": {"values": PROBE_SITES}},
    "embed": {"n_crops": 1},
    "probe": {"n_repeats": 3, "n_permutations": 0, "feature_sets": ["model", "random_init", "fc"],
              "phenotypes": {"AGE_AT_SCAN": {}, "DX_GROUP": {}}},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_data, repo_root, templateflow_home):
    folder = tmp_path_factory.mktemp("abide_study")
    overrides = folder / "ci.yaml"
    overrides.write_text(yaml.safe_dump(CI_SIZE))
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(templateflow_home), "SEMANTOKS_CACHE_DIR": str(folder / ".cache")}
    command = [sys.executable, str(repo_root / "benchmarks" / "abide.py"), "--study", str(folder / "study"),
               "--data", str(shared_data / ABIDE), "--experiments", "E1", "E4", "--seeds", "2",
               "--overrides", str(overrides)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        log = (folder / "study" / "snakemake.log")
        pytest.fail(f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{log.read_text()[-4000:] if log.exists() else ''}")
    return folder / "study", command, env, shared_data / ABIDE


def sites(data):
    table = pd.read_csv(data / "participants.tsv", sep="\t", dtype={"SUB_ID": str})
    return dict(zip("abide/" + table["SUB_ID"].str.zfill(7), table["SITE_ID"]))


@pytest.mark.slow
def test_no_probed_subject_was_pretrained_on_and_no_site_straddles_a_split(study):
    folder, _, _, data = study
    site_of = sites(data)
    for seed in (0, 1):
        job = json.loads((folder / f"e1_seed{seed}" / "job.json").read_text())
        assert job["probed_seen_in_pretraining"] == 0 and job["steps"] == 4
        # the three probe sites' subjects, all of them held out of pretraining
        assert job["n_never_pretrained"] == job["n_probed"] == 94
        for phenotype in ("AGE_AT_SCAN", "DX_GROUP"):
            record = json.loads((folder / f"e1_seed{seed}" / f"{phenotype}.json").read_text())
            assert record["settings"]["split"] == "site_grouped" and len(record["splits"]) == 3
            for split in record["splits"]:
                train, test = {site_of[s] for s in split["train"]}, {site_of[s] for s in split["test"]}
                assert train.isdisjoint(test) and train | test <= set(PROBE_SITES)


@pytest.mark.slow
def test_e4_decodes_site_from_held_out_subjects_and_tables_name_every_job(study):
    folder, _, _, _ = study
    summary = pd.read_csv(folder / "e4_confounds" / "summary.tsv", sep="\t")
    site = summary[(summary["phenotype"] == "SITE_ID") & (summary["metric"] == "balanced_accuracy")]
    assert set(site["feature_set"]) == {"model", "random_init", "fc"} and (site["n_subjects"] == 94).all()
    # three sites of different scanners: FC tells them apart far above chance (1/3)
    assert site.set_index("feature_set").loc["fc", "mean"] > 0.6
    tables = (folder / "tables.md").read_text()
    assert "E1 parity over 2 seeds" in tables and "E4 site and mean-FD" in tables
    assert set(summary["phenotype"]) == {"SITE_ID", "func_mean_fd"}
    regressed = json.loads((folder / "e4_regressed" / "AGE_AT_SCAN.json").read_text())
    assert regressed["settings"]["confounds"] == ["func_mean_fd", "TR_s"] and regressed["n_subjects"] == 94
    seeds = pd.read_csv(folder / "e1_seed1" / "summary.tsv", sep="\t")
    assert set(seeds["phenotype"]) == {"AGE_AT_SCAN", "DX_GROUP"}


@pytest.mark.slow
def test_rerunning_the_study_skips_finished_jobs(study):
    folder, command, env, _ = study
    before = (folder / "e1_seed0" / "job.json").read_text()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    assert result.stdout.count("done before, skipped") == 4
    assert (folder / "e1_seed0" / "job.json").read_text() == before


def test_the_study_commands_of_the_readme_and_docs_evidence_parse_and_name_files_that_exist(repo_root):
    import re
    import shlex

    study = load_study_module(repo_root)
    commands = []
    for name in ("README.md", "docs/evidence.md"):
        found = re.findall(r"python benchmarks/abide\.py[^`\n]*", (repo_root / name).read_text())
        assert found, f"{name} names no study command"
        commands += found
    for line in commands:
        args = study.build_parser().parse_args(shlex.split(line)[2:])
        if args.overrides:
            overrides = yaml.safe_load((repo_root / args.overrides).read_text())
            # docs/evidence.md: the first sitting's overrides set 1,000 steps
            assert study.base_config(args.data, overrides)["pretrain"]["steps"] == 1000


def load_study_module(repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("abide_study", repo_root / "benchmarks" / "abide.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_e5_data_fractions_drop_whole_pretraining_sites_nested_and_never_probe_sites(repo_root, shared_data):
    study = load_study_module(repo_root)
    data = shared_data / ABIDE
    config = study.base_config(data)
    probe_sites = set(config["pretrain"]["hold_out"]["values"])
    pretraining = study.pretraining_sites(config, data)
    assert sum(pretraining.values()) == 612 and not probe_sites & set(pretraining)
    held = {}
    for fraction in study.E5_FRACTIONS:
        values, kept = study.fraction_hold_out(config, data, fraction)
        held[fraction] = set(values)
        assert probe_sites <= held[fraction] and kept >= fraction
    # smaller fractions hold out more: their pretraining sites are a subset of the larger ones'
    assert held[0.25] >= held[0.5] >= held[1.0] == probe_sites
    jobs = [name for name, _ in study.study_jobs(config, data, ["E5"], 0)]
    assert jobs[:3] == ["e5_frac25_steps300", "e5_frac25_steps1000", "e5_frac25_steps3000"] and len(jobs) == 9
