"""Cohorts that arrive already parcellated (ABIDE Preprocessed, ADHD-200, UK Biobank style): ROI time-series
files -> the per-run Parquet + QC JSON of docs/design.md, so the dataset stage treats them like any cohort."""

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path, write_json
from semantoks.bids_names import check_label, qc_name, scan_id, subject_dir, timeseries_name
from semantoks.cohorts.phenotype_types import read_participants, subject_key
from semantoks.cohorts.roi_files import FORMATS, read_roi_array, roi_array_shape
from semantoks.errors import SemantoksError

ORIENTATIONS = ("auto", "frames_by_parcels", "parcels_by_frames")
ROI_SETTINGS = ("files", "pattern", "tr", "tr_column", "tr_by_site", "labels", "orientation", "mat_variable",
                "mean_fd_column", "task")
PATTERN_GROUPS = ("subject", "session", "task", "run", "site")
_HEMISPHERE = {"lh": "L", "left": "L", "l": "L", "rh": "R", "right": "R", "r": "R"}


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
    return sorted(scans, key=lambda scan: scan.scan_id)


def roi_label_table(labels, n_parcels):
    """[index, name, network, hemisphere] from a label table (path or DataFrame with a `name` column), else roi001..."""
    if labels is None:
        width = max(3, len(str(n_parcels)))
        names = [f"roi{i:0{width}d}" for i in range(1, n_parcels + 1)]
        return pd.DataFrame({"index": range(1, n_parcels + 1), "name": names, "network": "Unassigned", "hemisphere": "n/a"})
    table, source = _label_frame(labels)
    if "name" not in table.columns:
        raise SemantoksError(f"{source}: no 'name' column; give the label table columns name[, network, hemisphere].")
    if len(table) != n_parcels:
        raise SemantoksError(
            f"{source}: {len(table)} labels but the time series have {n_parcels} parcels; use the atlas's label table.")
    names = table["name"].astype(str)
    if names.duplicated().any():
        duplicate = names[names.duplicated()].iloc[0]
        raise SemantoksError(f"{source}: parcel name '{duplicate}' appears twice; make the names unique.")
    network = table["network"].fillna("Unassigned").astype(str) if "network" in table.columns else "Unassigned"
    hemisphere = table["hemisphere"].astype(str) if "hemisphere" in table.columns else names.map(_hemisphere)
    index = table["index"].astype(int) if "index" in table.columns else range(1, n_parcels + 1)
    return pd.DataFrame({"index": index, "name": names, "network": network, "hemisphere": hemisphere}).reset_index(drop=True)


def import_roi_timeseries(files, pattern, cohort, atlas_id, out_dir, *, tr=None, tr_column=None, tr_by_site=None,
                          labels=None, phenotypes=None, participant_column="participant_id", mean_fd_column=None,
                          orientation="auto", mat_variable=None, space="unknown", strategy="imported", task="rest"):
    """Write every matched scan as `<out_dir>/sub-X/[ses-Y/]<scan_id>_space-..._timeseries.parquet` + `_qc.json`.

    `out_dir` is the cohort's time-series folder (results/timeseries/<cohort>). TR: `tr` seconds for every
    scan, or per site: the site from the pattern's `site` group or the phenotype column `tr_column`, looked up
    in `tr_by_site`. Returns [(parquet, qc_json)].
    """
    check_label(cohort, "cohort", "cohort name")
    if orientation not in ORIENTATIONS:
        raise SemantoksError(f"roi.orientation '{orientation}': not one of {', '.join(ORIENTATIONS)}; fix roi.orientation.")
    scans = find_roi_scans(files, pattern, task)
    participants = read_participants(phenotypes, participant_column) if phenotypes else None
    trs = [_scan_tr(scan, tr, tr_column, tr_by_site, participants, participant_column, phenotypes) for scan in scans]
    n_labels = None if labels is None else len(_label_frame(labels)[0])
    transpose, n_parcels = _orientation(scans, orientation, n_labels, mat_variable)
    parcels = roi_label_table(labels, n_parcels)
    mean_fd = _mean_fd(participants, participant_column, mean_fd_column, phenotypes)
    outputs = []
    for scan, scan_tr in zip(scans, trs):
        data = read_roi_array(scan.source, mat_variable)
        record = {"cohort": cohort, "atlas": atlas_id, "space": space, "strategy": strategy, "tr": scan_tr,
                  "mean_fd": mean_fd.get(subject_key(scan.entities["sub"]), math.nan)}
        outputs.append(_write_scan(scan, data.T if transpose else data, parcels, record, Path(out_dir)))
    return outputs


