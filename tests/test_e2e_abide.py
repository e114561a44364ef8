"""Real ROI cohort end to end: docs/cohorts.md's ABIDE config, run by Snakemake from a fresh folder.

ROI import -> dataset -> a few pretraining steps -> probes -> report, on the 91 ABIDE I subjects of
shared/data/abide_pcp_cc200 (real CC200 time series, real PCP phenotype table with -9999 codes). Only run
lengths are shortened; every cohort setting is the documented text.
"""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from semantoks.dataset import read_atlas_metadata, read_manifest_file

DOC_PATH = "/data/abide_pcp_cc200"
ABIDE = "abide_pcp_cc200"
# run lengths only: 20 permutations are the fewest that can give p < 0.05 (1/21)
SHORT_RUN = {"pretrain": {"steps": 4, "batch_size": 8, "checkpoint_every": 4},
             "probe": {"n_repeats": 3, "n_permutations": 20, "feature_sets": ["model", "fc"]},
             "embed": {"n_crops": 1}}
PARTITION = "results/dataset/timeseries/atlas=CC200/cohort=abide/part-0.parquet"


def documented_config(repo_root):
    """The complete example config of docs/cohorts.md ("ROI time series"), as its YAML text."""
    text = (repo_root / "docs" / "cohorts.md").read_text()
    blocks = re.findall(r"```yaml\n(# abide\.yaml.*?)```", text, re.DOTALL)
    assert len(blocks) == 1, "docs/cohorts.md must hold exactly one complete abide.yaml example"
    return blocks[0]


def snakemake(workdir, repo_root, templateflow_home, *targets):
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(templateflow_home), "SEMANTOKS_CACHE_DIR": str(workdir / ".cache")}
    # targets first: --configfile takes every word after it
    command = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(repo_root / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--configfile", str(workdir / "abide.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def abide_run(tmp_path_factory, shared_data, repo_root, templateflow_home):
    workdir = tmp_path_factory.mktemp("abide")
    # a copy, so a source file can be deleted below
    data = shutil.copytree(shared_data / ABIDE, workdir / ABIDE)
    config = yaml.safe_load(documented_config(repo_root).replace(DOC_PATH, str(data)))
    for section, values in SHORT_RUN.items():
        config.setdefault(section, {}).update(values)
    (workdir / "abide.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(workdir, repo_root, templateflow_home)
    return workdir, data


@pytest.mark.slow
def test_all_91_subjects_are_imported_under_their_own_parcellation(abide_run):
    workdir, _ = abide_run
    manifest = read_manifest_file(workdir / "results/dataset/manifest/atlas=CC200/cohort=abide/part-0.parquet")
    assert manifest["subject"].nunique() == 91 and manifest["included"].all()
    assert sorted(manifest["tr"].unique()) == [2.0, 2.5, 3.0]
    metadata = read_atlas_metadata(workdir / "results/dataset", "CC200")
    assert len(metadata["labels"]) == 200 and metadata["strategy"] == {"name": "imported"}
    assert {label["network"] for label in metadata["labels"]} >= {"Default", "Vis", "NonCortical"}
    assert (workdir / "results/models/tiny_CC200/seed-0/checkpoint.pt").is_file()
    assert (workdir / "results/report/report.html").stat().st_size > 0


@pytest.mark.slow
def test_minus_9999_codes_are_missing_in_the_phenotype_table(abide_run):
    workdir, data = abide_run
    raw = pd.read_csv(data / "Phenotypic_V1_0b_preprocessed1_subset.csv")
    table = pd.read_parquet(workdir / "results/dataset/phenotypes/cohort=abide/part-0.parquet")
    assert len(table) == 91
    for column in ("BMI", "ADOS_GOTHAM_TOTAL"):
        coded = int((raw[column] == -9999).sum())
        assert coded > 0
        assert table[column].isna().sum() == coded + int(raw[column].isna().sum())
        assert table[column].min() > -999
    # SUB_ID 50272 and the file's 0050272 are one subject: the table carries the imaging label
    assert "0050272" in set(table["subject"])


@pytest.mark.slow
def test_fc_baseline_recovers_site_and_diagnosis(abide_run):
    workdir, _ = abide_run
    summary = pd.read_csv(workdir / "results/probes/summary.tsv", sep="\t")
    fc = summary[(summary["feature_set"] == "fc") & (summary["metric"] == "balanced_accuracy")].set_index("phenotype")
    # shared/data/abide_pcp_cc200/README.md: site is strongly decodable from FC (balanced accuracy 0.79)
    assert fc.loc["SITE_ID", "p_value"] < 0.05 and fc.loc["SITE_ID", "mean"] > 0.5
    assert fc.loc["SITE_ID", "n_subjects"] == 91 and fc.loc["SITE_ID", "status"] == "ok"


@pytest.mark.slow
def test_deleting_a_source_file_removes_its_scan_on_rerun(abide_run, repo_root, templateflow_home):
    workdir, data = abide_run
    (data / "rois_cc200" / "KKI_0050773_rois_cc200.1D").unlink()
    snakemake(workdir, repo_root, templateflow_home, PARTITION)
    manifest = read_manifest_file(workdir / "results/dataset/manifest/atlas=CC200/cohort=abide/part-0.parquet")
    assert manifest["subject"].nunique() == 90 and "0050773" not in set(manifest["subject"])
    assert not list((workdir / "results/timeseries/abide").rglob("sub-0050773*"))
    assert np.isin(["0050775"], manifest["subject"]).all()
