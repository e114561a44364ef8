"""Time and peak memory of parcellating one realistic 2 mm run, against nibabel loading and nilearn's masker.

    python benchmarks/parcellate.py [--volumes 200] [--repeats 3]

Each measurement runs in a fresh subprocess (peak RSS = VmHWM, a high-water mark); modes are interleaved so
background load hits them alike. Times exclude interpreter start and imports.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = "MNI152NLin2009cAsym"
BOLD_NAME = f"sub-01_task-rest_space-{SPACE}_res-2_desc-preproc_bold.nii.gz"
MODES = ("gunzip", "floor", "nilearn", "ours")
DESCRIPTIONS = {
    "gunzip": "zlib decompression of the file, data discarded",
    "floor": "nibabel load + get_fdata(dtype=float32)",
    "nilearn": "NiftiLabelsMasker(...).fit_transform(img, confounds, sample_mask)",
    "ours": "semantoks.parcellate.parcellate_run (writes Parquet + QC)",
}


def shared_data():
    override = os.environ.get("SEMANTOKS_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


def atlas_paths():
    folder = shared_data() / "templateflow" / f"tpl-{SPACE}"
    stem = f"tpl-{SPACE}_res-02_atlas-Schaefer2018_desc-100Parcels7Networks"
    return folder / f"{stem}_dseg.nii.gz", folder / f"tpl-{SPACE}_atlas-Schaefer2018_desc-100Parcels7Networks_dseg.tsv"


def build_run(folder, n_volumes, tr=2.0, seed=0):
    """Baseline + slow parcel signals + motion effects + noise in the Schaefer support, zero outside, gzipped."""
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    dseg_path, _ = atlas_paths()
    dseg = nib.load(dseg_path)
    labels = np.asarray(dseg.dataobj).astype(np.int32)
    brain = labels > 0
    sample = shared_data() / "fmriprep_confounds_sample" / "test_desc-confounds_regressors.tsv"
    columns = pd.read_csv(sample, sep="\t", nrows=0).columns
    confounds = pd.DataFrame(rng.standard_normal((n_volumes, len(columns))) * 0.1, columns=columns)
    confounds["framewise_displacement"] = rng.gamma(2.0, 0.06, n_volumes)
    confounds["std_dvars"] = rng.normal(1.05, 0.08, n_volumes)
    confounds["non_steady_state_outlier00"] = np.eye(n_volumes)[0]
    confounds.loc[0, [c for c in columns if "derivative" in c] + ["framewise_displacement", "std_dvars", "dvars"]] = np.nan
    # AR(1) parcel signals: BOLD fluctuations are slow and spatially shared within a parcel
    parcel_signals = lfilter([1.0], [1.0, -0.8], rng.standard_normal((n_volumes, labels.max() + 1)), axis=0)
    motion = confounds[["trans_x", "trans_y", "rot_z"]].fillna(0).to_numpy() @ np.array([15.0, -10.0, 8.0])
    voxel_baseline = rng.uniform(400, 1400, brain.sum()).astype(np.float32)
    brain_series = (voxel_baseline[:, None] + 6 * parcel_signals[:, labels[brain]].T.astype(np.float32)
                    + motion.astype(np.float32) + 5 * rng.standard_normal((brain.sum(), n_volumes), dtype=np.float32))
    data = np.zeros(labels.shape + (n_volumes,), dtype=np.float32)
    data[brain] = brain_series
    del brain_series
    bold = nib.Nifti1Image(data, dseg.affine)
    bold.header.set_xyzt_units("mm", "sec")
    bold.header["pixdim"][4] = tr
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(bold, folder / BOLD_NAME)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), dseg.affine), folder / "brain_mask.nii.gz")
    confounds.to_csv(folder / "confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a")
    (folder / BOLD_NAME.replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": tr}))
    return data.nbytes


def child(mode, folder):
    """One measurement in this fresh process: prints {seconds, peak_mb, before_mb}."""
    import nibabel as nib
    import numpy as np
    import pandas as pd
    from nilearn.maskers import NiftiLabelsMasker

    from semantoks.confounds import load_confounds, resolve_strategy, select_confounds
    from semantoks.parcellate import parcellate_run

    folder = Path(folder)
    bold, mask, confounds_path = folder / BOLD_NAME, folder / "brain_mask.nii.gz", folder / "confounds_timeseries.tsv"
    dseg_path, labels_path = atlas_paths()
    strategy = resolve_strategy("scrubbing")
    labels = pd.read_csv(labels_path, sep="\t").assign(network="n", hemisphere="L")
    table, metadata = load_confounds(confounds_path)
    regressors, kept, _ = select_confounds(table, strategy, metadata)
    before = _peak_mb()
    start = time.perf_counter()
    if mode == "gunzip":
        decompressor = zlib.decompressobj(31)
        with open(bold, "rb") as handle:
            while chunk := handle.read(1 << 20):
                decompressor.decompress(chunk)
    elif mode == "floor":
        data = nib.load(bold).get_fdata(dtype=np.float32)
        assert data.shape[3] == len(table)
    elif mode == "nilearn":
        masker = NiftiLabelsMasker(str(dseg_path), mask_img=str(mask), standardize="zscore_sample", detrend=True, t_r=2.0)
        masker.fit_transform(str(bold), confounds=regressors.to_numpy(), sample_mask=kept)
    else:
        parcellate_run(bold, mask, confounds_path, dseg_path, labels, strategy, folder / "out" / "ts.parquet",
                       folder / "out" / "qc.json", "Schaefer100x7", SPACE, "bench")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(), "before_mb": before}))


def _peak_mb():
    # VmHWM starts afresh at exec; ru_maxrss would carry over the parent's peak at fork
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode, folder):
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--workdir", str(folder)],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir)
    with tempfile.TemporaryDirectory(prefix="semantoks-bench-") as tmp:
        folder = Path(args.workdir or tmp)
        uncompressed = build_run(folder, args.volumes)
        uncompressed_mb = uncompressed / 2**20
        compressed_mb = (folder / BOLD_NAME).stat().st_size / 2**20
        print(f"run: 97x115x97x{args.volumes} float32, {uncompressed_mb:.0f} MiB uncompressed, "
              f"{compressed_mb:.0f} MiB gzipped; {os.cpu_count()} CPUs; {args.repeats} repeats, interleaved")
        results = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                results[mode].append(measure(mode, folder))
    summary = {}
    print(f"{'mode':8} {'median s':>9} {'min s':>7} {'peak RSS MiB':>13} {'+ over imports':>15}  what")
    for mode in MODES:
        times = [r["seconds"] for r in results[mode]]
        peak = max(r["peak_mb"] for r in results[mode])
        growth = max(r["peak_mb"] - r["before_mb"] for r in results[mode])
        summary[mode] = {"median": statistics.median(times), "min": min(times), "peak": peak, "growth": growth}
        print(f"{mode:8} {summary[mode]['median']:9.2f} {min(times):7.2f} {peak:13.0f} {growth:15.0f}  {DESCRIPTIONS[mode]}")
    ours, floor, nilearn = summary["ours"], summary["floor"], summary["nilearn"]
    print(f"ours/floor   time (median): {ours['median'] / floor['median']:.2f}  (goal <= 1.3)")
    print(f"ours/nilearn time (median): {ours['median'] / nilearn['median']:.2f}  (goal <= 1.0)")
    print(f"ours peak RSS / uncompressed: {ours['peak'] / uncompressed_mb:.2f} (growth over imports: "
          f"{ours['growth'] / uncompressed_mb:.2f}); floor {floor['peak'] / uncompressed_mb:.2f}, "
          f"nilearn {nilearn['peak'] / uncompressed_mb:.2f}  (goal < 2)")


if __name__ == "__main__":
    main()
