"""What pretraining bought: per phenotype, the model against its best baseline, from the probe tables.

The report leads with this table and the model card carries it. Per phenotype, on its primary metric
(balanced accuracy for class labels, R² for continuous ones; both higher is better): the pooled `model`
(the seed mean when drawn over seeds) against the strongest set it was paired with at the pooled level
(every baseline of the paired tests, probes/paired.py: random_init and the classical sets, not only
random_init), with that paired test's Holm-corrected p and both sets' seed intervals (min..max of the
per-seed means). Free of torch and of the probes' estimators, so the report and the card both read it.
"""

import pandas as pd

from semantoks.seeds import split_seed

PRIMARY_METRICS = ("balanced_accuracy", "r2")
ALPHA = 0.05
NOTHING_BEATEN = ("The pretrained model beats no baseline on any phenotype: no paired test of the model against "
                  "a baseline is significant in its favour after Holm's correction (p < {alpha:g}).")


def verdict_rows(summary, paired, alpha=ALPHA):
    """One dict per phenotype with a pooled model-vs-baseline test: the model and its best baseline."""
    summary = summary[summary["status"] == "ok"] if "status" in summary else summary
    paired = pd.DataFrame(paired)
    if summary.empty or paired.empty:
        return []
    pooled = paired[(paired["a"] == "model") & paired["b"].map(lambda name: split_seed(name)[1] is None)]
    rows = []
    for phenotype, own in summary.groupby("phenotype", sort=False):
        metric = next((m for m in PRIMARY_METRICS if m in set(own["metric"])), None)
        tests = pooled[(pooled["phenotype"] == phenotype) & (pooled["metric"] == metric)]
        if metric is None or tests.empty or tests["mean_b"].isna().all():
            continue
        best = tests.loc[tests["mean_b"].astype(float).idxmax()]
        beaten = tests[(tests["p_holm"].astype(float) < alpha) & (tests["mean_diff"].astype(float) > 0)]["b"]
        rows.append({
            "phenotype": phenotype,
            "metric": metric,
            "model": _interval(own, "model", metric),
            "baseline": best["b"],
            "baseline_score": _interval(own, best["b"], metric),
            "difference": float(best["mean_diff"]),
            "p_corrected": _float(best["p_corrected"]),
            "p_holm": _float(best["p_holm"]),
            "outcome": _outcome(best, alpha),
            "beaten": list(beaten),
            "n_baselines": int(len(tests)),
        })
    return rows


def verdict_sentence(rows, alpha=ALPHA):
    """One plain sentence on what the table says; the model beating nothing is said as such."""
    if not rows:
        return "No paired test of the model against a baseline was run, so there is no verdict."
    if not any(row["beaten"] for row in rows):
        return NOTHING_BEATEN.format(alpha=alpha)
    parts = [f"{row['phenotype']}: {len(row['beaten'])} of {row['n_baselines']} ({', '.join(row['beaten'])})"
             for row in rows if row["beaten"]]
    best = [row["phenotype"] for row in rows if row["outcome"] == "better"]
    ending = (f" It beats its best baseline on {', '.join(best)}." if best
              else " It beats its best baseline on no phenotype.")
    return (f"The pretrained model beats baselines after Holm's correction (p < {alpha:g}) on "
            f"{'; '.join(parts)}.{ending}")


def verdict_markdown(rows, alpha=ALPHA):
    """The table and its sentence as Markdown (the model card)."""
    lines = ["| phenotype | metric | model [seed range] | best baseline [seed range] | model − baseline | "
             "p (corrected t) | p (Holm) | verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['phenotype']} | {row['metric']} | {format_interval(row['model'])} | {row['baseline']} "
                     f"{format_interval(row['baseline_score'])} | {row['difference']:+.3f} | {_p(row['p_corrected'])} | "
                     f"{_p(row['p_holm'])} | {row['outcome']} |")
    return lines + ["", verdict_sentence(rows, alpha)]


def format_interval(score):
    """`0.412 [0.380, 0.441]` for a set drawn over seeds, `0.412` for one without seeds."""
    if score["mean"] is None:
        return "–"
    if score["low"] is None or score["n_seeds"] in (None, 1):
        return f"{score['mean']:.3f}"
    return f"{score['mean']:.3f} [{score['low']:.3f}, {score['high']:.3f}]"


def _interval(summary, feature_set, metric):
    match = summary[(summary["feature_set"] == feature_set) & (summary["metric"] == metric)]
    if match.empty:
        return {"mean": None, "low": None, "high": None, "n_seeds": None}
    row = match.iloc[0]
    n_seeds = _float(row.get("n_seeds"))
    return {"mean": _float(row["mean"]), "low": _float(row.get("seed_min")), "high": _float(row.get("seed_max")),
            "n_seeds": None if n_seeds is None else int(n_seeds)}


def _outcome(test, alpha):
    p = _float(test["p_holm"])
    if p is None or p >= alpha:
        return "no difference"
    return "better" if test["mean_diff"] > 0 else "worse"


def _float(value):
    return None if value is None or pd.isna(value) else float(value)


def _p(value):
    return "–" if value is None else f"{value:.3g}"
