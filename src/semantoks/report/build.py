"""The self-contained HTML report: figures as embedded PNG, the probe table, QC, and how the run was made."""

import base64
import datetime
import html
import importlib.metadata
import importlib.resources
import json
import platform
import string
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks import __version__
from semantoks.atomic import atomic_path, write_text
from semantoks.dataset import iter_scans
from semantoks.errors import SemantoksError
from semantoks.health_verdict import HEALTH_KEYS, INDISTINGUISHABLE, verdict
from semantoks.probes.metrics import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS
from semantoks.pretraining_verdict import format_interval, verdict_rows, verdict_sentence
from semantoks.probes.summary import paired_table, read_probe_records
from semantoks.report import figures
from semantoks.report.language import language_section
from semantoks.seeds import split_seed

VERSIONED_PACKAGES = ("numpy", "scipy", "pandas", "scikit-learn", "pyarrow", "matplotlib", "torch", "nilearn")


def build_report(
    summary_tsv, phenotype_jsons, manifest, log_csv, example_scan, labels, out_html, config_hash=None, title=None,
    figures_dir=None, language_json=None,
):
    """Write the report page to `out_html`.

    `manifest`: DataFrame or manifest file path(s) (.parquet/.tsv), or None; `log_csv`: the trainer's
    log.csv or None; `example_scan`: a Scan (or [frames, parcels] array) or None; `labels`: the
    atlas table (DataFrame, labels.tsv path, or list of {name, network} dicts); `figures_dir`: where each
    figure is also written as a PNG (Snakemake's --report registers them), or None.
    """
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
    summary = pd.read_csv(summary_tsv, sep="\t", na_values=["n/a"], keep_default_na=False)
    records = read_probe_records(phenotype_jsons)
    fields = {
        "title": html.escape(title or "semantoks: phenotype probes of a network-token brain foundation model"),
        "run_line": html.escape(_run_line(config_hash)),
        "verdict_section": _verdict_section(summary, records),
        "probe_intro": _probe_intro(records),
        "probe_figure": _probe_figure(records, figures_dir),
        "summary_table": _summary_table(summary),
        "skipped_table": _skipped_table(summary),
        "paired_section": _paired_section(records),
        "loss_section": _loss_section(log_csv, figures_dir),
        "health_section": _health_section(log_csv, figures_dir),
        "qc_section": _qc_section(_read_manifest(manifest), figures_dir),
        "connectome_section": _connectome_section(example_scan, labels, figures_dir),
        "language_section": language_section(language_json),
        "run_table": _run_table(records, config_hash),
    }
    template = importlib.resources.files("semantoks.report").joinpath("template.html").read_text()
    write_text(out_html, string.Template(template).substitute(fields))
    return Path(out_html)


def _figure(png, caption, alt, figures_dir=None):
    if figures_dir is not None:
        with atomic_path(Path(figures_dir) / f"{alt.replace(' ', '_')}.png") as target:
            Path(target).write_bytes(png)
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _run_line(config_hash):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"semantoks {__version__} · config {config_hash or 'unknown'} · generated {stamp}"


def _settings(records):
    return next((r["settings"] for r in records if r.get("settings")), {})


