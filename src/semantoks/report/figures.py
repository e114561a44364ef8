"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG bytes."""

import io
import re
import textwrap

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from semantoks.health_verdict import COLLAPSED_COSINE, COLLAPSED_RANKME, INDISTINGUISHABLE_CKA  # noqa: E402
from semantoks.features.connectivity import fisher_z_connectivity  # noqa: E402
from semantoks.seeds import split_seed  # noqa: E402

PRIMARY_METRIC = {"binary": "balanced_accuracy", "categorical": "balanced_accuracy", "continuous": "r2"}
METRIC_LABELS = {
    "balanced_accuracy": "balanced accuracy",
    "auroc": "AUROC",
    "f1_macro": "macro F1",
    "r2": "R²",
    "mae": "MAE",
    "pearson_r": "Pearson r",
}
LOSS_NAMES = ("total", "compression", "expansion", "mtm", "ttr")
SCHEDULE_NAMES = ("lr", "momentum", "weight_decay", "ttr_weight", "mtm_weight")
COLORS = plt.get_cmap("tab10").colors
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def to_png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def chance_level(record, metric):
    """What a predictor without information scores: 1/K for balanced accuracy, 0.5 AUROC, 0 for R² and r."""
    if metric == "balanced_accuracy":
        return 1.0 / max(len(record.get("classes") or [0, 0]), 2)
    return {"auroc": 0.5, "r2": 0.0, "pearson_r": 0.0}.get(metric)


def probe_bars(records):
    """One panel per probed phenotype: its primary metric per feature set, with the shuffled-label control."""
    return to_png(probe_bars_figure(records))


