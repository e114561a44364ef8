"""Read a participant table and guess each column's phenotype type for the user to confirm."""

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from semantoks.cohorts.missing_values import missing_values
from semantoks.errors import SemantoksError

MAX_CATEGORIES = 12
# integer-coded columns with this many values or fewer, each used a few times, are read as categories (handedness 1/2/3)
MAX_NUMERIC_CODES = 6
# a different value in every row of at least this many rows looks like an identifier
MIN_ROWS_FOR_ID = 5
_ID_NAME = re.compile(r"(^|[_\s])(id|ids|subject|participant|sub|subj|guid)($|[_\s])", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnGuess:
    """A column's guessed type; `kept` False means it is written commented out, with `reason`."""

    name: str
    type: str | None
    kept: bool
    reason: str
    summary: str


def read_participants(path, participant_column="participant_id", missing=None):
    """The table with its participant column as labels without 'sub-' (string); `missing` codes (a list, default
    the shared vocabulary) are read as NaN."""
    path = Path(path)
    if not path.is_file():
        raise SemantoksError(f"{path}: phenotype table not found; fix the phenotypes path.")
    separator = "\t" if path.suffix.lower() in (".tsv", ".txt") else "," if path.suffix.lower() == ".csv" else None
    try:
        table = pd.read_csv(path, sep=separator, engine="python", dtype={participant_column: str},
                            na_values=missing_values(missing).pandas_na_values(), keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:
        raise SemantoksError(
            f"{path}: not a readable TSV/CSV table ({error}); save it as tab- or comma-separated text.") from None
    if participant_column not in table.columns:
        raise SemantoksError(
            f"{path}: no column '{participant_column}' (columns: {', '.join(map(str, table.columns[:12]))}); "
            "pass the participant column's name with --participant-column.")
    labels = table[participant_column].astype("string").str.strip().str.removeprefix("sub-")
    table[participant_column] = labels
    return table


def subject_key(label):
    """The one subject-matching rule of the project: 'sub-0051036', '0051036' and '51036' are one subject.

    Blanks and a 'sub-' prefix are dropped, all-digit labels lose their leading zeros, and case is ignored.
    """
    label = str(label).strip()
    if label[:4].lower() == "sub-":
        label = label[4:]
    return (label.lstrip("0") or "0") if label.isdigit() else label.lower()


def refuse_shared_subject_keys(labels, where):
    """Two imaging labels with one subject_key ('01' and '001', '0050958' and '50958') cannot be told apart by a
    phenotype table: refused with one line naming both. `labels`: (label, where it comes from) pairs."""
    seen = {}
    for label, source in labels:
        bare = str(label).strip().removeprefix("sub-")
        key = subject_key(bare)
        if key in seen and seen[key][0] != bare:
            first, first_source = seen[key]
            raise SemantoksError(
                f"{where}: subjects {first!r} ({first_source}) and {bare!r} ({source}) differ only in leading zeros, "
                "so one phenotype row would match both; rename one of them or remove the duplicate.")
        seen.setdefault(key, (bare, source))


def match_subjects(imaging, listed, where, cohort=None):
    """{phenotype label: imaging label} by subject_key; an error when fewer than half the imaging subjects match.

    `imaging` and `listed` are labels (with or without 'sub-'); `where` names the phenotype table in messages.
    """
    imaging = list(imaging)
    refuse_shared_subject_keys(((s, "imaging") for s in imaging), f"cohort {cohort}" if cohort else where)
    imaging = {subject_key(s): str(s).strip().removeprefix("sub-") for s in imaging}
    matched, seen = {}, {}
    for label in listed:
        key = subject_key(label)
        if key in seen:
            raise SemantoksError(f"{where}: participants {seen[key]!r} and {label!r} are the same subject; keep one row.")
        seen[key] = label
        if key in imaging:
            matched[label] = imaging[key]
    if imaging and len(matched) < len(imaging) / 2:
        only_imaging = sorted(v for k, v in imaging.items() if k not in seen)[:3]
        only_table = sorted(str(v) for k, v in seen.items() if k not in imaging)[:3]
        name = f"cohort {cohort}: " if cohort else ""
        raise SemantoksError(
            f"{name}{where}: only {len(matched)} of {len(imaging)} imaging subjects have a phenotype row "
            f"(imaging e.g. {', '.join(only_imaging) or '-'}; table e.g. {', '.join(only_table) or '-'}); "
            "set phenotypes.participant_column to the column holding these subjects' labels.")
    return matched


def guess_column(series, name):
    values = series.dropna()
    n_missing = int(series.isna().sum())
    distinct = pd.unique(values)
    n_distinct = len(distinct)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    summary = _summary(values, distinct, numeric, n_missing)
    if n_distinct == 0:
        return ColumnGuess(name, None, False, "empty", summary)
    if n_distinct == 1:
        return ColumnGuess(name, None, False, "one value only", summary)
    if n_distinct == len(values) and len(values) >= MIN_ROWS_FOR_ID and (_ID_NAME.search(str(name)) or not numeric):
        return ColumnGuess(name, None, False, "looks like an identifier (a different value in every row)", summary)
    if n_distinct == 2:
        return ColumnGuess(name, "binary", True, "two values", summary)
    if numeric:
        integer_coded = bool((values == values.round()).all())
        if integer_coded and n_distinct == len(values) >= MIN_ROWS_FOR_ID and (
                str(name).startswith("Unnamed") or values.is_monotonic_increasing):
            return ColumnGuess(name, None, False, "looks like a row number (increasing, a different value in every row)",
                               summary)
        if integer_coded and n_distinct <= MAX_NUMERIC_CODES and len(values) >= 3 * n_distinct:
            return ColumnGuess(name, "categorical", True, f"{n_distinct} integer codes; check they are categories", summary)
        if _ID_NAME.search(str(name)):
            return ColumnGuess(name, None, False, "looks like an identifier (name)", summary)
        return ColumnGuess(name, "continuous", True, "numeric", summary)
    if n_distinct <= MAX_CATEGORIES:
        return ColumnGuess(name, "categorical", True, f"{n_distinct} categories", summary)
    return ColumnGuess(name, None, False, f"looks like free text ({n_distinct} different values)", summary)


def guess_columns(table, participant_column):
    return [guess_column(table[column], column) for column in table.columns if column != participant_column]


def _summary(values, distinct, numeric, n_missing):
    missing = f", {n_missing} missing" if n_missing else ""
    if numeric and len(values):
        return f"n={len(values)}{missing}, {values.min():g} to {values.max():g}, {len(distinct)} values"
    shown = ", ".join(str(v) for v in sorted(map(str, distinct))[:5]) + (", ..." if len(distinct) > 5 else "")
    return f"n={len(values)}{missing}, {len(distinct)} values: {shown}"
