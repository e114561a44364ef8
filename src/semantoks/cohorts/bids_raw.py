"""Runs of a raw BIDS dataset, and the fMRIPrep outputs each will have (so the DAG continues from them)."""

import json
from dataclasses import dataclass
from pathlib import Path

from semantoks.bids_names import SCAN_ENTITIES, check_label, parse_entities, scan_id
from semantoks.cohorts.derivatives import BOLD, CONFOUNDS, MASK, SIDECAR, RunRecord, parse_space
from semantoks.cohorts.func_index import index_func_files
from semantoks.errors import SemantoksError

RAW_SUFFIXES = ("_bold.nii.gz", "_bold.nii")


@dataclass(frozen=True)
class BidsRun:
    """One raw BOLD run; a multi-echo run lists every echo (fMRIPrep combines them into one output)."""

    entities: dict
    scan_id: str
    bold: Path
    echoes: tuple = ()

    @property
    def subject(self):
        return self.entities["sub"]

    @property
    def session(self):
        return self.entities.get("ses")

    @property
    def task(self):
        return self.entities.get("task")


def check_bids_root(bids_root):
    """The BIDS root, or a clear error if the folder is not one."""
    root = Path(bids_root)
    if not root.is_dir():
        raise SemantoksError(f"{root}: the BIDS folder does not exist; fix the bids path.")
    if not (root / "dataset_description.json").is_file():
        raise SemantoksError(
            f"{root}: not a BIDS dataset (no dataset_description.json); point the bids path at the dataset's root folder.")
    if not any(p.is_dir() for p in root.glob("sub-*")):
        raise SemantoksError(f"{root}: no sub-* folders; point the bids path at the dataset's root folder.")
    return root


def find_bids_runs(bids_root, task=None, cache_dir=None):
    """Every raw BOLD run under sub-*/[ses-*/]func/, optionally of one task."""
    root = check_bids_root(bids_root)
    if task is not None:
        check_label(task, "task", "cohort task filter")
    runs = {}
    for folder, names in index_func_files(root, RAW_SUFFIXES, "bids", cache_dir).items():
        for name in names:
            entities = parse_entities(name)
            if entities.get("task") is None or (task is not None and entities["task"] != task):
                continue
            run_entities = {k: entities[k] for k in SCAN_ENTITIES if entities.get(k) is not None and k != "echo"}
            key = scan_id(run_entities)
            previous = runs.get(key)
            echoes = (previous.echoes if previous else ()) + ((root / folder / name,) if entities.get("echo") else ())
            bold = previous.bold if previous else root / folder / name
            runs[key] = BidsRun(entities=run_entities, scan_id=key, bold=bold, echoes=echoes)
    return [runs[key] for key in sorted(runs)]


def expected_fmriprep_outputs(run, fmriprep_root, space, res=None):
    """The RunRecord fMRIPrep (>= 21) will write for `run` with --output-spaces `space` (e.g. 'X:res-2')."""
    space, res = parse_space(space, res)
    folder = Path(fmriprep_root) / f"sub-{run.subject}"
    if run.session:
        folder = folder / f"ses-{run.session}"
    folder = folder / "func"
    stem = f"{run.scan_id}_space-{space}" + (f"_res-{res}" if res is not None else "")
    return RunRecord(
        entities=dict(run.entities), scan_id=run.scan_id, space=space, res=res,
        bold=str(folder / f"{stem}{BOLD}"), mask=str(folder / f"{stem}{MASK}"), sidecar=str(folder / f"{stem}{SIDECAR}"),
        confounds=str(folder / f"{run.scan_id}{CONFOUNDS[0]}"),
    )


def bids_metadata(run, bids_root):
    """The run's JSON metadata with BIDS inheritance: top-level files first, the run's own sidecar last."""
    root = Path(bids_root)
    subject_dir = root / f"sub-{run.subject}"
    levels = [root, subject_dir]
    if run.session:
        levels.append(subject_dir / f"ses-{run.session}")
    levels.append(run.bold.parent)
    metadata = {}
    for level in levels:
        for path in sorted(level.glob("*_bold.json")):
            entities = _entities_or_none(path)
            if entities and all(run.entities.get(k) == v for k, v in entities.items() if _is_entity(k, v)):
                metadata.update(_read_json(path))
    return metadata


def _is_entity(key, value):
    return key not in ("suffix", "extension") and value is not None


def _entities_or_none(path):
    # top-level sidecars (task-rest_bold.json) have no sub- entity, which parse_entities requires
    name = path.name if path.name.startswith("sub-") else f"sub-0_{path.name}"
    try:
        entities = parse_entities(name)
    except SemantoksError:
        return None
    if not path.name.startswith("sub-"):
        entities["sub"] = None
    return entities


def _read_json(path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise SemantoksError(f"{path}: not readable JSON; fix or remove the sidecar.") from None
    return data if isinstance(data, dict) else {}
