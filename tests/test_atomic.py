"""Atomic writes: nothing half-written, and final files readable as the umask allows (not mkstemp's 0600)."""

import os
import stat

import pytest

from semantoks.atomic import atomic_path, current_umask, write_json


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value):
        os.umask(value)

    yield set_umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_final_files_respect_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "record.json", {"a": 1})
    with atomic_path(tmp_path / "table.parquet") as tmp:
        tmp.write_bytes(b"data")
    for name in ("record.json", "table.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
