"""A full disk or an --out folder that cannot be written ends in one line naming the file, not a traceback."""

import errno
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from semantoks.rule_runner import rule_script


def test_an_out_path_through_a_file_is_one_line_from_the_cli(tmp_path, templateflow_home):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    env = {**os.environ, "TEMPLATEFLOW_HOME": str(templateflow_home)}
    result = subprocess.run([sys.executable, "-m", "semantoks", "simulate", "--out", str(blocker / "demo"),
                             "--n-subjects", "2", "--templateflow-home", str(templateflow_home)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"semantoks: error: {blocker}") and "choose another path" in line


def test_a_full_disk_in_a_rule_script_is_one_line_and_exit_1(tmp_path, capsys):
    snakemake = SimpleNamespace(log=[str(tmp_path / "rule.log")], rule="dataset_partition")
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
