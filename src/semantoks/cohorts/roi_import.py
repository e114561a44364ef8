"""Cohorts that arrive already parcellated (ABIDE Preprocessed, ADHD-200, UK Biobank style): ROI time-series
files -> the per-run Parquet + QC JSON of docs/design.md, so the dataset stage treats them like any cohort."""

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.atlas.names import UNASSIGNED
from semantoks.atomic import write_table_tsv
from semantoks.bids_names import check_label, subject_dir, timeseries_name
from semantoks.cohorts.phenotype_types import read_participants, subject_key
from semantoks.cohorts.roi_files import read_roi_table, roi_array_shape
from semantoks.cohorts.roi_parcellation import (
    UNKNOWN_HEMISPHERE,
    hemisphere_of_name,
    parcellation_id,
    read_roi_labels,
    roi_parcel_table,
)
from semantoks.cohorts.roi_scans import find_roi_scans
from semantoks.errors import SemantoksError
from semantoks.run_record import IMPORTED, MIN_VALID_PARCEL_FRACTION, run_record, write_run_outputs

ORIENTATIONS = ("auto", "frames_by_parcels", "parcels_by_frames")
# the list of (timeseries, qc) pairs the last import wrote, relative to the cohort's time-series folder
IMPORT_INDEX = "roi_import.tsv"
# the schema's roi.min_seconds default, for settings that did not pass through the schema
ROI_MIN_SECONDS = 120.0


def roi_label_table(labels, n_parcels):
    """[index, name, network, hemisphere, column] from a labels table (path or DataFrame), else roi001...

    For the low-level import only; a configured ROI cohort's table comes from `roi_parcel_table`.
    """
    if labels is None:
        width = max(3, len(str(n_parcels)))
        names = [f"roi{i:0{width}d}" for i in range(1, n_parcels + 1)]
        return pd.DataFrame({"index": range(1, n_parcels + 1), "name": names, "network": UNASSIGNED,
                             "hemisphere": UNKNOWN_HEMISPHERE, "column": None})
    if isinstance(labels, pd.DataFrame):
        table, source = labels.copy(), "labels table"
        if "name" not in table.columns:
            raise SemantoksError("labels table: no 'name' column; give the label table columns name[, network, hemisphere].")
        table["name"] = table["name"].astype(str)
        if table["name"].duplicated().any():
            raise SemantoksError(f"labels table: parcel name {table['name'][table['name'].duplicated()].iloc[0]!r} "
                                 "appears twice; make the names unique.")
    else:
        table, source = read_roi_labels(labels, {})
    if len(table) != n_parcels:
        raise SemantoksError(
            f"{source}: {len(table)} labels but the time series have {n_parcels} parcels; use the atlas's label table.")
    table["network"] = table["network"].fillna(UNASSIGNED).replace("", UNASSIGNED).astype(str) \
        if "network" in table.columns else UNASSIGNED
    if "hemisphere" not in table.columns:
        table["hemisphere"] = table["name"].map(hemisphere_of_name)
    if "index" not in table.columns:
        table["index"] = range(1, n_parcels + 1)
    if "column" not in table.columns:
        table["column"] = None
    return table[["index", "name", "network", "hemisphere", "column"]].reset_index(drop=True)


def import_roi_timeseries(files, pattern, cohort, atlas_id, out_dir, *, tr=None, site_column=None, tr_column=None,
                          tr_by_site=None, labels=None, phenotypes=None, participant_column="participant_id",
                          missing=None, mean_fd_column=None, orientation="auto", mat_variable=None, space="unknown",
                          task="rest", min_seconds=0.0):
    """Write every matched scan as `<out_dir>/sub-X/[ses-Y/]<scan_id>_space-..._timeseries.parquet` + `_qc.json`.

    `out_dir` is the cohort's time-series folder (results/timeseries/<cohort>). TR: `tr` seconds for every
    scan; or the phenotype column `tr_column` (seconds per subject); or per site: the site from the pattern's
    `site` group or the phenotype column `site_column`, looked up in `tr_by_site`. `labels` is the parcellation's
    table (file-column order, optional `column`). Outputs of scans whose source file is gone are removed and
    the written pairs are listed in `<out_dir>/roi_import.tsv` (IMPORT_INDEX). A scan shorter than `min_seconds`
    or with fewer than MIN_VALID_PARCEL_FRACTION of its parcels holding data is excluded with its reason.
    Returns [(parquet, qc_json)].
    """
    check_label(cohort, "cohort", "cohort name")
    if orientation not in ORIENTATIONS:
        raise SemantoksError(f"roi.orientation '{orientation}': not one of {', '.join(ORIENTATIONS)}; fix roi.orientation.")
    scans = find_roi_scans(files, pattern, task)
    participants = read_participants(phenotypes, participant_column, missing) if phenotypes else None
    trs = [_scan_tr(scan, tr, site_column, tr_column, tr_by_site, participants, participant_column, phenotypes)
           for scan in scans]
    if labels is not None and not isinstance(labels, pd.DataFrame):
        labels = read_roi_labels(labels, {})[0]
    n_labels = None if labels is None else len(labels)
    transpose, n_parcels = _orientation(scans, orientation, n_labels, mat_variable, labels)
    parcels = roi_label_table(labels, n_parcels)
    mean_fd = _mean_fd(participants, participant_column, mean_fd_column, phenotypes)
    outputs = []
    for scan, scan_tr in zip(scans, trs):
        data, header = read_roi_table(scan.source, mat_variable)
        data = data.T if transpose else data
        # generated names (no labels table) cannot disagree with a header
        checked_header = header if labels is not None and not transpose else None
        data = data[:, _file_columns(scan.source, checked_header, data.shape[1], parcels)]
        entities = {**scan.entities, "space": space}
        folder = Path(out_dir) / subject_dir(entities)
        parquet = folder / timeseries_name(entities, atlas_id, IMPORTED)
        outputs.append(_write_scan(scan, data, parcels, parquet, cohort, atlas_id, space, scan_tr,
                                   mean_fd.get(subject_key(scan.entities["sub"]), math.nan), min_seconds))
    _replace_index(Path(out_dir), outputs)
    return outputs


