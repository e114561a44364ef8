"""One workflow per results folder: the first workflow to run there records itself; another one is stopped.

Snakemake's lock and metadata live in each working directory's `.snakemake/`, so two working directories
writing to one `results:` folder never see each other: one replaces the other's dataset and checkpoint and
both finish on mixed files. The owner file names the working directory (relative to the results folder, so
a project moved as a whole keeps its results) and the config files it was run with.
"""

import json
import os
from pathlib import Path

from semantoks.atomic import write_json
from semantoks.errors import SemantoksError

OWNER_FILE = ".semantoks-owner.json"


def claim_results_folder(results, workdir, configfiles, write=True):
    """Record the workflow run from `workdir` as the owner of `results` (unless `write` is False: a dry run only
    checks), or stop with one line when another working directory owns it."""
    results, workdir = Path(results), Path(workdir).resolve()
    owner_path = results / OWNER_FILE
    here = {"workdir_from_results": os.path.relpath(workdir, results.resolve()), "workdir": str(workdir),
            "configfiles": [str(Path(f).resolve()) for f in configfiles]}
    owner = _read_owner(owner_path)
    if owner is not None and owner.get("workdir_from_results") != here["workdir_from_results"]:
        configs = ", ".join(owner.get("configfiles") or []) or "--config only"
        raise SemantoksError(
            f"{owner_path}: this results folder belongs to the workflow run from {owner.get('workdir')} (config "
            f"{configs}); a second workflow writing here would mix both runs' files: run from that folder, set "
            f"'results' to a folder of your own, or delete {owner_path} to hand the folder over.")
    if write and owner is None:
        write_json(owner_path, here)
    return here


def _read_owner(path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise SemantoksError(f"{path}: unreadable ({error}); delete it so the next run records its owner again.") from None
