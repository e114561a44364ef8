"""Typed phenotype tables: read a participants file, check it against declared types, write a partition."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.atomic import atomic_path
from semantoks.cohorts.missing_values import missing_values
from semantoks.cohorts.phenotype_types import match_subjects
from semantoks.dataset.layout import PART_NAME, check_partition_value, cohort_of, part_files, partition_dir
from semantoks.errors import SemantoksError

PHENOTYPE_TYPES = ("binary", "categorical", "continuous")
TYPES_KEY = b"semantoks.phenotype_types"
# a continuous value this many robust SDs (MAD x 1.4826) from the median is logged as a likely entry error
OUTLIER_ROBUST_SDS = 6
_BLANK = {"", "n/a", "na", "nan"}
# a value that names nothing by itself (1, 2.0, F): the ones a sidecar's Levels replace by their names
BARE_CODE = re.compile(r"^(-?\d+(\.\d+)?|[A-Za-z])$")
SIDECAR = object()

log = logging.getLogger(__name__)


def read_phenotypes(path, participant_column, columns, subjects=None, cohort=None, missing=None, classes=None):
    """The declared columns of a participants file, typed; returns (frame, report).

    One row per subject (label without `sub-`); rows are matched to the imaging `subjects` with the
    project's one rule (`subject_key`: '50001' matches 'sub-0050001') and then carry the imaging label.
    Cells in the `missing` vocabulary (default: cohorts.missing_values) are missing. Continuous columns are float64 with NaN for
    missing; binary and categorical columns are pandas categoricals of strings, missing as NaN.
    The report counts missing values and lists the subjects found only in the file or only in
    the imaging data (`subjects`); those are logged, not fatal. `path=None` (a cohort without a
    phenotype file) gives the imaging subjects with every declared column missing. Class codes of a
    binary/categorical column are replaced by their names: `classes` {column: {code: name}} from the
    config, else the `Levels` of the BIDS sidecar (`participants.json` beside the table).
    """
    columns = _check_declared_types(path, columns)
    if path is None:
        frame = _all_missing(columns, subjects)
        missing = {name: len(frame) for name in columns}
    else:
        path = Path(path)
        raw = _read_text_table(path)
        _check_columns(path, raw, participant_column, columns)
        labels = _subject_labels(path, raw[participant_column])
        if subjects is not None:
            matched = match_subjects(subjects, labels, path, cohort)
            labels = np.array([matched.get(label, label) for label in labels], dtype=object)
        frame = pd.DataFrame({"subject": labels})
        vocabulary = missing_values(missing)
        names = class_names(path, columns, classes)
        missing = {}
        for name, kind in columns.items():
            values = raw[name].str.strip()
            is_missing = vocabulary.is_missing(values)
            missing[name] = int(is_missing.sum())
            if kind == "continuous":
                frame[name] = _continuous(path, name, values, is_missing)
            else:
                frame[name] = _categories(path, name, kind, _named(path, name, values.mask(is_missing), names))
    report = _coverage_report(path, cohort, frame, missing, subjects)
    report["outliers"] = _outliers(path, frame, columns)
    frame.attrs["phenotype_types"] = dict(columns)
    frame.attrs["phenotype_report"] = report
    return frame, report


def write_phenotypes(frame, target, types=None):
    """Write a phenotype partition file atomically, with `semantoks.phenotype_types` in its metadata."""
    types = dict(types if types is not None else frame.attrs["phenotype_types"])
    fields = [pa.field("subject", pa.string())]
    for name, kind in types.items():
        fields.append(pa.field(name, pa.float64() if kind == "continuous" else pa.dictionary(pa.int32(), pa.string())))
    table = pa.Table.from_pandas(frame[["subject", *types]], schema=pa.schema(fields), preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[TYPES_KEY] = json.dumps(types).encode()
    metadata[b"semantoks"] = json.dumps(frame.attrs.get("phenotype_report", {})).encode()
    with atomic_path(target) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
    return Path(target)


def phenotype_table_path(out_root, cohort):
    """`<out_root>/phenotypes/cohort=<cohort>/part-0.parquet`."""
    return partition_dir(out_root, "phenotypes", cohort=check_partition_value("cohort", cohort)) / PART_NAME


def build_phenotype_table(path, participant_column, columns, subjects, cohort, out_root, missing=None, classes=None):
    """Read, check and write one cohort's phenotypes into the dataset; returns (written path, report)."""
    frame, report = read_phenotypes(path, participant_column, columns, subjects=subjects, cohort=cohort,
                                    missing=missing, classes=classes)
    return write_phenotypes(frame, phenotype_table_path(out_root, cohort)), report