def import_roi_cohort(cohort, roi, phenotypes, out_dir, templateflow_home=None, allow_download=False):
    """import_roi_timeseries from a config's cohort settings: `roi` (files, pattern, parcellation, labels, ...;
    see workflow/schemas/config.schema.yaml) and `phenotypes` (table, participant_column, missing_values)."""
    for key, what in (("files", "folder of time-series files"), ("pattern", "file name pattern")):
        if not roi.get(key):
            raise SemantoksError(f"cohorts.{cohort}.roi.{key}: not set; give the {what}.")
    atlas_id = parcellation_id({"cohorts": {cohort: {"source": "roi", "roi": roi}}})
    labels = roi_parcel_table(roi, cohort, templateflow_home, allow_download, with_networks=False)
    phenotypes = phenotypes or {}
    return import_roi_timeseries(
        roi["files"], roi["pattern"], cohort, atlas_id, out_dir, tr=roi.get("tr"), site_column=roi.get("site_column"),
        tr_column=roi.get("tr_column"), tr_by_site=roi.get("tr_by_site"), labels=labels,
        phenotypes=phenotypes.get("table"), participant_column=phenotypes.get("participant_column", "participant_id"),
        missing=phenotypes.get("missing_values"), mean_fd_column=roi.get("mean_fd_column"),
        orientation=roi.get("orientation") or "auto", mat_variable=roi.get("mat_variable"),
        space=roi.get("space") or "unknown", task=roi.get("task") or "rest",
        min_seconds=float(roi.get("min_seconds", ROI_MIN_SECONDS)))


def import_phenotype_values(roi, phenotypes):
    """sha256 of the phenotype-table cells the import reads (participant, TR, site and mean-FD columns), or None.

    The workflow reruns the import when these change, not when the table's bytes or other columns do (a copy of
    the table, an edited age cell).
    """
    import hashlib
    import json

    phenotypes = phenotypes or {}
    columns = [roi.get(key) for key in ("tr_column", "site_column", "mean_fd_column") if roi.get(key)]
    if not phenotypes.get("table") or not columns:
        return None
    participant_column = phenotypes.get("participant_column", "participant_id")
    table = read_participants(phenotypes["table"], participant_column, phenotypes.get("missing_values"))
    present = [column for column in [participant_column, *columns] if column in table.columns]
    values = table[present].astype(str).to_dict(orient="split")
    return hashlib.sha256(json.dumps({"columns": values["columns"], "rows": sorted(values["data"])}).encode()).hexdigest()