def _verdict_section(summary, records):
    """The report's lead: per phenotype the model against its best baseline (pretraining_verdict.py)."""
    rows = verdict_rows(summary, paired_table(records))
    sentence = f"<p><b>{html.escape(verdict_sentence(rows))}</b></p>"
    if not rows:
        return sentence
    head = ("<tr><th>phenotype</th><th>metric</th><th>model [seed range]</th><th>best baseline [seed range]</th>"
            "<th>model − baseline</th><th>p (corrected t)</th><th>p (Holm)</th><th>verdict</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(str(row['phenotype']))}</td><td>{figures.METRIC_LABELS[row['metric']]}</td>"
        f"<td class='num'>{format_interval(row['model'])}</td><td>{html.escape(row['baseline'])} "
        f"{format_interval(row['baseline_score'])}</td><td class='num'>{_signed(row['difference'])}</td>"
        f"<td class='num'>{_number(row['p_corrected'])}</td><td class='num'>{_number(row['p_holm'])}</td>"
        f"<td{' class=best' if row['outcome'] == 'better' else ''}>{html.escape(row['outcome'])}</td></tr>"
        for row in rows
    )
    seeds = max((row["model"]["n_seeds"] or 1 for row in rows), default=1)
    note = (
        "Per phenotype, its primary metric: the model (mean over its pretraining seeds) against the strongest set "
        "it was paired with on the same splits (random_init and every classical baseline). Seed range: lowest and "
        f"highest per-seed mean over {seeds} seed(s). p (corrected t): Nadeau-Bengio corrected resampled t-test "
        "of the per-split difference averaged over seeds; p (Holm): Holm's correction over every paired test of "
        "that phenotype and metric at the pooled level (probes/paired.tsv)."
    )
    return f"{sentence}<table>{head}{body}</table><p class='meta'>{html.escape(note)}</p>"


def _pooled(names):
    """The names of sets as reported: a set drawn over seeds once, under its own name (semantoks/seeds.py)."""
    return [name for name in names if split_seed(name)[1] is None]


def _probe_intro(records):
    settings = _settings(records)
    ok = [r for r in records if r["status"] == "ok"]
    feature_sets = sorted({name for r in ok for name in _pooled(r["feature_sets"])})
    return html.escape(
        f"{len(ok)} of {len(records)} phenotypes probed with {len(feature_sets)} feature sets "
        f"({', '.join(feature_sets) or 'none'}): a standardised linear probe (logistic regression for classes, "
        f"ridge for continuous values) on {settings.get('n_repeats', '?')} repeated random splits that hold out "
        f"{100 * settings.get('test_size', 0):.0f}% of subjects (all of a subject's scans on one side), "
        f"the penalty chosen by cross-validation over training subjects only, and predictions averaged over "
        f"each test subject's scans."
    )


def _probe_figure(records, figures_dir=None):
    if not any(r["status"] == "ok" for r in records):
        return "<p>No phenotype could be probed; see the reasons below.</p>"
    settings = _settings(records)
    caption = (
        "Each panel is one phenotype, one row per feature set. Bars: mean of its primary metric (balanced accuracy "
        f"for class labels, R² for continuous ones) over {settings.get('n_repeats', '?')} subject-grouped splits; "
        "whiskers ±1 SD; dots: single splits. A set drawn over pretraining seeds: its bar and dots are the "
        "per-split mean over seeds, white diamonds the per-seed means. Dashed line on a bar: the same feature "
        f"set's shuffled-label control (mean over {settings.get('n_permutations', '?')} subject-level label "
        "permutations on the same splits), its permutation p-value beside the set's name. Dotted grey line: chance."
    )
    return _figure(figures.probe_bars(records), html.escape(caption), "probe results per phenotype", figures_dir)


def _summary_table(summary):
    """One table for class-label phenotypes and one for continuous ones: a row per phenotype x feature set."""
    ok = summary[(summary["status"] == "ok") & summary["feature_set"].isin(_pooled(summary["feature_set"]))]
    tables = []
    for metrics in (CLASSIFICATION_METRICS, REGRESSION_METRICS):
        part = ok[ok["metric"].isin(metrics)]
        if part.empty:
            continue
        labels = "".join(f"<th>{figures.METRIC_LABELS[m]}</th>" for m in metrics)
        rows = [f"<tr><th>phenotype</th><th>feature set</th>{labels}<th>subjects</th><th>repeats</th></tr>"]
        for phenotype, group in part.groupby("phenotype", sort=False):
            best = {metric: _best_feature_set(group[group["metric"] == metric], metric) for metric in metrics}
            feature_sets = list(dict.fromkeys(group["feature_set"]))
            for k, feature_set in enumerate(feature_sets):
                by_metric = group[group["feature_set"] == feature_set].set_index("metric")
                first = f'<td rowspan="{len(feature_sets)}">{html.escape(str(phenotype))}</td>' if k == 0 else ""
                is_best = {m: best[m] == feature_set and len(feature_sets) > 1 for m in metrics}
                cells = "".join(_metric_cell(by_metric, m, is_best[m]) for m in metrics)
                counts = by_metric.iloc[0]
                rows.append(
                    f"<tr>{first}<td>{html.escape(str(feature_set))}</td>{cells}"
                    f'<td class="num">{int(counts["n_subjects"])}</td>'
                    f'<td class="num">{int(counts["n_repeats"])}</td></tr>'
                )
        tables.append(f"<table>{''.join(rows)}</table>")
    if tables:
        tables.append("<p class='meta'>Bold: the best feature set for that phenotype and metric. A set drawn over "
                      "pretraining seeds shows its seed mean and, in brackets, the range of its per-seed means; its "
                      "per-seed rows are in probes/summary.tsv.</p>")
    return "".join(tables)