def probe_bars_figure(records):
    """The probe panels as a figure: horizontal bars, one row per feature set, so any number of sets keeps
    its labels apart; a set drawn over seeds shows its seed mean, each seed's mean as a white diamond."""
    records = [r for r in records if r["status"] == "ok"]
    n_sets = max((len(_reported(r)) for r in records), default=1)
    n_columns = min(2, max(len(records), 1))
    n_rows = int(np.ceil(len(records) / n_columns)) or 1
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(6.2 * n_columns, (0.9 + 0.34 * n_sets) * n_rows),
                                squeeze=False)
    for ax in axes.flat[len(records) :]:
        ax.axis("off")
    for ax, record in zip(axes.flat, records):
        metric = PRIMARY_METRIC[record["type"]]
        names = _reported(record)
        for i, name in enumerate(names):
            result = record["feature_sets"][name]
            summary = result["summary"][metric]
            ax.barh(i, summary["mean"], xerr=summary["sd"], color=COLORS[i % 10], alpha=0.85, capsize=3, height=0.7)
            points = np.array([v for v in result["metrics"][metric] if v is not None])
            jitter = np.linspace(-0.16, 0.16, len(points)) if len(points) > 1 else np.zeros(len(points))
            ax.scatter(points, i + jitter, s=7, color="black", alpha=0.45, zorder=3)
            seed_means = [v for v in summary.get("seed_means") or [] if v is not None]
            ax.scatter(seed_means, [i] * len(seed_means), marker="D", s=22, facecolor="white", edgecolor="black",
                       zorder=5)
            if summary["shuffled_mean"] is not None:
                ax.vlines(summary["shuffled_mean"], i - 0.35, i + 0.35, colors="black", linestyles="--", zorder=4)
        chance = chance_level(record, metric)
        if chance is not None:
            ax.axvline(chance, color="grey", lw=0.8, ls=":")
        ticks = [_set_label(name, record["feature_sets"][name], metric) for name in names]
        ax.set_yticks(range(len(names)), ticks, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel(METRIC_LABELS[metric])
        ax.set_title(f"{record['phenotype']} ({record['type']}, n={record['n_subjects']})", fontsize=10)
        ax.margins(x=0.08)
        ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def _reported(record):
    """The sets drawn in a panel: one per set, a set drawn over seeds once under its own name."""
    return [name for name in record["feature_sets"] if split_seed(name)[1] is None]


def _set_label(name, result, metric):
    seeds = f", {len(result['seeds'])} seeds" if len(result.get("seeds") or []) > 1 else ""
    p_value = result["summary"][metric]["p_value"]
    return f"{name}{seeds}" + ("" if p_value is None else f"  (p = {p_value:.3f})")


def loss_curves(log):
    """Pretraining losses by step (log scale where all positive) and the schedules beside them."""
    losses = [c for c in log.columns if c.startswith("loss") or c in LOSS_NAMES]
    schedules = [c for c in log.columns if c in SCHEDULE_NAMES]
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    loss_ax, schedule_ax = axes[0]
    for i, column in enumerate(losses):
        values = log[column].astype(float)
        loss_ax.plot(log["step"], values, label=column.removeprefix("loss_"), color=COLORS[i % 10], lw=1.3)
    if losses and (log[losses].astype(float).dropna() > 0).all().all():
        loss_ax.set_yscale("log")
        loss_ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        loss_ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        loss_ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("pretraining losses", fontsize=10)
    if losses:
        loss_ax.legend(fontsize=8, frameon=False)
    for i, column in enumerate(schedules):
        values = log[column].astype(float)
        peak = np.nanmax(np.abs(values)) or 1.0
        schedule_ax.plot(log["step"], values / peak, label=f"{column} (max {peak:.3g})", color=COLORS[i % 10], lw=1.3)
    schedule_ax.set_xlabel("step")
    schedule_ax.set_ylabel("value / its maximum")
    schedule_ax.set_title("schedules", fontsize=10)
    if schedules:
        schedule_ax.legend(fontsize=8, frameon=False)
    for ax in (loss_ax, schedule_ax):
        ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return to_png(figure)


HEALTH_PANELS = (
    ("similarity to step 0", ("cka_init", "drift_r"), INDISTINGUISHABLE_CKA),
    ("effective rank (RankMe)", ("rankme",), COLLAPSED_RANKME),
    ("mean pairwise cosine", ("cls_cosine", "token_cosine"), COLLAPSED_COSINE),
)


def health_curves(log):
    """Training-health metrics by step, one panel per question, each with its verdict threshold dashed."""
    figure, axes = plt.subplots(1, len(HEALTH_PANELS), figsize=(13, 3.6), squeeze=False)
    for ax, (title, columns, threshold) in zip(axes[0], HEALTH_PANELS):
        for i, column in enumerate(c for c in columns if c in log.columns):
            values = log[["step", column]].astype(float).dropna()
            ax.plot(values["step"], values[column], marker="o", ms=3, lw=1.3, color=COLORS[i % 10], label=column)
        ax.axhline(threshold, color="grey", lw=0.9, ls="--")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return to_png(figure)


def qc_histograms(manifest):
    """Head motion and censoring per scan (included vs excluded), and why scans were excluded."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    included = manifest["included"].astype(bool).to_numpy()
    for ax, column, label in zip(axes[:2], ("mean_fd", "pct_censored"), ("mean FD (mm)", "frames censored (%)")):
        values = manifest[column].astype(float).to_numpy()
        finite = np.isfinite(values)
        bins = np.histogram_bin_edges(values[finite], bins=20) if finite.any() else 10
        for keep, color, name in ((included, COLORS[0], "included"), (~included, COLORS[3], "excluded")):
            ax.hist(values[finite & keep], bins=bins, color=color, alpha=0.8, label=f"{name} ({keep.sum()})")
        ax.set_xlabel(label)
        ax.set_ylabel("scans")
    axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    counts = exclusion_reasons(manifest)
    ax = axes[2]
    if len(counts):
        ax.barh(range(len(counts)), counts.to_numpy(), color=COLORS[3], height=0.6)
        ax.set_yticks(range(len(counts)), [textwrap.fill(text, 38) for text in counts.index], fontsize=7.5)
        ax.invert_yaxis()
        ax.set_xlabel("excluded scans")
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, f"all {len(manifest)} scans included", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("exclusion reasons", fontsize=10)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return to_png(figure)


def exclusion_reasons(manifest):
    """Excluded scans per kind of reason: numbers in the sentences become N so one rule is one bar."""
    excluded = manifest.loc[~manifest["included"].astype(bool), "reason"]
    kinds = excluded.fillna("no reason recorded").astype(str).map(lambda text: NUMBER.sub("N", text))
    return kinds.value_counts()


def connectivity_matrix(data, networks, title):
    """A scan's Fisher-z connectivity with parcels grouped by network and the network blocks outlined."""
    z, usable = fisher_z_connectivity(data)
    order_of = {name: i for i, name in enumerate(dict.fromkeys(networks))}
    order = np.argsort([order_of[name] for name in networks], kind="stable")
    shown = np.where(np.outer(usable, usable), z, np.nan)[np.ix_(order, order)]
    np.fill_diagonal(shown, np.nan)
    limit = np.nanpercentile(np.abs(shown), 98) if np.isfinite(shown).any() else 1.0
    figure, ax = plt.subplots(figsize=(6.6, 5.6))
    colormap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    image = ax.imshow(shown, cmap=colormap, vmin=-limit, vmax=limit, interpolation="nearest")
    sorted_networks = np.asarray(networks)[order]
    edges = [0] + [i for i in range(1, len(order)) if sorted_networks[i] != sorted_networks[i - 1]] + [len(order)]
    for edge in edges[1:-1]:
        ax.axhline(edge - 0.5, color="black", lw=0.8)
        ax.axvline(edge - 0.5, color="black", lw=0.8)
    centres = [(a + b - 1) / 2 for a, b in zip(edges[:-1], edges[1:])]
    block_names = [sorted_networks[a] for a in edges[:-1]]
    ax.set_xticks(centres, block_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(centres, block_names, fontsize=8)
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, shrink=0.8, label="Fisher z")
    figure.tight_layout()
    return to_png(figure)
