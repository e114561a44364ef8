"""A lock in the pretraining state folder: one training process writes a state folder at a time.

An orphaned job (its Snakemake lost with a login node) may still be training when the rule is rerun; two
processes writing one `checkpoint.pt` would interleave their steps. The lock names the host and process;
a lock left by a process that is gone (same host) is taken over.
"""

import contextlib
import datetime
import json
import logging
import os
import socket
from pathlib import Path

from semantoks.errors import SemantoksError

LOCK_NAME = "training.lock"
log = logging.getLogger(__name__)


@contextlib.contextmanager
def state_lock(state_dir):
    """Hold `state_dir`/training.lock while the block runs; one line naming the holder if another process has it."""
    path = Path(state_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = {"host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    _acquire(path, mine)
    try:
        yield path
    finally:
        if _holder(path) == mine:
            path.unlink(missing_ok=True)


def _acquire(path, mine):
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None or (holder.get("host") == mine["host"] and not _alive(holder.get("pid"))):
                log.warning("%s: taking over a lock left by a process that is gone (%s)", path, holder)
                path.unlink(missing_ok=True)
                continue
            raise SemantoksError(
                f"{path}: process {holder.get('pid')} on {holder.get('host')} has been training in this state folder "
                f"since {holder.get('since')}; wait for it to finish (its outputs are published when it ends) or stop "
                "it, then rerun. If that process is gone, delete the lock file.") from None
        with os.fdopen(descriptor, "w") as handle:
            json.dump(mine, handle)
        return
    raise SemantoksError(f"{path}: could not take the training lock; delete the lock file and rerun.")


def _holder(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