def import_roi_cohort(cohort, roi, phenotypes, atlas_id, out_dir, space="unknown", strategy="imported", labels=None):
    """import_roi_timeseries from config.yaml's cohort settings: `roi` (files, pattern, tr | tr_column +
    tr_by_site, labels, orientation, mat_variable, mean_fd_column, task) and `phenotypes` (table, participant_column)."""
    unknown = set(roi) - set(ROI_SETTINGS)
    if unknown:
        raise SemantoksError(f"cohorts.{cohort}.roi: unknown setting {sorted(unknown)[0]}; use only {', '.join(ROI_SETTINGS)}.")
    for key, what in (("files", "folder of time-series files"), ("pattern", "file name pattern")):
        if not roi.get(key):
            raise SemantoksError(f"cohorts.{cohort}.roi.{key}: not set; give the {what}.")
    phenotypes = phenotypes or {}
    return import_roi_timeseries(
        roi["files"], roi["pattern"], cohort, atlas_id, out_dir, tr=roi.get("tr"), tr_column=roi.get("tr_column"),
        tr_by_site=roi.get("tr_by_site"), labels=roi.get("labels") or labels, phenotypes=phenotypes.get("table"),
        participant_column=phenotypes.get("participant_column", "participant_id"),
        mean_fd_column=roi.get("mean_fd_column"), orientation=roi.get("orientation", "auto"),
        mat_variable=roi.get("mat_variable"), space=space, strategy=strategy, task=roi.get("task", "rest"))


def _orientation(scans, orientation, n_labels, mat_variable):
    """(transpose?, n_parcels), after checking every file has the same parcel count."""
    shapes = {scan.source: roi_array_shape(scan.source, mat_variable) for scan in scans}
    if orientation == "auto":
        rows, columns = Counter(s[0] for s in shapes.values()), Counter(s[1] for s in shapes.values())
        if n_labels is not None:
            transpose = n_labels not in columns and n_labels in rows
        else:
            # the parcel axis is the one whose length never changes between scans
            transpose = len(columns) > 1 and len(rows) == 1 and len(shapes) > 1
    else:
        transpose = orientation == "parcels_by_frames"
    counts = {path: shape[0] if transpose else shape[1] for path, shape in shapes.items()}
    expected = n_labels if n_labels is not None else Counter(counts.values()).most_common(1)[0][0]
    for path, count in counts.items():
        if count != expected:
            source = "the label table" if n_labels is not None else "most files"
            raise SemantoksError(
                f"{path}: has {count} parcels but {source} {'has' if n_labels is not None else 'have'} {expected} "
                f"(shape {shapes[path]}, read as {'parcels x frames' if transpose else 'frames x parcels'}); "
                "remove the file or set roi.orientation.")
    return transpose, expected


def _scan_tr(scan, tr, tr_column, tr_by_site, participants, participant_column, phenotypes):
    if tr is not None:
        return _positive_tr(tr, "roi.tr")
    if not tr_by_site:
        raise SemantoksError("roi: no repetition time; set roi.tr (seconds) or roi.tr_column with roi.tr_by_site.")
    site = scan.site
    if site is None:
        if not tr_column or participants is None:
            raise SemantoksError("roi.tr_by_site: no site for the scans; add a (?P<site>...) group to roi.pattern "
                                 "or set roi.tr_column and the cohort's phenotypes.table.")
        if tr_column not in participants.columns:
            raise SemantoksError(f"{phenotypes}: no column '{tr_column}'; set roi.tr_column to the site column.")
        site = _site_of(scan, participants, participant_column, tr_column, phenotypes)
    if str(site) not in {str(k) for k in tr_by_site}:
        raise SemantoksError(
            f"{scan.source}: site '{site}' has no repetition time; add it under roi.tr_by_site (e.g. {site}: 2.0).")
    value = {str(k): v for k, v in tr_by_site.items()}[str(site)]
    return _positive_tr(value, f"roi.tr_by_site.{site}")


