"""Scan encoding with a frozen network-token encoder: one vector per scan, averaged over deterministic crops.

The one loader of a trained encoder (a checkpoint or an exported folder) lives here too, so the embed stage,
the public API, the trainer's online evaluation and the Brainmarks adapter all call down into this module.
"""

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from semantoks.dataset.keys import KEY_COLUMNS
from semantoks.model.backbone import scan_features
from semantoks.model.config import Preprocessing
from semantoks.model.data import crop, embedding_crop_starts, is_usable, preprocess_scan

log = logging.getLogger(__name__)


class ScanEncoder(Protocol):
    """What embed_scans needs from a model: its data identity and crop batch -> feature vectors.

    A batch is {"x" [B, P, T], "parcel_valid" [B, P], "patch_valid" [B, K]} on the encoder's device;
    `embed` returns [B, feature_dim] float32. A discrete-token model can plug in by providing these.
    """

    data_identity: dict
    feature_dim: int
    device: torch.device

    def embed(self, batch) -> torch.Tensor: ...


class NetworkTokenScanEncoder:
    """Features of the network-token encoder: CLS concatenated with the mean of its valid tokens.

    `source` and `sha256` name the checkpoint or exported folder it came from (None for an in-memory encoder).
    """

    def __init__(self, encoder, identity, device, source=None, sha256=None):
        self.encoder = encoder.to(device).eval().requires_grad_(False)
        self.data_identity = identity
        self.device = torch.device(device)
        self.feature_dim = 2 * encoder.dim
        self.source, self.sha256 = source, sha256

    @torch.no_grad()
    def embed(self, batch):
        return scan_features(self.encoder(batch["x"], batch["parcel_valid"], batch["patch_valid"]))


def load_scan_encoder(path, device="cpu"):
    """The NetworkTokenScanEncoder of a `checkpoint.pt` (its teacher) or of a folder written by `semantoks export`."""
    from semantoks.model.export import load_exported, read_export_config

    path = Path(path)
    if path.is_dir():
        encoder, identity, sha256 = load_exported(path, read_export_config(path))
    else:
        from semantoks.model.checkpoint import checkpoint_sha256, load_encoder

        encoder, identity = load_encoder(path, which="teacher")
        sha256 = checkpoint_sha256(path)
    return NetworkTokenScanEncoder(encoder, identity, device, source=str(path), sha256=sha256)


def embed_scans(scan_encoder, records, n_crops=8, batch_size=64):
    """(keys DataFrame, features [n_scans, F] float32) for (data, tr, meta) records; short scans skipped."""
    prep = Preprocessing.from_config(scan_encoder.data_identity["preprocessing"])
    keys, sums, counts = [], [], []
    pending = []

    def run(pending):
        batch = {name: torch.from_numpy(np.stack([item[i] for item in pending])).to(scan_encoder.device)
                 for i, name in enumerate(("x", "parcel_valid", "patch_valid"))}
        features = scan_encoder.embed(batch).cpu().numpy()
        for (*_, scan_index), feature in zip(pending, features):
            sums[scan_index] += feature
            counts[scan_index] += 1

    for data, tr, meta in records:
        if not is_usable(data.shape[0], tr, prep):
            log.warning("not embedding scan %s of cohort %s: shorter than one %d-TR patch",
                        meta.get("scan_id"), meta.get("cohort"), prep.patch_len)
            continue
        scan = preprocess_scan(data, tr, prep, meta)
        keys.append({column: meta.get(column) for column in KEY_COLUMNS})
        sums.append(np.zeros(scan_encoder.feature_dim, dtype=np.float64))
        counts.append(0)
        for start in embedding_crop_starts(scan.n_frames, prep, n_crops):
            x, patch_valid = crop(scan.values, start, prep)
            pending.append((x, scan.parcel_valid, patch_valid, len(keys) - 1))
            if len(pending) == batch_size:
                run(pending)
                pending = []
    if pending:
        run(pending)
    features = np.asarray([s / c for s, c in zip(sums, counts)], dtype=np.float32)
    return pd.DataFrame(keys, columns=list(KEY_COLUMNS)), features.reshape(len(keys), scan_encoder.feature_dim)