def read_phenotype_table(root, cohorts=None):
    """All cohorts' phenotypes with a `cohort` column; a column must have one type across cohorts."""
    files = part_files(root, "phenotypes", cohorts=cohorts)
    if not files:
        raise SemantoksError(f"{Path(root) / 'phenotypes'}: no phenotype partitions found; build the dataset first.")
    frames, types, declared_in = [], {}, {}
    for path in files:
        table = pq.read_table(path, partitioning=None)
        file_types = json.loads(table.schema.metadata[TYPES_KEY])
        for name, kind in file_types.items():
            if types.setdefault(name, kind) != kind:
                raise SemantoksError(
                    f"{path}: column {name!r} is {kind} here but {types[name]} in {declared_in[name]}; "
                    "declare it with one type for every cohort."
                )
            declared_in.setdefault(name, path)
        frame = table.to_pandas()
        frame.insert(0, "cohort", cohort_of(path))
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True)
    for name, kind in types.items():
        if kind != "continuous":
            # categories differ between cohorts, so concat falls back to object: restore the categorical
            combined[name] = combined[name].astype("category")
    combined.attrs["phenotype_types"] = types
    return combined


def class_names(path, columns, classes=None):
    """{column: {code: name}} for the binary/categorical `columns`: the config's `classes`, else the sidecar's Levels.

    The sidecar is the BIDS `participants.json` beside the table (same name, .json); its Levels name a
    column only where every value is a bare code (a number or one letter, see `_named`), so words like
    "patient" stay. A column in `classes` that is not a declared binary/categorical column is an error.
    """
    where = f"{path}: phenotypes.classes" if path is not None else "config.yaml: phenotypes.classes"
    found = {}
    for column, levels in (classes or {}).items():
        if columns.get(column) not in ("binary", "categorical"):
            raise SemantoksError(f"{where} names column {column!r}, which is not a declared binary or categorical "
                                 "column; declare it in phenotypes.columns or remove it from classes.")
        found[column] = _levels(where, column, levels)
    sidecar = None if path is None else Path(path).with_suffix(".json")
    if sidecar is not None and sidecar.is_file():
        try:
            described = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SemantoksError(f"{sidecar}: not valid JSON ({error}); fix the BIDS sidecar or remove it.") from None
        for column, kind in columns.items():
            levels = (described.get(column) or {}).get("Levels") if isinstance(described, dict) else None
            if kind != "continuous" and column not in found and isinstance(levels, dict) and levels:
                found[column] = {**_levels(f"{sidecar}: {column}.Levels", column, levels), SIDECAR: True}
    return found


def _levels(where, column, levels):
    if not isinstance(levels, dict) or not levels:
        raise SemantoksError(f"{where}.{column} must map each code to a name, e.g. {{1: autism, 2: control}}.")
    named = {str(code).strip(): str(name).strip() for code, name in levels.items()}
    if any(not name for name in named.values()) or len(set(named.values())) < len(named):
        raise SemantoksError(f"{where}.{column} gives an empty or repeated class name ({named}); give each code "
                             "its own name.")
    return named


def _named(path, column, values, names):
    """The column's codes replaced by their class names; a code without a name is one line."""
    if column not in names:
        return values
    mapping = {code: name for code, name in names[column].items() if code != SIDECAR}
    present = values.dropna()
    if SIDECAR in names[column] and not present.map(lambda v: bool(BARE_CODE.match(str(v)))).all():
        return values
    unnamed = present[~present.isin(list(mapping))]
    if len(unnamed):
        raise SemantoksError(f"{path}: column {column!r} has code {unnamed.iloc[0]!r} (row {_row(unnamed.index[0])}) "
                             f"with no class name (named: {', '.join(mapping)}); add it to phenotypes.classes.{column} "
                             "or to the sidecar's Levels.")
    return values.map(mapping, na_action="ignore")


def _all_missing(columns, subjects):
    frame = pd.DataFrame({"subject": sorted({str(s).removeprefix("sub-") for s in subjects or []})})
    for name, kind in columns.items():
        frame[name] = np.nan if kind == "continuous" else pd.Categorical([None] * len(frame), categories=[])
    return frame


def _check_columns(path, raw, participant_column, columns):
    if participant_column not in raw.columns:
        raise SemantoksError(
            f"{path}: has no participant column {participant_column!r} (columns: {', '.join(raw.columns)}); "
            "set the participant column in the config to one of these."
        )
    absent = [name for name in columns if name not in raw.columns]
    if absent:
        raise SemantoksError(
            f"{path}: declared phenotype column(s) {', '.join(map(repr, absent))} not found "
            f"(columns: {', '.join(raw.columns)}); fix the names in the config."
        )


def _check_declared_types(path, columns):
    columns = dict(columns)
    where = path if path is not None else "config.yaml"
    for name, kind in columns.items():
        if kind not in PHENOTYPE_TYPES:
            raise SemantoksError(
                f"{where}: column {name!r} is declared {kind!r}; declare it as one of {', '.join(PHENOTYPE_TYPES)}."
            )
    if "subject" in columns:
        raise SemantoksError(
            f"{where}: a phenotype cannot be called 'subject'; rename the column in the file and config."
        )
    return columns


