"""Atomic writes: a temporary file beside the target, then a rename, so nothing is half-written."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target, suffix=None):
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix so libraries that sniff the extension (nibabel, pyarrow) behave
    suffix = suffix if suffix is not None else "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the mode a plain open() would, so a lab group can read it
        os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~current_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def current_umask():
    """The process umask, read without changing it where Linux reports it (os.umask is not thread-safe)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(target, text):
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target, obj):
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    # numpy scalars and paths show up in QC records
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_table_tsv(target, frame):
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a")
