"""Are the simulated cohort's planted effects recoverable from scan-level features after the workflow's denoising?

Simulates the cohort (default: the demo's 48 subjects, seed 0, 6 mm), parcellates every run with the
configured denoising preset (z-scored parcels), and probes diagnosis, sex, age, score and state_order with the
project's probes on: per-network dynamics (lag-1 autocorrelation, slow-power fraction; what a tokenizer
that sees each network's time course can pick up), network-level FC, both fused, parcel FC, the spectral
baseline `spectra` (per-network ALFF, fALFF, lag-1 autocorrelation, log-PSD bins, 1/f slope), `fc_and_spectra`,
and the positive control for state_order: the coupling-order asymmetry of the SomMot-Limbic pair.

    python benchmarks/simulated_effects.py --out /tmp/simulated_effects [--n-subjects 48] [--strategy scrubbing] [--override motion=full]
    python benchmarks/simulated_effects.py --out /tmp/simulated_effects --phenotype state_order --n-repeats 20 --n-permutations 100
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from semantoks.atlas import AtlasSpec, load_atlas
from semantoks.confounds import resolve_strategy
from semantoks.features.dynamics import series_dynamics
from semantoks.features.registry import compute_feature_table
from semantoks.parcellate import parcellate_run
from semantoks.probes import probe_phenotype
from semantoks.simulate import derivative_paths, participants_frame, plan_cohort, simulate_cohort
from semantoks.simulate.dynamics import coupling_order_asymmetry, network_dynamics

PHENOTYPES = {"diagnosis": "binary", "sex": "binary", "age": "continuous", "score": "continuous",
              "state_order": "binary"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-subjects", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", default="scrubbing")
    parser.add_argument("--low-pass", type=float, default=None, help="also band-pass below this frequency (Hz)")
    parser.add_argument("--override", action="append", default=[], help="denoising key=value, e.g. motion=full")
    parser.add_argument("--n-repeats", type=int, default=10)
    parser.add_argument("--n-permutations", type=int, default=20)
    parser.add_argument("--phenotype", action="append", choices=list(PHENOTYPES), help="probe only these (default: all)")
    args = parser.parse_args()
    atlas = load_atlas(AtlasSpec(n_parcels=100, n_networks=7), os.environ.get("TEMPLATEFLOW_HOME"))
    networks = atlas.labels["network"].tolist()
    root = args.out / "cohort"
    # a rerun with other probe or denoising settings reuses the simulated files
    if (root / "ground_truth.json").is_file():
        plan = plan_cohort(n_subjects=args.n_subjects, seed=args.seed)
    else:
        plan = simulate_cohort(root, atlas.image, atlas.labels, n_subjects=args.n_subjects, seed=args.seed)
    overrides = dict(item.split("=", 1) for item in args.override)
    if args.low_pass:
        overrides["low_pass"] = args.low_pass
    strategy = resolve_strategy(args.strategy, overrides)
    scans, dynamics, spectra, order = [], [], [], []
    pair = plan.params.state_networks
    for run in plan.runs:
        paths = derivative_paths(root, run)
        out = args.out / f"timeseries_{args.strategy}_{args.low_pass}_{'_'.join(args.override)}" / f"{run.scan_id}.parquet"
        if out.with_suffix(".json").is_file():  # a rerun with other probe settings reuses the parcellated runs
            record = json.loads(out.with_suffix(".json").read_text())
        else:
            record = parcellate_run(paths["bold"], paths["mask"], paths["confounds"], atlas.image, atlas.labels,
                                    strategy, out, out.with_suffix(".json"), "Schaefer100x7", "MNI152NLin2009cAsym",
                                    "sim", sidecar_path=paths["sidecar"])
        if not record["included"]:
            continue
        table = pq.read_table(out).to_pandas()
        data = table.drop(columns="frame").to_numpy()
        scan = Scan(run.scan_id, run.subject, data, run.tr)
        scans.append(scan)
        measured = network_dynamics(data, networks, run.tr, frames=table["frame"].to_numpy())
        dynamics.append([value for network in dict.fromkeys(networks) for value in measured[network]])
        means = {network: data[:, np.asarray(networks) == network].mean(axis=1) for network in dict.fromkeys(networks)}
        spectra.append([value for series in means.values() for value in spectral_measures(series, run.tr)])
        order.append([coupling_order_asymmetry(means[pair[0]], means[pair[1]], run.tr)])
    meta, fc = compute_feature_table("network_fc", scans, networks, list(dict.fromkeys(networks)))
    parcel_meta, parcel_fc = compute_feature_table("fc", scans, networks, list(dict.fromkeys(networks)))
    assert parcel_meta.equals(meta)
    dyn, spec = np.asarray(dynamics), np.asarray(spectra)
    phenotypes = participants_frame(plan).assign(subject=lambda f: f["participant_id"].str[4:], cohort="sim")
    feature_sets = {"dynamics": (meta, dyn), "network_fc": (meta, fc), "dynamics_and_network_fc": (meta, np.hstack([dyn, fc])),
                    "fc": (meta, parcel_fc), "spectra": (meta, spec), "fc_and_spectra": (meta, np.hstack([parcel_fc, spec])),
                    "network_fc_and_spectra": (meta, np.hstack([fc, spec])),
                    "coupling_order": (meta, np.asarray(order))}
    rows = []
    for name in args.phenotype or PHENOTYPES:
        kind = PHENOTYPES[name]
        record = probe_phenotype(feature_sets, phenotypes, name, {"type": kind, "source": name},
                                 n_repeats=args.n_repeats, n_permutations=args.n_permutations, seed=args.seed)
        metric = "balanced_accuracy" if kind == "binary" else "pearson_r"
        for feature_set, result in record["feature_sets"].items():
            summary = result["summary"][metric]
            rows.append({"phenotype": name, "metric": metric, "feature_set": feature_set,
                         "mean": round(summary["mean"], 3), "sd": round(summary["sd"], 3), "p_shuffled": summary["p_value"]})
    table = pd.DataFrame(rows)
    print(f"{len(scans)} scans, {len(plan.subjects)} subjects, strategy {args.strategy} {overrides}")
    print(table.to_string(index=False))
    table.to_csv(args.out / "simulated_effects.tsv", sep="\t", index=False)
    (args.out / "settings.json").write_text(json.dumps(vars(args), default=str))


def spectral_measures(series, tr):
    """ALFF, fALFF, lag-1 autocorrelation, four log-PSD bins and the 1/f slope of one network-mean series."""
    return list(series_dynamics(series, tr).values())


class Scan:
    """The fields of a dataset scan the connectivity features read."""

    def __init__(self, scan_id, subject, data, tr):
        self.cohort, self.scan_id, self.subject, self.session, self.data, self.tr = "sim", scan_id, subject, None, data, tr


if __name__ == "__main__":
    main()
