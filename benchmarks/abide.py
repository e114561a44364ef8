"""The ABIDE I study of docs/evidence.md as one resumable command: pretrain on whole sites, probe held-out sites.

    nice -n 19 python benchmarks/abide.py --study studies/abide1                   # E1 (5 seeds), E4, E5
    python benchmarks/abide.py --study studies/abide1 --experiments E1 --seeds 3  # only E1, 3 seeds
    python benchmarks/abide.py --study studies/abide1 --tables                    # rewrite tables.md only

Every job is config/abide1.yaml (DATA filled in with --data, default $SEMANTOKS_SHARED_DATA/abide1_cc200)
plus an overlay, run by `snakemake` in one shared work folder (<study>/work), so the dataset, the FC
features and a model whose settings did not change are built once; raising pretrain.steps continues the
trained model. A finished job's tables are copied to <study>/<job>/ with job.json, and a job with job.json is
skipped, so an interrupted study continues where it stopped (Snakemake resumes an interrupted pretraining).
After each job <study>/tables.md is rewritten from every finished job.

Jobs: E1 `e1_seed<k>` (pretrain.seed k; random_init follows the seed); E4 `e4_confounds` (site and mean FD
decoded from held-out subjects with random subject splits) and `e4_regressed` (E1's probes with mean FD
and TR regressed out inside each split, probe.confounds); E5 `e5_frac<f>_steps<s>` (steps x the share of
pretraining subjects, whole sites dropped in a seeded order, nested). Not built yet: E2 (surrogates) and E3
(split-half reliability), see docs/evidence.md.
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BASE_CONFIG = REPO / "config" / "abide1.yaml"
DEFAULT_DATA = Path(os.environ.get("SEMANTOKS_SHARED_DATA", "/work/shared/data")) / "abide1_cc200"
EXPERIMENTS = ("E1", "E4", "E5")
E5_STEPS = (300, 1000, 3000)
E5_FRACTIONS = (0.25, 0.5, 1.0)
# the metrics tables.md reports per phenotype type; R² on held-out sites also pays for each site's mean offset
HEADLINE = {"continuous": ("r2", "pearson_r"), "binary": ("balanced_accuracy",), "categorical": ("balanced_accuracy",)}


def merge(base, overlay):
    """`overlay` merged into a copy of `base`, dict by dict; a `phenotypes` dict replaces the base's."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "phenotypes"
        merged[key] = merge(merged[key], value) if nested else value
    return merged


def base_config(data, overrides=None):
    """config/abide1.yaml with DATA replaced by the data folder, then `overrides` (a dict) merged in."""
    config = yaml.safe_load(BASE_CONFIG.read_text().replace("DATA", str(data)))
    return merge(config, overrides or {})


def pretraining_sites(config, data):
    """{site: n subjects} of the pretraining sites (those not in pretrain.hold_out) among the imported files."""
    participants = pd.read_csv(Path(data) / "participants.tsv", sep="\t", dtype={"SUB_ID": str})
    held = set(map(str, config["pretrain"]["hold_out"]["values"]))
    column = config["pretrain"]["hold_out"]["column"]
    imported = participants[participants["SUB_ID"].str.zfill(7).isin(imported_subjects(config))]
    counts = imported[column].astype(str).value_counts()
    return {site: int(n) for site, n in sorted(counts.items()) if site not in held}


def imported_subjects(config):
    """Subject labels (7 digits) of the files the config's ROI pattern matches."""
    from semantoks.cohorts.roi_scans import find_roi_scans

    roi = config["cohorts"]["abide"]["roi"]
    return {scan.entities["sub"] for scan in find_roi_scans(roi["files"], roi["pattern"])}


def fraction_hold_out(config, data, fraction, seed=0):
    """pretrain.hold_out values that leave about `fraction` of the pretraining subjects, whole sites dropped in a
    seeded order (so smaller fractions are subsets of larger ones)."""
    sites = pretraining_sites(config, data)
    order = [list(sites)[i] for i in np.random.default_rng(seed).permutation(len(sites))]
    total, kept, dropped = sum(sites.values()), 0, []
    for site in order:
        if kept >= fraction * total - 1e-9:
            dropped.append(site)
        else:
            kept += sites[site]
    return list(config["pretrain"]["hold_out"]["values"]) + dropped, kept / total


