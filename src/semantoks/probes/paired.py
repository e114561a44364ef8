"""Paired comparisons of feature sets on the same splits: the Nadeau-Bengio corrected resampled t-test.

Two feature sets scored on the same J random train/test splits give per-split differences
d_j = a_j - b_j. The splits share training subjects, so the d_j are positively correlated and the
plain paired t-test (variance s^2 / J) is far too confident. Nadeau & Bengio (2003, Machine
Learning 52:239-281) correct the variance of the mean difference to (1/J + n_test/n_train) s^2:

    t = mean(d) / sqrt((1/J + n_test/n_train) * s^2),  s^2 = sample variance of d (ddof 1),

compared with Student's t on J - 1 degrees of freedom (two-sided). n_test and n_train count
subjects, the unit the splits resample.

Sets probed at several pretraining seeds (`model@1`; semantoks/seeds.py) are compared at each seed with
the baselines at the same seed (`random_init@1`) and, pooled, under their own name: the per-split
difference averaged over seeds, then the same corrected test. Multiplicity: Holm's step-down
correction within each family of one phenotype x metric x seed level (the pooled tests are one
level, each seed another), in the `p_holm` column (`with_holm`).
"""

import numpy as np
from scipy import stats

from semantoks.errors import SemantoksError
from semantoks.features.registry import baseline_names
from semantoks.seeds import seeded_name, split_seed

BASELINES = baseline_names()
# sets probed beside an earlier record (the language sets) are also compared with the unaligned model
REFERENCE_BASELINES = ("model",) + BASELINES
PAIRED_COLUMNS = [
    "phenotype",
    "metric",
    "a",
    "b",
    "seed",
    "mean_a",
    "mean_b",
    "mean_diff",
    "sd_diff",
    "t",
    "df",
    "p_corrected",
    "p_holm",
    "n_splits",
    "n_train",
    "n_test",
]


def corrected_paired_t(a, b, n_train, n_test):
    """Nadeau-Bengio corrected resampled t-test of a - b over splits (NaN pairs dropped).

    Returns {mean_a, mean_b, mean_diff, sd_diff, t, df, p_corrected, n_splits} over the kept pairs; t and p are None with fewer than 2
    splits or when every difference is the same non-zero value (no variance to test against).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(len(d))
    result = {"mean_a": None, "mean_b": None, "mean_diff": None, "sd_diff": None, "t": None, "df": None,
              "p_corrected": None, "n_splits": n}
    if n == 0:
        return result
    result.update(mean_a=float(a[keep].mean()), mean_b=float(b[keep].mean()), mean_diff=float(d.mean()))
    if n < 2:
        return result
    sd = float(d.std(ddof=1))
    result.update(sd_diff=sd, df=n - 1)
    if sd == 0.0:
        # identical scores on every split: no evidence of a difference
        if d.mean() == 0.0:
            result.update(t=0.0, p_corrected=1.0)
        return result
    t = float(d.mean() / np.sqrt((1.0 / n + n_test / n_train) * sd**2))
    result.update(t=t, p_corrected=float(2.0 * stats.t.sf(abs(t), df=n - 1)))
    return result


def comparison_pairs(feature_sets, baselines=BASELINES):
    """(a, b) pairs: every feature set against every baseline present, each unordered pair once; a set
    drawn at a seed meets a baseline drawn per seed at that same seed (`model@1` vs `random_init@1`)."""
    pairs, seen = [], set()
    for a in feature_sets:
        seed = split_seed(a)[1]
        for b in baselines:
            if seed is not None and seeded_name(b, seed) in feature_sets:
                b = seeded_name(b, seed)
            if b == a or b not in feature_sets or frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            pairs.append((a, b))
    return pairs


def paired_comparisons(record, baselines=BASELINES):
    """Rows of PAIRED_COLUMNS for one probed phenotype record (per-split metrics and splits)."""
    if record.get("status") != "ok" or not record.get("splits"):
        return []
    n_train = float(np.mean([len(split["train"]) for split in record["splits"]]))
    n_test = float(np.mean([len(split["test"]) for split in record["splits"]]))
    results = record["feature_sets"]
    rows = []
    for a, b in comparison_pairs(list(results), baselines):
        for metric, values in results[a]["metrics"].items():
            other = results[b]["metrics"].get(metric)
            if other is None:
                continue
            test = corrected_paired_t(_as_float(values), _as_float(other), n_train, n_test)
            rows.append(
                {
                    "phenotype": record["phenotype"],
                    "metric": metric,
                    "a": a,
                    "b": b,
                    "seed": split_seed(a)[1] if split_seed(a)[1] is not None else split_seed(b)[1],
                    **test,
                    "n_train": n_train,
                    "n_test": n_test,
                }
            )
    return rows


def paired_with_reference(record, reference, baselines=REFERENCE_BASELINES):
    """Rows for `record`'s feature sets against the baselines probed in `reference`, the same phenotype's
    record on the same splits (the language sets are probed in their own job; see docs/probes.md)."""
    if record.get("status") != "ok" or reference.get("status") != "ok":
        return []
    if record["splits"] != reference["splits"]:
        raise SemantoksError(
            f"probe of {record['phenotype']}: the feature sets {', '.join(record['feature_sets'])} kept other subjects "
            "than its main probe, so their splits differ; rerun both with `snakemake --cores 2 --forcerun probe_phenotype`."
        )
    own = record["feature_sets"]
    merged = {**own, **{name: result for name, result in reference["feature_sets"].items() if name not in own}}
    rows = paired_comparisons({**record, "feature_sets": merged}, baselines)
    return [row for row in rows if row["a"] in own]


def holm(p_values):
    """Holm's step-down adjusted p-values (Holm 1979): the k-th smallest of m is max over j <= k of
    min(1, (m - j + 1) p_(j)); None stays None and is not counted in m."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None and np.isfinite(p))
    adjusted, running = [None] * len(p_values), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def with_holm(rows):
    """Copies of paired rows with `p_holm`: Holm within each phenotype x metric x seed level."""
    families = {}
    for i, row in enumerate(rows):
        families.setdefault((row["phenotype"], row["metric"], row.get("seed")), []).append(i)
    adjusted = [dict(row) for row in rows]
    for members in families.values():
        for i, p in zip(members, holm([rows[i]["p_corrected"] for i in members])):
            adjusted[i]["p_holm"] = p
    return adjusted


def _as_float(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
