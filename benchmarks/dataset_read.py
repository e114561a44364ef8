"""Read throughput of the consolidated dataset: iter_scans vs np.load of the same floats.

    python benchmarks/dataset_read.py --scans 2000 --parcels 400 --frames 200

Writes per-run outputs, builds one partition per --row-group-mb value with build_partition, then
streams it with iter_scans and reads random scans with ScanReader. The reference reads the same
float32 values from one flat .npy with np.load in the same run, alternating with iter_scans; each
file is read through the page cache just before it is timed, so both are timed warm.
"""

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semantoks.dataset import ScanReader, build_partition, iter_scans

ATLAS = "Bench"


def synthetic_scan(rng, n_frames, n_parcels):
    """AR(1)-smoothed noise like band-passed BOLD, with a few parcels outside the mask (NaN)."""
    data = rng.standard_normal((n_frames, n_parcels)).astype(np.float32)
    for t in range(1, n_frames):
        data[t] = 0.7 * data[t - 1] + 0.3 * data[t]
    data[:, rng.integers(n_parcels, size=3)] = np.nan
    return data


def write_runs(folder, n_scans, n_parcels, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    names = [f"P{j}" for j in range(n_parcels)]
    flat = np.lib.format.open_memmap(folder / "flat.npy", mode="w+", dtype=np.float32,
                                     shape=(n_scans, n_frames, n_parcels))
    runs = []
    for i in range(n_scans):
        data = synthetic_scan(rng, n_frames, n_parcels)
        flat[i] = data
        scan_id = f"sub-{i:05d}_task-rest"
        qc = {"cohort": "bench", "subject": f"{i:05d}", "session": None, "task": "rest", "run": None,
              "scan_id": scan_id, "atlas": ATLAS, "tr": 2.0, "n_volumes": n_frames, "n_frames": n_frames,
              "mean_fd": 0.1, "pct_censored": 0.0, "included": True, "reason": None,
              "parcel_coverage": [1.0] * n_parcels}
        table = pa.table({"frame": pa.array(np.arange(n_frames, dtype=np.int32)),
                          **{name: data[:, j] for j, name in enumerate(names)}})
        parquet_path, qc_path = folder / f"{scan_id}_timeseries.parquet", folder / f"{scan_id}_qc.json"
        pq.write_table(table.replace_schema_metadata({"semantoks": json.dumps(qc)}), parquet_path)
        qc_path.write_text(json.dumps(qc))
        runs.append((parquet_path, qc_path))
    flat.flush()
    labels = pd.DataFrame({"index": range(1, n_parcels + 1), "name": names,
                           "network": ["Net"] * n_parcels, "hemisphere": ["L"] * n_parcels})
    return runs, labels


def timed(read):
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


def warm(path):
    """Read a file through the page cache just before timing, so both readers are timed warm."""
    with open(path, "rb", buffering=0) as handle:
        while handle.read(16 * 2**20):
            pass


def stream(root):
    n_frames = 0
    for scan in iter_scans(root, ATLAS, batch_size=16):
        n_frames += scan.data.shape[0]
    return n_frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--parcels", type=int, default=400)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--row-group-mb", type=float, nargs="+", default=[4])
    parser.add_argument("--random-reads", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "_scratch" / "dataset_read")
    args = parser.parse_args()

    print(f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    shutil.rmtree(args.workdir, ignore_errors=True)
    (args.workdir / "runs").mkdir(parents=True)
    start = time.perf_counter()
    runs, labels = write_runs(args.workdir / "runs", args.scans, args.parcels, args.frames)
    print(f"wrote {args.scans} per-run files in {time.perf_counter() - start:.1f} s")
    megabytes = args.scans * args.frames * args.parcels * 4 / 2**20
    flat_path = args.workdir / "runs" / "flat.npy"
    print(f"{args.scans} scans x {args.frames} frames x {args.parcels} parcels = {megabytes:.0f} MB of float32")

    for row_group_mb in args.row_group_mb:
        root = args.workdir / f"dataset-rg{row_group_mb:g}"
        build_s = timed(lambda: build_partition(
            runs, root, "bench", ATLAS, labels, "MNI152NLin2009cAsym", {"name": "simple"}, "bench", "bench",
            row_group_bytes=int(row_group_mb * 2**20)))
        part = root / "timeseries" / f"atlas={ATLAS}" / "cohort=bench" / "part-0.parquet"
        size_mb = part.stat().st_size / 2**20
        assert stream(root) == args.scans * args.frames
        # alternate the two reads so that load from other processes hits both alike
        npy_s, stream_s = [], []
        for _ in range(args.repeats):
            warm(flat_path)
            npy_s.append(timed(lambda: np.load(flat_path)))
            warm(part)
            stream_s.append(timed(lambda: stream(root)))
        ratio = np.median(np.array(stream_s) / np.array(npy_s))
        best_npy, best_stream = min(npy_s), min(stream_s)

        reader = ScanReader(root, ATLAS)
        keys = list(zip(reader.index["cohort"], reader.index["scan_id"]))
        order = np.random.default_rng(1).permutation(len(keys))[: args.random_reads]
        random_s = timed(lambda: [reader.read([keys[i]]) for i in order])

        print(f"row groups {row_group_mb:g} MB: build {args.scans / build_s:.0f} scans/s, "
              f"file {size_mb:.0f} MB ({size_mb / megabytes:.0%} of raw)")
        print(f"  np.load flat .npy   {args.scans / best_npy:7.0f} scans/s {megabytes / best_npy:6.0f} MB/s")
        print(f"  iter_scans          {args.scans / best_stream:7.0f} scans/s {megabytes / best_stream:6.0f} MB/s")
        print(f"  iter_scans takes {best_stream / best_npy:.1f}x the time of np.load (best of {args.repeats}); "
              f"{ratio:.1f}x (median of alternating pairs)")
        print(f"  pairs (np.load s, iter_scans s): {', '.join(f'({a:.2f}, {b:.2f})' for a, b in zip(npy_s, stream_s))}")
        print(f"  random single-scan reads (ScanReader): {args.random_reads / random_s:.0f} scans/s")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