def study_jobs(config, data, experiments, seeds):
    """[(job name, overlay)] in run order: the jobs that share seed 0's model run one after the other, since
    the work folder holds one model at a time."""
    jobs = []
    if "E1" in experiments and seeds:
        jobs.append(("e1_seed0", {"pretrain": {"seed": 0}}))
    if "E4" in experiments:
        probe = {"split": "random", "phenotypes": {"SITE_ID": {}, "func_mean_fd": {}}}
        jobs.append(("e4_confounds", {"pretrain": {"seed": 0}, "probe": probe}))
        # E1's probes again with mean FD and TR regressed out of every feature set inside each split
        jobs.append(("e4_regressed", {"pretrain": {"seed": 0}, "probe": {"confounds": ["func_mean_fd", "TR_s"]}}))
    if "E1" in experiments:
        jobs += [(f"e1_seed{seed}", {"pretrain": {"seed": seed}}) for seed in range(1, seeds)]
    if "E5" in experiments:
        column = config["pretrain"]["hold_out"]["column"]
        for fraction in E5_FRACTIONS:
            values, _ = fraction_hold_out(config, data, fraction)
            for steps in E5_STEPS:
                overlay = {"pretrain": {"seed": 0, "steps": steps, "hold_out": {"column": column, "values": values}}}
                jobs.append((f"e5_frac{int(fraction * 100)}_steps{steps}", overlay))
    return jobs


