"""Descriptors + hashing text embeddings for many scans: seconds per stage.

    python benchmarks/descriptors.py --scans 1000 --parcels 400 --frames 200 --processes 2

Synthetic scans (a few shared network signals + AR(1) noise) stream through describe_scans (FC, gradients
with Procrustes to the training group, seeded Louvain, network dynamics), then texts_table and the
hashing encoder fitted on the training scans' texts encode every text (canonical + variants).
"""

import argparse
import time

import numpy as np

from semantoks.dataset import Scan
from semantoks.language.descriptors import describe_scans, texts_table
from semantoks.language.text_encoders import load_text_encoder

NETWORKS = ["Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default"]


def synthetic_scans(n_scans, n_parcels, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    network_of = np.arange(n_parcels) * len(NETWORKS) // n_parcels
    for i in range(n_scans):
        shared = rng.standard_normal((n_frames, len(NETWORKS)))
        noise = rng.standard_normal((n_frames, n_parcels))
        for t in range(1, n_frames):
            noise[t] += 0.5 * noise[t - 1]
        data = (shared[:, network_of] * rng.uniform(0.3, 1.0, n_parcels) + noise).astype(np.float32)
        yield Scan("bench", f"sub-{i:04d}_task-rest", f"{i:04d}", None, "rest", None, 2.0, data, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--parcels", type=int, default=400)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    parcel_network = [NETWORKS[i * len(NETWORKS) // args.parcels] for i in range(args.parcels)]
    train = [f"bench/{i:04d}" for i in range(int(args.scans * 0.8))]
    start = time.perf_counter()
    table, reference, skipped, omitted = describe_scans(synthetic_scans(args.scans, args.parcels, args.frames),
                                                        parcel_network, NETWORKS, train, seed=0,
                                                        processes=args.processes)
    described = time.perf_counter()
    texts = texts_table(table, reference, NETWORKS, omitted)
    written = time.perf_counter()
    is_train = texts["subject"].map(lambda s: f"bench/{s}" in set(train)).to_numpy()
    encoder = load_text_encoder("hashing", corpus=texts.loc[is_train, "text"].tolist())
    embeddings = encoder.encode(texts["text"].tolist())
    encoded = time.perf_counter()
    print(f"processes={args.processes} scans={len(table)} parcels={args.parcels} frames={args.frames} "
          f"texts={len(texts)} dim={embeddings.shape[1]}")
    print(f"descriptors_s={described - start:.1f} texts_s={written - described:.1f} "
          f"embed_s={encoded - written:.1f} total_s={encoded - start:.1f} per_scan_ms={1000 * (encoded - start) / args.scans:.0f}")


if __name__ == "__main__":
    main()
