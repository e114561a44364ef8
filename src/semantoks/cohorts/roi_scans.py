"""Which files of an ROI cohort are scans: the path pattern, its BIDS entities, one scan per (subject, session, run)."""

import re
from dataclasses import dataclass
from pathlib import Path

from semantoks.bids_names import check_label, scan_id
from semantoks.cohorts.phenotype_types import refuse_shared_subject_keys
from semantoks.cohorts.roi_files import FORMATS
from semantoks.errors import SemantoksError

PATTERN_GROUPS = ("subject", "session", "task", "run", "site")


@dataclass(frozen=True)
class RoiScan:
    source: Path
    entities: dict
    scan_id: str
    site: str | None


def find_roi_scans(files, pattern, task="rest"):
    """The scans among `files` (a folder, searched recursively, or a list of paths) whose path `pattern` matches.

    `pattern` is a regular expression with a named group `subject` and optional `session`, `run`, `task`,
    `site`, searched in each file's path below the folder (or in the path as given, for a list), e.g.
    r'(?P<site>[A-Za-z]+)_(?P<subject>\\d+)_rois_cc200\\.1D'.
    """
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise SemantoksError(f"roi.pattern '{pattern}': not a valid regular expression ({error}); fix roi.pattern.") from None
    if "subject" not in regex.groupindex:
        raise SemantoksError(f"roi.pattern '{pattern}': has no (?P<subject>...) group; add one around the subject label.")
    scans, seen = [], {}
    for path, text in _candidate_files(files):
        match = regex.search(text)
        if not match:
            continue
        groups = {k: v for k, v in match.groupdict().items() if k in PATTERN_GROUPS and v is not None}
        entities = {"sub": groups["subject"], "ses": groups.get("session"), "task": groups.get("task", task),
                    "run": groups.get("run")}
        entities = {k: check_label(v, k, path) for k, v in entities.items() if v is not None}
        key = scan_id(entities)
        if key in seen:
            raise SemantoksError(f"{path}: gives the same scan ({key}) as {seen[key]}; make roi.pattern capture session or run.")
        seen[key] = path
        scans.append(RoiScan(source=path, entities=entities, scan_id=key, site=groups.get("site")))
    if not scans:
        raise SemantoksError(f"{_describe(files)}: roi.pattern '{pattern}' matches no file; fix roi.pattern or roi.files.")
    refuse_shared_subject_keys(((scan.entities["sub"], scan.source) for scan in scans), _describe(files))
    return sorted(scans, key=lambda scan: scan.scan_id)


def _candidate_files(files):
    """(path, the text the pattern is searched in) per candidate file."""
    if isinstance(files, (str, Path)):
        root = Path(files)
        if not root.is_dir():
            raise SemantoksError(f"{root}: the ROI time-series folder does not exist; fix roi.files.")
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
        return [(p, p.relative_to(root).as_posix()) for p in paths]
    return [(Path(p), Path(p).as_posix()) for p in sorted(files)]


def _describe(files):
    return str(files) if isinstance(files, (str, Path)) else f"roi.files ({len(list(files))} paths)"