def _site_of(scan, participants, participant_column, tr_column, phenotypes):
    keys = participants[participant_column].map(lambda label: subject_key(label) if isinstance(label, str) else None)
    rows = participants[keys == subject_key(scan.entities["sub"])]
    if rows.empty or pd.isna(rows[tr_column].iloc[0]):
        raise SemantoksError(f"{phenotypes}: no {tr_column} for subject {scan.entities['sub']} ({scan.source.name}); "
                             "add the subject's row or set roi.tr.")
    site = rows[tr_column].iloc[0]
    return int(site) if isinstance(site, float) and site.is_integer() else site


def _positive_tr(value, key):
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not value > 0:
        raise SemantoksError(f"{key}: the repetition time must be a positive number of seconds; fix {key}.")
    return value


def _mean_fd(participants, participant_column, column, phenotypes):
    if not column:
        return {}
    if participants is None or column not in participants.columns:
        raise SemantoksError(f"{phenotypes or 'phenotypes.table'}: no column '{column}'; fix roi.mean_fd_column.")
    values = pd.to_numeric(participants[column], errors="coerce")
    return {subject_key(s): float(v) for s, v in zip(participants[participant_column], values) if isinstance(s, str)}


def _write_scan(scan, data, parcels, record, out_dir):
    data = np.where(np.isfinite(data), data, np.nan).astype(np.float32)
    # ABIDE-style exports fill parcels outside a subject's mask with zeros: treat them as uncovered
    empty = np.all(np.isnan(data) | (data == 0), axis=0) if len(data) else np.ones(data.shape[1], bool)
    data[:, empty] = np.nan
    coverage = (~empty).astype(float).tolist()
    n_volumes = len(data)
    included, reason = bool(n_volumes and not empty.all()), None
    if not included:
        reason = "The file has no frames." if not n_volumes else "Every parcel is empty (all zeros or NaN)."
        data = data[:0]
    entities = {**scan.entities, "space": record["space"]}
    folder = out_dir / subject_dir(entities)
    parquet = folder / timeseries_name(entities, record["atlas"], record["strategy"])
    qc_path = folder / qc_name(entities, record["atlas"], record["strategy"])
    qc = {
        "cohort": record["cohort"], "subject": scan.entities["sub"], "session": scan.entities.get("ses"),
        "task": scan.entities["task"], "run": scan.entities.get("run"), "scan_id": scan.scan_id,
        "space": record["space"], "atlas": record["atlas"], "strategy": record["strategy"], "tr": record["tr"],
        "n_volumes": n_volumes, "n_dummy": 0, "n_frames": len(data), "mean_fd": record["mean_fd"], "max_fd": math.nan,
        "pct_censored": 0.0, "included": included, "reason": reason, "parcel_coverage": coverage,
        "source_bold": str(scan.source),
    }
    columns = {"frame": pa.array(np.arange(len(data), dtype=np.int32))}
    columns.update({name: pa.array(data[:, i]) for i, name in enumerate(parcels["name"])})
    table = pa.table(columns).replace_schema_metadata({"semantoks": json.dumps(qc)})
    with atomic_path(parquet) as tmp:
        pq.write_table(table, tmp)
    write_json(qc_path, qc)
    return parquet, qc_path


def _candidate_files(files):
    """(path, the text the pattern is searched in) per candidate file."""
    if isinstance(files, (str, Path)):
        root = Path(files)
        if not root.is_dir():
            raise SemantoksError(f"{root}: the ROI time-series folder does not exist; fix roi.files.")
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
        return [(p, p.relative_to(root).as_posix()) for p in paths]
    return [(Path(p), Path(p).as_posix()) for p in sorted(files)]


def _label_frame(labels):
    if isinstance(labels, pd.DataFrame):
        return labels, "label table"
    path = Path(labels)
    if not path.is_file():
        raise SemantoksError(f"{path}: label table not found; fix roi.labels.")
    return pd.read_csv(path, sep="\t" if path.suffix.lower() in (".tsv", ".txt") else ","), path


def _hemisphere(name):
    tokens = re.split(r"[_\-\s.]+", str(name).lower())
    sides = {_HEMISPHERE[t] for t in tokens if t in _HEMISPHERE}
    return sides.pop() if len(sides) == 1 else "n/a"


def _describe(files):
    return str(files) if isinstance(files, (str, Path)) else f"roi.files ({len(list(files))} paths)"
