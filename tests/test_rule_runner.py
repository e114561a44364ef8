import errno
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from threadpoolctl import threadpool_info

from semantoks.errors import SemantoksError
from semantoks.rule_runner import THREAD_VARIABLES, limit_threads, rule_script


@pytest.fixture
def restored_threads():
    variables, torch_threads = {name: os.environ.get(name) for name in THREAD_VARIABLES}, torch.get_num_threads()
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    yield
    limit_threads(max(blas, default=torch_threads))
    torch.set_num_threads(torch_threads)
    for name, value in variables.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def _blas_threads():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_limit_threads_holds_blas_torch_and_child_processes(restored_threads):
    limit_threads(1)
    assert torch.get_num_threads() == 1
    assert _blas_threads() <= {1}
    child = subprocess.run([sys.executable, "-c", "import os; print(*(os.environ[v] for v in "
                            "('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')))"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["1", "1", "1"]


def test_rule_script_applies_the_rule_threads_and_turns_errors_into_one_line(restored_threads, tmp_path, capsys):
    torch.set_num_threads(2)
    job = SimpleNamespace(threads=1, log=[str(tmp_path / "job.log")], rule="probe_phenotype")
    with pytest.raises(SystemExit):
        with rule_script(job):
            assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
            raise SemantoksError("config.yaml: probe.n_repeats must be positive; set it to 1 or more.")
    assert capsys.readouterr().err.strip().endswith("probe.n_repeats must be positive; set it to 1 or more.")
    assert "n_repeats" in (tmp_path / "job.log").read_text()


def test_a_full_disk_in_a_rule_script_is_one_line_and_exit_1(tmp_path, capsys, restored_threads):
    snakemake = SimpleNamespace(log=[str(tmp_path / "rule.log")], rule="dataset_partition", threads=1)
    with pytest.raises(SystemExit) as exited:
        with rule_script(snakemake):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "part-0.parquet"))
    assert exited.value.code == 1
    line = f"{tmp_path / 'part-0.parquet'}: No space left on device; free space on that disk or write elsewhere."
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"semantoks: {line}"
    assert line in (tmp_path / "rule.log").read_text()
    with pytest.raises(OSError):
        with rule_script(snakemake):
            raise OSError(errno.EIO, "Input/output error")