def run_job(study, name, config):
    """Run one job's DAG in <study>/work; archive its tables in <study>/<name>/ with job.json. Skips a done job."""
    out = study / name
    if (out / "job.json").is_file():
        print(f"{name}: done before, skipped", flush=True)
        return
    work = study / "work"
    work.mkdir(parents=True, exist_ok=True)
    config_path = study / "configs" / f"{name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    results = work / config["results"]
    target = f"{config['results']}/probes/summary.tsv"
    # targets first: --configfile takes every word after it
    command = [sys.executable, "-m", "snakemake", target, "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(work), "--cores", "2", "--rerun-incomplete", "--configfile", str(config_path.resolve())]
    print(f"{name}: {' '.join(command)}", flush=True)
    start = time.time()
    with open(study / "snakemake.log", "a") as log:
        log.write(f"\n=== {name} ===\n")
        log.flush()
        finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if finished.returncode != 0:
        sys.exit(f"{name}: snakemake failed (exit {finished.returncode}); see {study / 'snakemake.log'}; "
                 "rerun the same command to continue.")
    # one model per seed: models/<preset>_<atlas>/seed-<seed>/ (docs/probes.md, Seeds)
    model_dir = results / "models" / f"{config['pretrain']['preset']}_CC200" / f"seed-{config['pretrain'].get('seed', 0)}"
    tmp = study / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for path in (results / "probes" / "summary.tsv", results / "probes" / "paired.tsv", model_dir / "log.csv"):
        shutil.copy2(path, tmp / path.name)
    for path in (results / "probes").glob("*.json"):
        shutil.copy2(path, tmp / path.name)
    record = {"job": name, "config": str(config_path), "wall_s_this_sitting": round(time.time() - start, 1),
              **held_out_check(model_dir / "checkpoint.pt", results / "probes", config)}
    (tmp / "job.json").write_text(json.dumps(record, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"{name}: done in {record['wall_s_this_sitting']} s", flush=True)


def held_out_check(checkpoint, probe_dir, config):
    """The model's step and budget, and proof that no probed subject was pretrained on (from the checkpoint)."""
    from semantoks.model.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    never_trained = {f"{cohort}/{subject}" for cohort, subject in state["hold_out_subjects"]}
    probed = set()
    for path in probe_dir.glob("*.json"):
        for split in json.loads(path.read_text()).get("splits", []):
            probed |= set(split["train"]) | set(split["test"])
    seen = sorted(probed - never_trained) if config["probe"]["only_held_out"] else []
    if seen:
        raise SystemExit(f"{checkpoint}: {len(seen)} probed subjects (e.g. {seen[0]}) were pretrained on.")
    return {"steps": int(state["step"]), "stopped_early": bool(state.get("stopped_early")),
            "n_never_pretrained": len(never_trained), "n_probed": len(probed), "probed_seen_in_pretraining": 0}


def headline(summary):
    """summary.tsv rows of each phenotype's headline metrics."""
    kinds = {name: "continuous" if (summary["phenotype"].eq(name) & summary["metric"].eq("r2")).any() else "binary"
             for name in summary["phenotype"].unique()}
    return summary[summary.apply(lambda row: row["metric"] in HEADLINE[kinds[row["phenotype"]]], axis=1)]


def seed_table(frames):
    """Per phenotype x feature set: mean over seeds of the split-mean score, its range over seeds, the median p."""
    rows = pd.concat([headline(frame).assign(seed=seed) for seed, frame in frames.items()])
    grouped = rows.groupby(["phenotype", "metric", "feature_set"])
    table = grouped.agg(seed_mean=("mean", "mean"), seed_min=("mean", "min"), seed_max=("mean", "max"),
                        n_seeds=("seed", "nunique"), median_p_shuffled=("p_value", "median"),
                        n_subjects=("n_subjects", "max")).reset_index()
    return table.sort_values(["phenotype", "metric", "seed_mean"], ascending=[True, True, False])


def paired_table(frames):
    """Model vs each baseline on the same splits: per seed the difference and corrected-t p (Nadeau-Bengio)."""
    rows = []
    for seed, frame in frames.items():
        model = frame[frame["a"].eq("model") & frame["metric"].isin(["r2", "pearson_r", "balanced_accuracy"])]
        rows.append(model.assign(seed=seed))
    if not rows:
        return pd.DataFrame()
    rows = pd.concat(rows)
    grouped = rows.groupby(["phenotype", "metric", "b"])
    return grouped.agg(mean_diff=("mean_diff", "mean"), min_diff=("mean_diff", "min"), max_diff=("mean_diff", "max"),
                       seeds_p_below_05=("p_corrected", lambda p: int((p < 0.05).sum())),
                       n_seeds=("seed", "nunique")).reset_index()


def markdown(frame, digits=3):
    if frame.empty:
        return "(none)\n"
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: f"{v:.{digits}f}" if np.isfinite(v) else "")
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def finished(study, prefix, table):
    return {path.parent.name: pd.read_csv(path.parent / table, sep="\t")
            for path in sorted(study.glob(f"{prefix}*/job.json"))}


def write_tables(study):
    """<study>/tables.md from every finished job (E1 over seeds, E4, E5), with each job's steps and time."""
    parts = [f"# ABIDE I study tables ({study})\n"]
    jobs = [json.loads(path.read_text()) for path in sorted(study.glob("*/job.json"))]
    parts += ["## Jobs\n", markdown(pd.DataFrame(jobs).drop(columns=["config"], errors="ignore"))]
    e1 = finished(study, "e1_seed", "summary.tsv")
    if e1:
        parts += [f"## E1 parity over {len(e1)} seeds (held-out sites, site-grouped splits)\n",
                  markdown(seed_table(e1)), "\n### Model minus each set, same splits\n",
                  markdown(paired_table(finished(study, "e1_seed", "paired.tsv")))]
    e4 = finished(study, "e4_confounds", "summary.tsv")
    if e4:
        parts += ["## E4 site and mean-FD decodability (held-out subjects, random subject splits)\n",
                  markdown(seed_table(e4))]
    regressed = finished(study, "e4_regressed", "summary.tsv")
    if regressed:
        parts += ["## E4 E1's probes with mean FD and TR regressed inside each split (seed 0)\n",
                  markdown(seed_table(regressed)), "\n### Model minus each set, same splits\n",
                  markdown(paired_table(finished(study, "e4_regressed", "paired.tsv")))]
    e5 = finished(study, "e5_", "summary.tsv")
    if e5:
        rows = []
        for job, frame in e5.items():
            fraction, steps = job.removeprefix("e5_frac").split("_steps")
            rows.append(headline(frame).assign(fraction=int(fraction), steps=int(steps)))
        curve = pd.concat(rows)[["phenotype", "metric", "feature_set", "fraction", "steps", "mean", "sd"]]
        parts += ["## E5 dose-response (seed 0; random_init is step 0)\n",
                  markdown(curve.sort_values(["phenotype", "feature_set", "fraction", "steps"]))]
    (study / "tables.md").write_text("\n".join(parts))
    return study / "tables.md"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True, help="study folder (created; reused to resume)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the abide1_cc200 folder")
    parser.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, default=5, help="E1 pretraining seeds")
    parser.add_argument("--overrides", type=Path, help="YAML merged into config/abide1.yaml (e.g. a CI-sized run)")
    parser.add_argument("--tables", action="store_true", help="only rewrite <study>/tables.md")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    study = args.study.resolve()
    study.mkdir(parents=True, exist_ok=True)
    if not args.tables:
        overrides = yaml.safe_load(args.overrides.read_text()) if args.overrides else {}
        config = base_config(args.data.resolve(), overrides)
        for name, overlay in study_jobs(config, args.data, args.experiments, args.seeds):
            run_job(study, name, merge(config, overlay))
            write_tables(study)
    print(write_tables(study))


if __name__ == "__main__":
    main()
