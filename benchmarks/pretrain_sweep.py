"""Does pretraining move the model within the demo's budget? A small grid of optimisation settings.

    python benchmarks/pretrain_sweep.py --out /tmp/sweep                       # tiny, 300 steps x 32 scans
    python benchmarks/pretrain_sweep.py --out /tmp/sweep --points baseline lr1e-3_clip3
    python benchmarks/pretrain_sweep.py --out /tmp/sweep_small --presets small --steps 150 --batch-size 16 \
        --points paper lr3e-4_clip3_ema0.9 lr1e-3_clip3_ema0.9

Data: the real ABIDE CC200 ROI time series of shared/data/abide_pcp_cc200 (91 subjects, 6 sites,
TR 2-3 s), imported with semantoks.cohorts.roi_import and consolidated with semantoks.dataset as
two cohorts: `train` (75 subjects, the pretraining data) and `held` (16 subjects, the fixed health
batch: 4 evenly spaced crops per scan). Each grid point calls semantoks.model.train.pretrain with
overrides of its defaults, then compares the final teacher with the step-0 encoder (the same seed
builds the same weights) by semantoks.model.health.measure_health and its verdict. Prints a
Markdown table and writes sweep.json under --out.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semantoks.cohorts.roi_import import import_roi_timeseries, roi_label_table
from semantoks.dataset import build_partition, iter_scans
from semantoks.model.checkpoint import build_encoder_from, load_checkpoint, load_encoder
from semantoks.model.config import Preprocessing
from semantoks.model.data import crop, embedding_crop_starts, preprocess_scan
from semantoks.model.health import measure_health, verdict

ABIDE = Path(os.environ.get("SEMANTOKS_SHARED_DATA", "/work/shared/data")) / "abide_pcp_cc200"
PATTERN = r"(?P<site>[A-Z]+(?:_\d)?)_(?P<subject>\d+)_rois_cc200\.1D"
ATLAS = "cc200"
HELD_OUT_SUBJECTS = 16
HEALTH_CROPS = 4

# Each point overrides the trainer's defaults (the `pretrain` section keys); `baseline` is the defaults
# (the preset's own: since the sweeps, tiny's and small's are not the paper's).
# base_lr is per 256 scans: at batch 32 the peak lr is base_lr / 8.
GRID = {
    "baseline": {},
    "paper": {"base_lr": 7e-4, "grad_clip": 1.0, "momentum": 0.99},
    "lr1e-3": {"base_lr": 8e-3},
    "lr1e-3_clip3": {"base_lr": 8e-3, "grad_clip": 3.0},
    "lr1e-3_clip3_ema0.9": {"base_lr": 8e-3, "grad_clip": 3.0, "momentum": 0.9},
    "lr3e-4_clip3_ema0.9": {"base_lr": 2.4e-3, "grad_clip": 3.0, "momentum": 0.9},
    "lr3e-3_clip3_ema0.9": {"base_lr": 2.4e-2, "grad_clip": 3.0, "momentum": 0.9},
    "lr1e-3_clip3_ema0.9_warm0.2": {"base_lr": 8e-3, "grad_clip": 3.0, "momentum": 0.9, "warmup_fraction": 0.2},
}


def build_abide_dataset(root):
    """Import the ABIDE files as cohorts `train` and `held` and consolidate them under `root`/dataset."""
    dataset = root / "dataset"
    if (dataset / "dataset_description.json").is_file() or any(dataset.glob("timeseries/*/*/*.parquet")):
        return dataset
    participants = pd.read_csv(ABIDE / "participants.tsv", sep="\t")
    mapping = pd.read_csv(ABIDE / "cc200_yeo7_mapping.tsv", sep="\t")
    labels = pd.DataFrame({"name": [f"cc200_{roi:03d}" for roi in mapping["roi"]], "network": mapping["yeo7_network"]})
    tr_by_site = dict(zip(participants["SITE_ID"], participants["TR_s"]))
    files = sorted((ABIDE / "rois_cc200").glob("*_rois_cc200.1D"))
    held = set(np.random.default_rng(0).choice(len(files), HELD_OUT_SUBJECTS, replace=False).tolist())
    for cohort, chosen in (("train", [f for i, f in enumerate(files) if i not in held]),
                           ("held", [f for i, f in enumerate(files) if i in held])):
        outputs = import_roi_timeseries(chosen, PATTERN, cohort, ATLAS, root / "timeseries" / cohort,
                                        tr_by_site=tr_by_site, labels=labels)
        build_partition(outputs, dataset, cohort=cohort, atlas_id=ATLAS, labels=roi_label_table(labels, len(labels)),
                        space="MNI152NLin6Asym", strategy={"name": "imported"}, pipeline_version="sweep",
                        config_hash="sweep")
    return dataset


def health_batch(dataset, prep):
    """Fixed crops of the held-out scans: {x [B, P, T], parcel_valid [B, P], patch_valid [B, K]}."""
    xs, parcels, patches = [], [], []
    for scan in iter_scans(dataset, ATLAS, ["held"]):
        prepared = preprocess_scan(scan.data, scan.tr, prep)
        for start in embedding_crop_starts(prepared.n_frames, prep, HEALTH_CROPS):
            x, patch_valid = crop(prepared.values, start, prep)
            xs.append(x)
            parcels.append(prepared.parcel_valid)
            patches.append(patch_valid)
    return {"x": torch.from_numpy(np.stack(xs)), "parcel_valid": torch.from_numpy(np.stack(parcels)),
            "patch_valid": torch.from_numpy(np.stack(patches))}


def run_point(name, overrides, preset, steps, batch_size, dataset, out, batch_cache):
    from semantoks.model.train import pretrain

    config = {"preset": preset, "steps": steps, "batch_size": batch_size, "seed": 0, "log_every": 10,
              "checkpoint_every": steps, "device": "cpu", "extra": dict(overrides)}
    start = time.perf_counter()
    checkpoint = pretrain(config, dataset, ATLAS, ["train"], out / f"{preset}_{name}", resume=False)
    seconds = time.perf_counter() - start
    state = load_checkpoint(checkpoint)
    teacher, identity = load_encoder(checkpoint, which="teacher")
    torch.manual_seed(state["config"]["seed"])  # the trainer seeds, then builds the encoder first
    initial = build_encoder_from(state["config"], identity).eval()
    prep = Preprocessing.from_config(state["config"])
    key = json.dumps(prep.identity(), sort_keys=True)
    if key not in batch_cache:
        batch_cache[key] = health_batch(dataset, prep)
    metrics = measure_health(teacher, initial, batch_cache[key])
    log = pd.read_csv(out / f"{preset}_{name}" / "log.csv")
    label, _ = verdict(metrics)
    return {"preset": preset, "point": name, **overrides, "steps": steps, "batch_size": batch_size,
            "peak_lr": float(log["lr"].max()), "grad_norm_median": float(log["grad_norm"].median()),
            "loss_first": float(log["loss_total"].iloc[0]), "loss_last": float(log["loss_total"].iloc[-1]),
            **metrics, "verdict": label, "seconds": seconds}


def markdown(rows):
    columns = ["preset", "point", "peak_lr", "grad_norm_median", "loss_first", "loss_last", "drift_r", "cka_init",
               "rankme", "token_cosine", "cls_cosine", "verdict", "seconds"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--points", nargs="+", default=list(GRID), choices=list(GRID))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = build_abide_dataset(args.out)
    rows, cache = [], {}
    results = args.out / "sweep.json"
    for preset in args.presets:
        for name in args.points:
            rows.append(run_point(name, GRID[name], preset, args.steps, args.batch_size, dataset, args.out, cache))
            results.write_text(json.dumps(rows, indent=1))
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
