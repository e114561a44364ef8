"""profiles/slurm through the real snakemake-executor-plugin-slurm, with stand-in SLURM tools (no cluster here).

The stand-in `sbatch` (tests/stand_ins/slurm) records each submission and refuses it, so each case sets up
the inputs of the jobs it wants submitted and checks the recorded sbatch options against docs/hpc.md.
"""

import os
import re
import subprocess
import sys

import pytest
from conftest import copy_workflow

try:
    import snakemake_executor_plugin_slurm  # noqa: F401
except ImportError:
    # CI installs .[slurm]; elsewhere the plugin is optional
    if os.environ.get("CI"):
        raise
    pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')", allow_module_level=True)

COPIED = ("src", "workflow", "envs", "profiles", "Snakefile", "config", ".test")
CONFIG = ".test/config_reruns/config.yaml"
ATLAS_DIR = "results/atlas/Schaefer100x7"
PARTITION = "results/dataset/timeseries/atlas=Schaefer100x7/cohort=demo/part-0.parquet"
SUBJECTS = ["01", "02", "03", "04", "05", "06"]


@pytest.fixture()
def workdir(tmp_path, repo_root):
    return copy_workflow(repo_root, tmp_path, COPIED)


def submit(workdir, repo_root, templateflow_home, targets, *args):
    """Run the documented command; returns (one sbatch option string per submission, Snakemake's output)."""
    log = workdir / "sbatch.log"
    env = {**os.environ, "PATH": f"{repo_root / 'tests' / 'stand_ins' / 'slurm'}{os.pathsep}{os.environ['PATH']}",
           "SLURM_STAND_IN_LOG": str(log), "PYTHONPATH": str(workdir / "src"),
           "TEMPLATEFLOW_HOME": str(templateflow_home), "SEMANTOKS_CACHE_DIR": str(workdir / ".cache")}
    # options taking several values come before one that takes one, so they do not swallow the targets
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm", *args,
               "--configfile", CONFIG, "--latency-wait", "0", *targets]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    return calls, result.stdout + result.stderr


def options(call):
    """The resource options of one recorded sbatch call (working directory left out), as docs/hpc.md lists them."""
    return re.sub(r" -D \S+", "", re.search(r"--comment \S+ (.*?) --wrap=", call).group(1))


def documented_options(repo_root):
    """{what: sbatch options} from the table in docs/hpc.md."""
    rows = re.findall(r"^\| `([^`]+)`[^|]*\| [^|]+\| `([^`]*)` \|$", (repo_root / "docs" / "hpc.md").read_text(), re.M)
    return dict(rows)


def touch(workdir, *paths):
    for path in paths:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()


@pytest.mark.slow
def test_pretrain_on_four_gpus_is_one_task_so_torchrun_starts_once(workdir, repo_root, templateflow_home):
    touch(workdir, PARTITION)
    profile = workdir / "profiles" / "slurm" / "config.yaml"
    # what the profile tells a user to edit for several GPUs
    profile.write_text(profile.read_text().replace("    gpu: 1\n", "    gpu: 4\n"))
    calls, output = submit(workdir, repo_root, templateflow_home, ["results/models/tiny_Schaefer100x7/seed-0/checkpoint.pt"],
                           "--allowed-rules", "pretrain")
    assert len(calls) == 1, output
    assert options(calls[0]) == documented_options(repo_root)["pretrain"].replace("--gpus=1", "--gpus=4")
    # no task geometry: SLURM starts one task, whose job step runs the rule (and torchrun) once
    assert "--ntasks" not in calls[0] and "--executor slurm-jobstep --jobs 1" in calls[0]


@pytest.mark.slow
def test_runs_are_parcellated_in_batches_not_one_submission_each(workdir, repo_root, templateflow_home):
    touch(workdir, f"{ATLAS_DIR}/labels.tsv", f"{ATLAS_DIR}/dseg.nii.gz",
          *[f"results/cohorts/demo/simulate_done/sub-{s}.done" for s in SUBJECTS])
    args = ("--allowed-rules", "parcellate_run", "dataset_partition", "--until", "parcellate_run")
    calls, output = submit(workdir, repo_root, templateflow_home, [PARTITION], *args)
    assert len(calls) == 1 and "rule_parcellate_parcellate_run" in calls[0], output
    assert options(calls[0]) == documented_options(repo_root)["parcellate_run"]
    (workdir / "sbatch.log").unlink()
    calls, output = submit(workdir, repo_root, templateflow_home, [PARTITION], *args, "--group-components", "parcellate=4")
    # the small config has 9 runs: batches of 4 are 3 submissions
    assert len(calls) == 3, output


@pytest.mark.slow
def test_tiny_rules_run_on_the_login_node_and_subjects_are_simulated_in_one_batch(
    workdir, repo_root, templateflow_home
):
    targets = [f"results/cohorts/demo/simulate_done/sub-{s}.done" for s in SUBJECTS]
    calls, output = submit(workdir, repo_root, templateflow_home, ["results/cohorts/demo/bids/participants.tsv", *targets])
    # atlas and simulate_cohort_files ran here for real; only the simulation batch went to sbatch
    assert (workdir / ATLAS_DIR / "labels.tsv").stat().st_size > 0
    assert (workdir / "results/cohorts/demo/bids/participants.tsv").stat().st_size > 0
    assert len(calls) == 1 and "rule_simulate_simulate_subject" in calls[0], output
    assert options(calls[0]) == documented_options(repo_root)["simulate_subject"]
