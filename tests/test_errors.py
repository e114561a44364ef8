"""An --out path that cannot be written ends in one line naming the file, not a traceback (errors.os_error_line)."""

import os
import subprocess
import sys


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