def _read_text_table(path):
    if not path.is_file():
        raise SemantoksError(f"{path}: phenotype file not found; fix the phenotype path in the config.")
    separator = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        # everything as text: types are decided by the declaration, not guessed
        raw = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SemantoksError(f"{path}: cannot be read as a {'comma' if separator == ',' else 'tab'}-separated table "
                             f"({error}); fix the file.") from None
    raw.columns = [str(name).strip() for name in raw.columns]
    return raw


def _row(position):
    # spreadsheet numbering: the header is row 1
    return position + 2


def _subject_labels(path, values):
    labels = values.str.strip().str.removeprefix("sub-")
    empty = np.flatnonzero(labels.str.lower().isin(_BLANK))
    if len(empty):
        raise SemantoksError(f"{path}: row {_row(empty[0])} has no participant label; fill it in or delete the row.")
    duplicated = labels[labels.duplicated(keep=False)]
    if len(duplicated):
        subject = duplicated.iloc[0]
        rows = ", ".join(str(_row(i)) for i in np.flatnonzero(labels == subject))
        raise SemantoksError(f"{path}: subject {subject} appears in rows {rows}; keep one row per subject.")
    return labels.to_numpy(dtype=object)


def _continuous(path, name, values, is_missing):
    numbers = pd.to_numeric(values.mask(is_missing), errors="coerce").astype("float64")
    bad = np.flatnonzero(~is_missing.to_numpy() & ~np.isfinite(numbers.to_numpy()))
    if len(bad):
        raise SemantoksError(
            f"{path}: column {name!r} is continuous but row {_row(bad[0])} has {values.iloc[bad[0]]!r}; "
            "fix the value or declare it categorical."
        )
    return numbers.to_numpy()


def _categories(path, name, kind, values):
    levels = sorted(values.dropna().unique())
    if kind == "binary" and len(levels) > 2:
        raise SemantoksError(
            f"{path}: column {name!r} is declared binary but has {len(levels)} values ({', '.join(levels)}); "
            "declare it categorical or recode it to two values."
        )
    return pd.Categorical(values, categories=levels)


def _outliers(path, frame, columns):
    """{column: [subjects]} of continuous values > OUTLIER_ROBUST_SDS robust SDs from the median; logged."""
    found = {}
    for name, kind in columns.items():
        if kind != "continuous":
            continue
        values = frame[name].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if len(finite) < 5:
            continue
        median = np.median(finite)
        spread = 1.4826 * np.median(np.abs(finite - median))
        if spread == 0:
            continue
        far = np.abs(values - median) > OUTLIER_ROBUST_SDS * spread
        if far.any():
            subjects = frame["subject"][far].astype(str).tolist()
            found[name] = subjects
            log.warning("%s: column %r has %d value(s) more than %d robust SDs from the median (%g): %s; "
                        "check them or add the code to phenotypes.missing_values", path, name, len(subjects),
                        OUTLIER_ROBUST_SDS, median,
                        ", ".join(f"{s}={v:g}" for s, v in zip(subjects, values[far])))
    return found


def _coverage_report(path, cohort, frame, missing, subjects):
    report = {"cohort": cohort, "source": None if path is None else str(path), "n_subjects": len(frame),
              "missing": missing}
    if subjects is not None:
        imaging = {str(subject).removeprefix("sub-") for subject in subjects}
        listed = set(frame["subject"])
        report["phenotype_only"] = sorted(listed - imaging)
        report["imaging_only"] = sorted(imaging - listed)
        if report["phenotype_only"]:
            log.warning("%s: %d subject(s) have phenotypes but no imaging, e.g. %s",
                        path, len(report["phenotype_only"]), report["phenotype_only"][0])
        if report["imaging_only"]:
            log.warning("%s: %d imaging subject(s) have no phenotype row, e.g. %s; probes skip them",
                        path, len(report["imaging_only"]), report["imaging_only"][0])
    for name, count in missing.items():
        if count:
            log.info("%s: column %r has %d missing value(s); probes skip those subjects", path, name, count)
    return report


def held_out_by_value(phenotypes, hold_out):
    """Sorted (cohort, subject) pairs whose `hold_out["column"]` value is one of `hold_out["values"]` (as text).

    `phenotypes` is a `read_phenotype_table` frame; `hold_out` is pretrain.hold_out ({column, values}) or None.
    """
    if not hold_out:
        return []
    column = hold_out["column"]
    if column not in phenotypes.columns:
        raise SemantoksError(f"config.yaml: pretrain.hold_out.column {column!r} is not a phenotype column of the "
                             f"pretraining cohorts (columns: {', '.join(map(str, phenotypes.columns))}); declare it.")
    # 1.0 read from a numeric column matches the value 1 in the config
    text = phenotypes[column].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    chosen = phenotypes[text.isin({str(value) for value in hold_out["values"]}).to_numpy()]
    return sorted(zip(chosen["cohort"].astype(str), chosen["subject"].astype(str)))