def read_import_index(path):
    """The [(parquet, qc_json)] pairs a ROI import wrote, from its IMPORT_INDEX file."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str)
    return [(path.parent / t, path.parent / q) for t, q in zip(table["timeseries"], table["qc"])]


def _replace_index(out_dir, outputs):
    """List exactly this import's outputs and delete those of source files that are gone."""
    keep = {Path(p).resolve() for pair in outputs for p in pair}
    for stale in [*out_dir.rglob("*_timeseries.parquet"), *out_dir.rglob("*_qc.json")]:
        if stale.resolve() not in keep:
            stale.unlink()
    for folder in sorted((p for p in out_dir.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    rows = sorted((Path(p).relative_to(out_dir).as_posix(), Path(q).relative_to(out_dir).as_posix()) for p, q in outputs)
    write_table_tsv(out_dir / IMPORT_INDEX, pd.DataFrame(rows, columns=["timeseries", "qc"]))


def _orientation(scans, orientation, n_labels, mat_variable, labels=None):
    """(transpose?, n_parcels), after checking every file has the parcellation's parcel count."""
    shapes = {scan.source: roi_array_shape(scan.source, mat_variable) for scan in scans}
    # parcels picked by an explicit `column` need not fill the file: only the frame axis is decided here
    selected = labels is not None and "column" in labels.columns and labels["column"].notna().any()
    if orientation == "auto":
        rows, columns = Counter(s[0] for s in shapes.values()), Counter(s[1] for s in shapes.values())
        if n_labels is not None:
            transpose = not selected and n_labels not in columns and n_labels in rows
        else:
            # the parcel axis is the one whose length never changes between scans
            transpose = len(columns) > 1 and len(rows) == 1 and len(shapes) > 1
    else:
        transpose = orientation == "parcels_by_frames"
    if selected:
        return transpose, n_labels
    counts = {path: shape[0] if transpose else shape[1] for path, shape in shapes.items()}
    if n_labels is None:
        expected = Counter(counts.values()).most_common(1)[0][0]
        for path, count in counts.items():
            if count != expected:
                raise SemantoksError(
                    f"{path}: has {count} parcels but most files have {expected} (shape {shapes[path]}); it was "
                    "extracted with another atlas: move it out of roi.files or narrow roi.pattern.")
        return transpose, expected
    for path, count in counts.items():
        if count != n_labels and n_labels in shapes[path]:
            layout = ("parcels x frames", "frames x parcels") if transpose else ("frames x parcels", "parcels x frames")
            raise SemantoksError(
                f"{path}: shape {shapes[path]} holds the {n_labels} parcels on the other axis than the other files "
                f"({layout[0]}); save it as {layout[0]} like the others, or move it out of roi.files.")
        if count != n_labels:
            raise SemantoksError(
                f"{path}: shape {shapes[path]} has no axis of {n_labels} parcels, the labels table's row count; "
                "use the labels table of the parcellation these files were extracted with (one row per file column), "
                "or move this file out of roi.files.")
    return transpose, n_labels


def _file_columns(path, header, n_columns, parcels):
    """Index of each parcel's column in the file: its `column` (a header name, else a 1-based position), else in order;
    a header, when present, must name the parcels (or number them 1..N)."""
    refs = parcels["column"].tolist()
    names = parcels["name"].astype(str).tolist()
    if any(ref is not None and not (isinstance(ref, float) and math.isnan(ref)) for ref in refs):
        positions = []
        for name, ref in zip(names, refs):
            if header is not None and str(ref) in header:
                positions.append(header.index(str(ref)))
            elif isinstance(ref, (int, np.integer)) or (isinstance(ref, str) and ref.isdigit()):
                position = int(ref)
                if not 1 <= position <= n_columns:
                    raise SemantoksError(f"{path}: has {n_columns} columns but parcel {name!r} is in column {position}; "
                                         "fix the labels table's column values.")
                positions.append(position - 1)
            elif header is None:
                raise SemantoksError(f"{path}: has no header line, so parcel {name!r} cannot be found by the column name "
                                     f"{ref!r}; give 1-based positions in the labels table's column column.")
            else:
                raise SemantoksError(f"{path}: no column headed {ref!r} (parcel {name!r}); fix the labels table's "
                                     "column values to the file's header names.")
        return np.asarray(positions)
    if n_columns != len(names):
        raise SemantoksError(f"{path}: has {n_columns} columns but the labels table {len(names)} parcels; "
                             "use the labels table of the parcellation these files were extracted with.")
    matched = None if header is None else _header_columns(header, parcels)
    if matched is not None:
        return matched
    if header is not None:
        first = next(i for i, (a, b) in enumerate(zip(header, names)) if a != b)
        raise SemantoksError(
            f"{path}: column {first + 1} is headed {header[first]!r} but the labels table's parcel {first + 1} is "
            f"{names[first]!r}, and the header matches neither the table's names nor its index values one to one; "
            "name the parcels as the header does, give an index column holding the header's numbers, or add a column "
            "column giving each parcel's header name.")
    return np.arange(n_columns)


def _header_columns(header, parcels):
    """Each parcel's column found in the header by its name, else (a header of numbers, `#1 ... #200`) by its label
    value `index`, whatever the table's row order; None unless header and table match one to one."""
    names = parcels["name"].astype(str).tolist()
    # equal lengths are checked before: equal sets of distinct keys are a bijection
    if len(set(header)) == len(header) and set(header) == set(names):
        position = {name: i for i, name in enumerate(header)}
        return np.asarray([position[name] for name in names])
    if not all(str(h).isdigit() for h in header):
        return None
    numbers, values = [int(h) for h in header], [int(v) for v in parcels["index"]]
    if len(set(numbers)) != len(numbers) or set(numbers) != set(values):
        return None
    position = {number: i for i, number in enumerate(numbers)}
    return np.asarray([position[value] for value in values])


def _scan_tr(scan, tr, site_column, tr_column, tr_by_site, participants, participant_column, phenotypes):
    if tr is not None:
        return _positive_tr(tr, "roi.tr")
    if tr_column:
        if participants is None or tr_column not in participants.columns:
            raise SemantoksError(f"{phenotypes or 'phenotypes.table'}: no column '{tr_column}'; fix roi.tr_column "
                                 "(the column holding each subject's TR in seconds).")
        return _positive_tr(_subject_value(scan, participants, participant_column, tr_column, phenotypes),
                            f"{phenotypes} column {tr_column} (subject {scan.entities['sub']})")
    if not tr_by_site:
        raise SemantoksError("roi: no repetition time; set roi.tr (seconds), roi.tr_column, or roi.site_column "
                             "with roi.tr_by_site.")
    site = scan.site
    if site is None:
        if not site_column or participants is None:
            raise SemantoksError("roi.tr_by_site: no site for the scans; add a (?P<site>...) group to roi.pattern "
                                 "or set roi.site_column and the cohort's phenotypes.table.")
        if site_column not in participants.columns:
            raise SemantoksError(f"{phenotypes}: no column '{site_column}'; set roi.site_column to the site column.")
        site = _subject_value(scan, participants, participant_column, site_column, phenotypes)
        site = int(site) if isinstance(site, float) and site.is_integer() else site
    if str(site) not in {str(k) for k in tr_by_site}:
        raise SemantoksError(
            f"{scan.source}: site '{site}' has no repetition time; add it under roi.tr_by_site (e.g. {site}: 2.0).")
    value = {str(k): v for k, v in tr_by_site.items()}[str(site)]
    return _positive_tr(value, f"roi.tr_by_site.{site}")


def _subject_value(scan, participants, participant_column, column, phenotypes):
    keys = participants[participant_column].map(lambda label: subject_key(label) if isinstance(label, str) else None)
    rows = participants[keys == subject_key(scan.entities["sub"])]
    if rows.empty or pd.isna(rows[column].iloc[0]):
        raise SemantoksError(f"{phenotypes}: no {column} for subject {scan.entities['sub']} ({scan.source.name}); "
                             "add the subject's row or set roi.tr.")
    return rows[column].iloc[0]


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


def _write_scan(scan, data, parcels, parquet, cohort, atlas_id, space, tr, mean_fd, min_seconds=0.0):
    # NaN and +-inf are missing values alike; how many there were goes into the QC record
    n_nonfinite = int((~np.isfinite(np.asarray(data, dtype=np.float64))).sum())
    data = np.where(np.isfinite(data), data, np.nan).astype(np.float32)
    # ABIDE-style exports fill parcels outside a subject's mask with zeros: treat them as uncovered
    empty = np.all(np.isnan(data) | (data == 0), axis=0) if len(data) else np.ones(data.shape[1], bool)
    data[:, empty] = np.nan
    n_volumes = len(data)
    enough = (~empty).mean() >= MIN_VALID_PARCEL_FRACTION
    long_enough = n_volumes * tr >= min_seconds
    included, reason = bool(n_volumes and enough and long_enough), None
    if not included:
        reason = ("The file has no frames." if not n_volumes else "Every parcel is empty (all zeros or NaN)."
                  if empty.all() else f"Only {int((~empty).sum())} of {empty.size} parcels hold data (at least "
                  f"{MIN_VALID_PARCEL_FRACTION:.0%} are needed); {n_nonfinite} values are NaN or inf." if not enough
                  else f"Only {n_volumes} volumes ({n_volumes * tr:g} s), below the {min_seconds:g} s of "
                  "roi.min_seconds.")
        data = data[:0]
    record = run_record(cohort, scan.entities, space=space, atlas=atlas_id, strategy=IMPORTED, n_parcels=len(parcels),
                        tr=tr, n_volumes=n_volumes, n_frames=len(data), mean_fd=mean_fd, pct_censored=0.0,
                        included=included, reason=reason, parcel_coverage=(~empty).astype(float), source=scan.source,
                        n_uncovered_parcels=int(empty.sum()), n_nonfinite_values=n_nonfinite)
    qc_path = parquet.with_name(parquet.name.replace("_timeseries.parquet", "_qc.json"))
    return write_run_outputs(parquet, qc_path, np.arange(len(data)), data, parcels["name"].astype(str).tolist(), record)
