"""`semantoks onboard --roi`: index a folder of ROI time-series files and write its `source: roi` cohort entry.

Uses the import's own pieces (file search, file reader, subject matching, missing-value vocabulary), so what
the report says is what the pipeline will do.
"""

from collections import Counter
from pathlib import Path

import pandas as pd

from semantoks.cohorts.onboard_report import FILL_IN, listing, phenotype_section
from semantoks.cohorts.phenotype_types import guess_columns, match_subjects, read_participants, subject_key
from semantoks.cohorts.roi_files import read_roi_table, roi_array_shape
from semantoks.cohorts.roi_parcellation import check_labels_table
from semantoks.cohorts.roi_scans import find_roi_scans
from semantoks.errors import SemantoksError

# the first run of 3+ digits in the file's path: ABIDE's KKI_0050773_rois_cc200.1D -> 0050773
DEFAULT_PATTERN = r"(?P<subject>\d{3,})"
TR_COLUMN_NAMES = ("tr", "tr_s", "repetitiontime", "repetition_time", "tr_sec")


def onboard_roi(name, folder, pattern, phenotypes, participant_column, site_column, tr_column, parcellation, labels):
    """(entry, column guesses, report lines) for a folder of ROI time series."""
    pattern = pattern or DEFAULT_PATTERN
    scans = find_roi_scans(folder, pattern)
    report = [f"Cohort {name}: onboarding report", "", f"ROI time series: {Path(folder).resolve()}",
              f"Pattern: {pattern} matches {len(scans)} files of {len({s.entities['sub'] for s in scans})} subjects"]
    n_parcels = _shape_section(scans, report)
    roi = {"files": str(Path(folder).resolve()), "pattern": pattern, "parcellation": parcellation or FILL_IN,
           "labels": str(Path(labels).resolve()) if labels else FILL_IN}
    guesses, table = [], None
    if phenotypes:
        table = read_participants(phenotypes, participant_column)
        guesses = guess_columns(table, participant_column)
        subjects = sorted({scan.entities["sub"] for scan in scans})
        phenotype_section(table, participant_column, subjects, guesses, phenotypes, report)
        try:
            match_subjects(subjects, table[participant_column].dropna().tolist(), phenotypes, name)
        except SemantoksError as error:
            report += ["", f"WARNING: the pipeline will refuse this cohort: {error}"]
    roi.update(_repetition_times(scans, table, participant_column, site_column, tr_column, phenotypes, report))
    if labels:
        try:
            check_labels_table({"labels": labels}, "--labels", n_parcels)
        except SemantoksError as error:
            report += ["", f"WARNING: the pipeline will refuse this labels table: {error}"]
    if n_parcels and not labels:
        report += ["", f"Labels: give the parcellation's labels table ({n_parcels} rows, one per file column: name, "
                   "network) with --labels, or fill in roi.labels."]
    entry = {"source": "roi", "roi": roi}
    if phenotypes:
        entry["phenotypes"] = {"table": str(Path(phenotypes).resolve()), "participant_column": participant_column,
                               "columns": {g.name: g.type for g in guesses if g.kept}}
    return entry, guesses, report


def _shape_section(scans, report):
    """Read one file in full (header, orientation) and every file's shape; returns the parcel count."""
    first = scans[0].source
    data, header = read_roi_table(first)
    shapes = {scan.source: roi_array_shape(scan.source) for scan in scans}
    if header:
        transpose, why = False, f"its header names {len(header)} columns ({', '.join(header[:3])}, ...)"
    else:
        rows, columns = Counter(s[0] for s in shapes.values()), Counter(s[1] for s in shapes.values())
        transpose = len(columns) > 1 and len(rows) == 1
        why = "the parcel axis is the one whose length is the same in every file"
    orientation = "parcels x frames" if transpose else "frames x parcels"
    counts = Counter(shape[0] if transpose else shape[1] for shape in shapes.values())
    frames = [shape[1] if transpose else shape[0] for shape in shapes.values()]
    n_parcels = counts.most_common(1)[0][0]
    report.append(f"One file read: {first.name}: shape {data.shape[0]} x {data.shape[1]}, read as {orientation} "
                  f"({why})")
    report.append(f"Parcels: {n_parcels}; frames per file: {min(frames)} to {max(frames)}")
    odd = [f"{path.name}: {shape}" for path, shape in shapes.items()
           if (shape[0] if transpose else shape[1]) != n_parcels]
    listing(report, f"Files whose parcel count is not {n_parcels} (the import refuses them)", odd)
    return n_parcels


def _repetition_times(scans, table, participant_column, site_column, tr_column, phenotypes, report):
    """The roi TR settings: from a TR column, per site (values FILL_IN unless a TR column gives them), or FILL_IN."""
    if table is not None and not tr_column:
        tr_column = next((c for c in table.columns if str(c).strip().lower() in TR_COLUMN_NAMES), None)
    for column, flag in ((site_column, "--site-column"), (tr_column, "--tr-column")):
        if column and (table is None or column not in table.columns):
            raise SemantoksError(f"{phenotypes or '--phenotypes'}: no column {column!r}; fix {flag} (or pass --phenotypes).")
    keys = {subject_key(scan.entities["sub"]) for scan in scans}
    rows = table[table[participant_column].map(lambda s: subject_key(s) in keys if isinstance(s, str) else False)] \
        if table is not None else None
    if not site_column:
        if tr_column:
            report.append(f"Repetition time: from column {tr_column} per subject")
            return {"tr_column": tr_column}
        report.append("Repetition time: not known; fill in roi.tr (seconds), or rerun with --site-column/--tr-column")
        return {"tr": FILL_IN}
    by_site = {}
    for site, group in rows.groupby(site_column):
        values = sorted(pd.to_numeric(group[tr_column], errors="coerce").dropna().unique()) if tr_column else []
        if len(values) > 1:
            report.append(f"  site {site}: TR varies ({', '.join(f'{v:g}' for v in values)}); use roi.tr_column")
        by_site[str(site)] = float(values[0]) if len(values) == 1 else FILL_IN
    filled = sum(tr != FILL_IN for tr in by_site.values())
    report.append(f"Sites ({site_column}): {len(by_site)}; TR known for {filled}" +
                  ("" if filled == len(by_site) else "; the others are marked FILL_IN in the cohort entry"))
    return {"site_column": site_column, "tr_by_site": by_site}
