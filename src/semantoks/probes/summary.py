"""The probes' summary table: one row per feature set, phenotype and metric, from the per-phenotype JSONs."""

import json

import pandas as pd

from semantoks.atomic import write_table_tsv
from semantoks.errors import SemantoksError

SUMMARY_COLUMNS = [
    "feature_set",
    "phenotype",
    "metric",
    "mean",
    "sd",
    "n_subjects",
    "n_repeats",
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


def summarise(json_paths, out_tsv=None):
    """Collect per-phenotype JSONs into the summary table; writes it to `out_tsv` when given."""
    rows = [row for path in json_paths for row in summary_rows(read_probe_record(path))]
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if out_tsv is not None:
        write_table_tsv(out_tsv, table)
    return table
