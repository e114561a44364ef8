"""Phenotype specs and subject-level labels: typed values, quantile bins, and why a phenotype cannot be probed."""

import dataclasses

import numpy as np
import pandas as pd

from semantoks.dataset.keys import subject_key
from semantoks.errors import SemantoksError

PHENOTYPE_TYPES = ("binary", "categorical", "continuous")
CLASSIFICATION_TYPES = ("binary", "categorical")


def expand_phenotype_specs(specs, types=None):
    """Resolve config specs {name: {type?, bins?}}: adds `<name>_binned` (quantile classes) where `bins` is set.

    A spec without `type` takes it from `types` (the phenotype table's declared {column: type}).
    Every resolved spec has `type` and `source` (the phenotype column it reads), binned ones `bins`.
    """
    resolved = {}
    for name, spec in specs.items():
        spec = spec or {}
        kind = spec.get("type") or (types or {}).get(spec.get("source", name))
        if kind not in PHENOTYPE_TYPES:
            raise SemantoksError(
                f"config.yaml: probes phenotype {name!r} has type {kind!r}; use one of {', '.join(PHENOTYPE_TYPES)}."
            )
        if "/" in name or name.startswith("."):
            raise SemantoksError(f"config.yaml: phenotype name {name!r} cannot be a file name; rename it.")
        resolved[name] = {"type": kind, "source": spec.get("source", name)}
        bins = spec.get("bins")
        if bins:
            if kind != "continuous" or int(bins) < 2:
                raise SemantoksError(
                    f"config.yaml: phenotype {name!r} sets bins: {bins}; "
                    "bins (>= 2) applies to continuous phenotypes only."
                )
            resolved[f"{name}_binned"] = {"type": "categorical", "source": name, "bins": int(bins)}
    return resolved


def phenotype_job_names(specs):
    """The phenotype names probed for config specs, `<name>_binned` included: one Snakemake job each."""
    names = []
    for name, spec in specs.items():
        names += [name] + ([f"{name}_binned"] if (spec or {}).get("bins") else [])
    return names


@dataclasses.dataclass
class SubjectLabels:
    """One phenotype at subject level: keys, values (class codes or floats), class names, bin edges."""

    name: str
    kind: str
    subjects: np.ndarray
    values: np.ndarray
    classes: list | None = None
    bin_edges: list | None = None

    @property
    def is_classification(self):
        return self.kind in CLASSIFICATION_TYPES


def subject_labels(phenotypes, name, spec, scan_meta):
    """Values of `spec["source"]` for the subjects that have scans in `scan_meta` and a non-missing value."""
    source = spec["source"]
    if source not in phenotypes.columns:
        raise SemantoksError(
            f"phenotype table: has no column {source!r}; "
            f"add it to the phenotype file or remove {name!r} from config.yaml."
        )
    on = ["cohort", "subject"] if "cohort" in phenotypes.columns else ["subject"]
    table = phenotypes[on + [source]].astype({column: str for column in on})
    if table.duplicated(on).any():
        first = table[table.duplicated(on)].iloc[0]
        raise SemantoksError(
            f"phenotype table: subject {first['subject']!r} has more than one row; keep one row per subject."
        )
    scans = scan_meta[["cohort", "subject"]].astype(str).drop_duplicates()
    merged = scans.merge(table, on=on, how="left")
    merged = merged[merged[source].notna()]
    keys = np.array([subject_key(c, s) for c, s in zip(merged["cohort"], merged["subject"])], dtype=object)
    column = merged[source]
    if spec["type"] == "continuous" or spec.get("bins"):
        values = _numeric(column, source)
        if spec.get("bins"):
            return _binned(name, spec, keys, values)
        return SubjectLabels(name, "continuous", keys, values)
    text = column.map(_class_name).to_numpy(dtype=object)
    classes = sorted(set(text))
    if spec["type"] == "binary" and len(classes) > 2:
        raise SemantoksError(
            f"phenotype table: binary column {source!r} has {len(classes)} values ({', '.join(classes[:4])}); "
            "declare it categorical or fix the values."
        )
    codes = np.searchsorted(np.array(classes, dtype=object), text)
    return SubjectLabels(name, spec["type"], keys, codes.astype(int), classes)


def _numeric(column, source):
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        example = next((v for v in column if isinstance(v, str)), column.iloc[0] if len(column) else None)
        raise SemantoksError(
            f"phenotype table: column {source!r} is declared continuous but holds text such as {example!r}; "
            "fix the values or declare it categorical."
        )
    return column.to_numpy(dtype=np.float64)


def _class_name(value):
    # 1.0 read from a numeric column names the same class as "1"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _binned(name, spec, keys, values):
    if len(values) == 0:
        return SubjectLabels(name, "categorical", keys, np.zeros(0, dtype=int), [], [])
    codes, edges = pd.qcut(values, spec["bins"], labels=False, retbins=True, duplicates="drop")
    classes = [f"[{low:g}, {high:g}]" for low, high in zip(edges[:-1], edges[1:])]
    return SubjectLabels(name, "categorical", keys, np.asarray(codes, dtype=int), classes, [float(e) for e in edges])


def unusable_reason(labels, inner_folds, min_subjects=10):
    """Why this phenotype cannot be probed (one sentence), or None when it can."""
    n = len(labels.values)
    if n == 0:
        return "no subject with scans has a value"
    if n < min_subjects:
        return f"only {n} subjects with scans have a value; at least {min_subjects} are needed"
    if not labels.is_classification:
        if np.ptp(labels.values) == 0:
            return f"all {n} subjects have the same value"
        return None
    counts = np.bincount(labels.values, minlength=len(labels.classes))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        return f"only one class ({labels.classes[present[0]]}) among the {n} subjects"
    smallest = int(present[np.argmin(counts[present])])
    if counts[smallest] < inner_folds:
        return (
            f"class {labels.classes[smallest]} has {counts[smallest]} subjects; "
            f"at least {inner_folds} are needed for {inner_folds}-fold inner cross-validation"
        )
    return None