def _best_feature_set(rows, metric):
    if rows.empty or rows["mean"].isna().all():
        return None
    means = rows.set_index("feature_set")["mean"].astype(float)
    return means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()


def _metric_cell(by_metric, metric, is_best):
    if metric not in by_metric.index:
        return "<td></td>"
    row = by_metric.loc[metric]
    seeds = row.get("n_seeds")
    spread = (f' <span class="sub">[{_number(row["seed_min"])}, {_number(row["seed_max"])}] over {int(seeds)} seeds</span>'
              if pd.notna(seeds) and seeds > 1 else "")
    return (
        f'<td class="num{" best" if is_best else ""}">{_number(row["mean"])} ± {_number(row["sd"])}{spread}'
        f'<br><span class="sub">shuffled {_number(row["shuffled_mean"])} · p {_number(row["p_value"])}</span></td>'
    )


def _paired_section(records, alpha=0.05):
    """The paired comparisons on each phenotype's primary metric: a table, and in words which differences hold."""
    rows, sentences = [], []
    for record in records:
        if record["status"] != "ok" or not record.get("paired"):
            continue
        metric = figures.PRIMARY_METRIC[record["type"]]
        label = figures.METRIC_LABELS[metric]
        for row in (r for r in record["paired"] if r["metric"] == metric and r.get("seed") is None):
            significant = row.get("p_holm") is not None and row["p_holm"] < alpha
            rows.append(
                f"<tr><td>{html.escape(record['phenotype'])}</td><td>{html.escape(row['a'])} vs "
                f"{html.escape(row['b'])}</td><td class='num'>{_number(row['mean_a'])}</td>"
                f"<td class='num'>{_number(row['mean_b'])}</td>"
                f"<td class='num{' best' if significant else ''}'>{_signed(row['mean_diff'])} ± {_number(row['sd_diff'])}</td>"
                f"<td class='num'>{_number(row['t'])}</td><td class='num'>{_number(row['p_corrected'])}</td>"
                f"<td class='num'>{_number(row.get('p_holm'))}</td><td class='num'>{row['n_splits']}</td></tr>"
            )
            if significant:
                better, worse = (row["a"], row["b"]) if row["mean_diff"] > 0 else (row["b"], row["a"])
                high, low = sorted((row["mean_a"], row["mean_b"]), reverse=True)
                sentences.append(
                    f"{better} beats {worse} on {record['phenotype']} ({label} {_number(high)} vs {_number(low)}, "
                    f"Holm-corrected p = {_number(row['p_holm'])})."
                )
    if not rows:
        return ""
    verdict = " ".join(sentences) or (f"No difference between feature sets is significant at Holm-corrected "
                                       f"p < {alpha:g}.")
    head = (
        "<tr><th>phenotype</th><th>a vs b</th><th>mean a</th><th>mean b</th><th>a − b (± SD over splits)</th>"
        "<th>t</th><th>p</th><th>p (Holm)</th><th>splits</th></tr>"
    )
    note = (
        "Each feature set against each baseline on the same splits, on the phenotype's primary metric "
        "(every metric: probes/paired.tsv). t: Nadeau-Bengio corrected resampled t-test, variance "
        "(1/J + n_test/n_train)·s² over J splits, Student t with J − 1 df, two-sided; sets drawn over pretraining "
        "seeds enter with the per-split score averaged over seeds (per-seed tests: probes/paired.tsv). "
        "p (Holm): Holm's step-down correction over every test of that phenotype and metric; "
        f"bold: Holm p < {alpha:g}."
    )
    return (
        f"<h3>Paired comparisons</h3><p>{html.escape(verdict)}</p><table>{head}{''.join(rows)}</table>"
        f"<p class='meta'>{html.escape(note)}</p>"
    )


