import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir():
    override = os.environ.get("SEMANTOKS_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """The real reference data beside the project; CI must have it, users may not."""
    path = _shared_data_dir()
    if not (path / "templateflow").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI needs ../shared/data beside the repository.")
        pytest.skip(f"real reference data not found at {path}")
    return path


@pytest.fixture(scope="session")
def templateflow_home(shared_data):
    return shared_data / "templateflow"


@pytest.fixture(scope="session")
def repo_root():
    return REPO


def copy_workflow(repo_root, dest, names=("src", "workflow", "envs", "Snakefile", "config", ".test")):
    """The files a Snakemake run needs, copied into `dest` so a test may edit them or run from a clean folder."""
    for name in names:
        source = Path(repo_root) / name
        if source.is_dir():
            shutil.copytree(source, Path(dest) / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        elif source.exists():
            shutil.copy2(source, Path(dest) / name)
    return Path(dest)
