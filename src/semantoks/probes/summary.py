"""The probes' summary tables from the per-phenotype JSONs: one row per feature set, phenotype and metric
(summary.tsv), and one per paired comparison of two feature sets on the same splits (paired.tsv).

A set probed at several pretraining seeds has its pooled row (seed mean per split; `n_seeds`, and the
seed interval `seed_min`..`seed_max`, the range of the per-seed means) and one row per seed (`model@1`)."""

import json

import pandas as pd

from semantoks.atomic import write_table_tsv
from semantoks.errors import SemantoksError
from semantoks.probes.paired import PAIRED_COLUMNS, with_holm

SUMMARY_COLUMNS = [
    "feature_set",
    "phenotype",
    "metric",
    "mean",
    "sd",
    "n_subjects",
    "n_repeats",
    "n_seeds",
    "seed_min",
    "seed_max",
    "p_value",
    "shuffled_mean",
    "status",
    "reason",
]


def summary_rows(record):
    """Rows of the summary table for one per-phenotype record."""
    rows = []
    for feature_set, result in record["feature_sets"].items():
        base = {
            "feature_set": feature_set,
            "phenotype": record["phenotype"],
            "n_subjects": record["n_subjects"],
            "status": record["status"],
            "reason": record["reason"],
        }
        if record["status"] != "ok":
            rows.append({**base, "n_repeats": 0})
            continue
        for metric, summary in result["summary"].items():
            rows.append(
                {
                    **base,
                    "metric": metric,
                    "mean": summary["mean"],
                    "sd": summary["sd"],
                    "n_repeats": summary["n_repeats"],
                    "n_seeds": len(result["seeds"]) if "seeds" in result else None,
                    "seed_min": summary.get("seed_min", summary["mean"] if "seeds" in result else None),
                    "seed_max": summary.get("seed_max", summary["mean"] if "seeds" in result else None),
                    "p_value": summary["p_value"],
                    "shuffled_mean": summary["shuffled_mean"],
                }
            )
    return rows


def read_probe_record(path):
    try:
        return json.loads(open(path).read())
    except (OSError, json.JSONDecodeError) as error:
        raise SemantoksError(f"{path}: cannot be read as a probe result ({error}); re-run the probe for it.") from None


def merge_records(records):
    """One record per phenotype: a later record of the same phenotype (the language sets, probed beside
    the main record on its splits) adds its feature sets, dropped-scan counts and paired rows to the first.
    The merged paired rows carry `p_holm`, Holm within each phenotype x metric x seed level."""
    merged = {}
    for record in records:
        first = merged.get(record["phenotype"])
        if first is None:
            merged[record["phenotype"]] = {**record, "feature_sets": dict(record["feature_sets"]),
                                           "dropped_scans": dict(record.get("dropped_scans", {})),
                                           "paired": list(record.get("paired", []))}
            continue
        first["feature_sets"].update(record["feature_sets"])
        first["dropped_scans"].update(record.get("dropped_scans", {}))
        first["paired"] += record.get("paired", [])
    return [{**record, "paired": with_holm(record["paired"])} for record in merged.values()]


def read_probe_records(json_paths):
    """The per-phenotype records of `json_paths`, merged per phenotype (`merge_records`)."""
    return merge_records([read_probe_record(path) for path in json_paths])


def summarise(json_paths, out_tsv=None, paired_tsv=None):
    """Collect per-phenotype JSONs into the summary table (returned; written to `out_tsv` when given)
    and the paired-comparison table (written to `paired_tsv` when given); records of one phenotype
    from several JSONs are merged (`merge_records`)."""
    records = read_probe_records(json_paths)
    table = pd.DataFrame([row for record in records for row in summary_rows(record)], columns=SUMMARY_COLUMNS)
    if out_tsv is not None:
        write_table_tsv(out_tsv, table)
    if paired_tsv is not None:
        write_table_tsv(paired_tsv, paired_table(records))
    return table


def paired_table(records):
    """The paired comparisons of every record as one table (PAIRED_COLUMNS)."""
    return pd.DataFrame([row for record in records for row in record.get("paired", [])], columns=PAIRED_COLUMNS)