def _signed(value):
    text = _number(value)
    return text if text.startswith("-") or text == "–" else f"+{text}"


def _skipped_table(summary):
    skipped = summary[summary["status"] != "ok"].drop_duplicates("phenotype")
    if skipped.empty:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(r['phenotype']))}</td><td>{html.escape(str(r['reason']))}</td></tr>"
        for _, r in skipped.iterrows()
    )
    return f"<h3>Not probed</h3><table><tr><th>phenotype</th><th>reason</th></tr>{rows}</table>"


def _number(value):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    # round first so a tiny negative shows as 0.000, not -0.000
    return f"{round(float(value), 3) + 0.0:.3f}"


def _loss_section(log_csv, figures_dir=None):
    if log_csv is None or not Path(log_csv).is_file():
        return "<p>No pretraining log: the model was not trained in this run (connectivity baselines only).</p>"
    log = pd.read_csv(log_csv)
    if "step" not in log.columns or log.empty:
        raise SemantoksError(f"{log_csv}: has no `step` column or no rows; re-run pretraining to rewrite it.")
    caption = (
        f"Left: the self-distillation loss terms logged by the trainer over {_steps_trained(log_csv, log)} "
        "(log scale when all are positive). Right: the per-step schedules, each divided by its maximum so they "
        "share one axis. A total loss that falls and flattens, with no term collapsing to zero, is the healthy shape."
    )
    return _figure(figures.loss_curves(log), html.escape(caption), "pretraining loss curves", figures_dir)


def _steps_trained(log_csv, log):
    """'N steps', or 'N of M planned steps (training stopped early: why)' from training.json beside the log."""
    ending_path = Path(log_csv).with_name("training.json")
    ending = json.loads(ending_path.read_text()) if ending_path.is_file() else {}
    if ending.get("stopped_early"):
        return (f"{ending['step']} of {ending['steps']} planned steps (training stopped early: "
                f"{ending['stopped_early']})")
    return f"{int(log['step'].max())} steps"


def _health_section(log_csv, figures_dir=None):
    """Curves of the training-health columns of log.csv and one verdict line per model (docs/model.md)."""
    random_init = (f"<li><b>random_init</b>: {html.escape(INDISTINGUISHABLE)}, by definition: it is the "
                   "untrained encoder the model started from (same architecture, fixed seed).</li>")
    if log_csv is None or not Path(log_csv).is_file():
        return "<p>No pretraining log, so no training-health measurements.</p>"
    log = pd.read_csv(log_csv)
    present = [key for key in HEALTH_KEYS if key in log.columns]
    rows = log.dropna(subset=present, how="all") if present else log.iloc[:0]
    if rows.empty:
        return (f"<p>{html.escape(str(log_csv))} has no training-health columns ({', '.join(HEALTH_KEYS)}): the "
                f"model was trained before they were logged, so it gets no verdict.</p><ul>{random_init}</ul>")
    last = rows.iloc[-1]
    missing = [key for key in HEALTH_KEYS if key not in present or pd.isna(last[key])]
    if missing:
        model = f"no verdict: the last health row (step {int(last['step'])}) lacks {', '.join(missing)}"
    else:
        label, reason = verdict(last)
        model = f"<b>{html.escape(label)}</b> at step {int(last['step'])}: {html.escape(reason)}"
    caption = (
        "Measured by the trainer on a fixed held-out batch, teacher against its step-0 copy. Left: linear CKA and "
        "mean per-dimension Pearson r of the scan embeddings (CLS and mean token) with the step-0 ones; above the "
        "dashed line the model is indistinguishable from its random init. Middle: effective rank (RankMe) of the "
        "embeddings; below the dashed line they have collapsed onto about one direction. Right: mean pairwise "
        "cosine of CLS and of token embeddings; above the dashed line every input maps to the same vector."
    )
    figure = _figure(figures.health_curves(rows[["step", *present]]), html.escape(caption), "training health curves",
                     figures_dir)
    return f"{figure}<ul><li><b>model</b>: {model}.</li>{random_init}</ul>"


