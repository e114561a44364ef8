"""benchmarks/train_throughput.py runs as a user types it (a tiny batch) and reports the step-cost ratios."""

import json
import os
import subprocess
import sys

import pytest

from semantoks.model.config import resolve


@pytest.mark.parametrize("recipe", [[], ["--first-recipe"]])
def test_throughput_benchmark_runs_and_reports_cpu_ratios(repo_root, recipe):
    command = [sys.executable, str(repo_root / "benchmarks" / "train_throughput.py"), "--preset", "tiny",
               "--batch-size", "2", "--steps", "1", "--warmup", "0", "--threads", "1", *recipe]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert results["head_hidden"] == resolve({"preset": "tiny"}).loss.head_hidden  # the head the trainer builds
    assert results["recipe"] == ("first" if recipe else "reference")
    assert results["train_step_over_reference_cpu"] > 1.0 and results["encoder_over_reference_cpu"] > 0.0