def _read_manifest(manifest):
    if manifest is None or isinstance(manifest, pd.DataFrame):
        return manifest
    paths = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
    frames = []
    for path in map(Path, paths):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, sep="\t", na_values=["n/a"])
        hive = [part.split("=", 1)[1] for part in path.parts if part.startswith("cohort=")]
        if "cohort" not in frame and hive:
            # a partition file names its cohort only in its folder
            frame.insert(0, "cohort", hive[-1])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def _qc_section(manifest, figures_dir=None):
    if manifest is None or manifest.empty:
        return "<p>No manifest given.</p>"
    included = manifest["included"].astype(bool)
    caption = (
        f"{len(manifest)} scans, {int(included.sum())} included and {int((~included).sum())} excluded. "
        "Left: mean framewise displacement per scan; middle: percentage of frames censored; right: why scans "
        "were excluded (one bar per reason)."
    )
    cohorts = manifest["cohort"] if "cohort" in manifest else pd.Series("all", index=manifest.index)
    counts = included.groupby(cohorts.astype(str)).agg(scans="size", included="sum").reset_index()
    rows = "".join(
        f"<tr><td>{html.escape(str(r.iloc[0]))}</td><td class='num'>{r['scans']}</td>"
        f"<td class='num'>{int(r['included'])}</td></tr>"
        for _, r in counts.iterrows()
    )
    table = f"<table><tr><th>cohort</th><th>scans</th><th>included</th></tr>{rows}</table>"
    return _figure(figures.qc_histograms(manifest), html.escape(caption), "QC histograms", figures_dir) + table


def _networks(labels):
    if isinstance(labels, (str, Path)):
        labels = pd.read_csv(labels, sep="\t")
    if isinstance(labels, pd.DataFrame):
        return labels["network"].astype(str).tolist()
    return [str(label["network"]) for label in labels]


def _connectome_section(example_scan, labels, figures_dir=None):
    if example_scan is None:
        return "<p>No example scan given.</p>"
    data = getattr(example_scan, "data", example_scan)
    networks = _networks(labels)
    if np.shape(data)[1] != len(networks):
        raise SemantoksError(
            f"atlas labels: list {len(networks)} parcels but the example scan has {np.shape(data)[1]}; "
            "pass the labels.tsv of the dataset's atlas."
        )
    name = getattr(example_scan, "scan_id", "example scan")
    cohort = getattr(example_scan, "cohort", None)
    title = f"{name} ({cohort})" if cohort else str(name)
    caption = (
        f"Functional connectivity of {title}: Fisher-z Pearson correlations over its {np.shape(data)[0]} kept "
        f"frames, {len(networks)} parcels grouped by network (atlas order within a network), network blocks "
        "outlined. Grey: parcels outside the scan's brain mask (and the diagonal). Colour limits: ±98th "
        "percentile of |z|. Warm within-network blocks are the expected structure."
    )
    return _figure(figures.connectivity_matrix(data, networks, title), html.escape(caption), "connectivity matrix", figures_dir)


def _run_table(records, config_hash):
    settings = _settings(records)
    rows = [("config hash", config_hash or "unknown"), ("semantoks", __version__)]
    rows.append(("python", platform.python_version()))
    for package in VERSIONED_PACKAGES:
        try:
            rows.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            continue
    for key in ("n_repeats", "test_size", "n_permutations", "inner_folds", "min_subjects", "seed"):
        if key in settings:
            rows.append((f"probe {key}", settings[key]))
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def first_scan(dataset_root, atlas_id, cohorts=None):
    """The dataset's first included scan, for the example connectome."""
    return next(iter(iter_scans(dataset_root, atlas_id, cohorts=cohorts, columns=("timeseries",))), None)
