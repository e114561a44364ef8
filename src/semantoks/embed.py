"""Frozen-encoder embeddings: one vector per scan, averaged over deterministic test-time crops."""

import json
import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from semantoks.atomic import atomic_path
from semantoks.errors import SemantoksError
from semantoks.features.table import METADATA_KEY, KEY_COLUMNS, write_feature_table
from semantoks.model.backbone import scan_features
from semantoks.model.checkpoint import build_encoder_from, check_identity, data_identity
from semantoks.model.data import Preprocessing, crop, is_usable, preprocess_scan, scan_records, embedding_crop_starts
from semantoks.model.distributed import resolve_device

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
    """Features of the network-token encoder: CLS concatenated with the mean of its valid tokens."""

    def __init__(self, encoder, identity, device):
        self.encoder = encoder.to(device).eval().requires_grad_(False)
        self.data_identity = identity
        self.device = torch.device(device)
        self.feature_dim = 2 * encoder.dim

    @torch.no_grad()
    def embed(self, batch):
        return scan_features(self.encoder(batch["x"], batch["parcel_valid"], batch["patch_valid"]))


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


def random_init_encoder(config, atlas_metadata, cohorts, seed, source):
    """(encoder, data_identity) of the architecture in a pretrain config, initialised from `seed`."""
    from semantoks.model.train import resolve_pretrain_config

    config = resolve_pretrain_config(config)
    identity = data_identity(atlas_metadata, config.data.identity(), cohorts, source)
    torch.manual_seed(seed)
    return build_encoder_from(config, identity), identity


def embed_dataset(checkpoint_path, dataset_root, atlas_id, cohorts, out_parquet, n_crops=8, batch_size=64,
                  device="auto", config=None, seed=0, allow_strategy_mismatch=False):
    """Embed every included scan of `cohorts` with a checkpoint's frozen teacher (None: random-init control).

    The random-init control builds the architecture of `config` (a pretrain section; None = defaults)
    with weights from `seed`. Writes `out_parquet` atomically and returns the same table as a DataFrame.
    """
    from semantoks.dataset import iter_scans, read_atlas_metadata

    metadata = read_atlas_metadata(dataset_root, atlas_id)
    if checkpoint_path is None:
        encoder, identity = random_init_encoder(config, metadata, cohorts, seed, dataset_root)
        provenance = {"checkpoint_sha256": "random-init", "seed": int(seed)}
    else:
        from semantoks.api import load_model

        # a checkpoint.pt or a folder written by `semantoks export`
        model = load_model(checkpoint_path)
        encoder, identity = model.encoder, model.data_identity
        check_identity(identity, metadata, f"{dataset_root} (atlas {atlas_id})", checkpoint=checkpoint_path,
                       cohorts=cohorts, allow_strategy_mismatch=allow_strategy_mismatch)
        provenance = {"checkpoint_sha256": model.sha256, "seed": None}
    scan_encoder = NetworkTokenScanEncoder(encoder, identity, resolve_device(device))
    keys, features = embed_scans(scan_encoder, scan_records(iter_scans(dataset_root, atlas_id, cohorts)),
                                 n_crops, batch_size)
    record = {**provenance, "atlas_id": atlas_id, "preprocessing": identity["preprocessing"],
              "feature": "teacher cls + mean of valid network tokens", "n_crops": int(n_crops),
              "embedding_dim": int(scan_encoder.feature_dim), "cohorts": sorted(keys["cohort"].unique().tolist())}
    write_feature_table(out_parquet, keys, features, record)
    frame = keys.assign(embedding=list(features))
    frame.attrs["semantoks"] = record
    return frame


def embed_timeseries_files(model_path, paths, out_parquet, tr=None, n_crops=8):
    """Embed per-run time-series files (this project's per-run Parquet, or TSV/CSV with parcel-name headers).

    The TR comes from a per-run Parquet's own record, else from `tr`; columns are matched to the model's
    parcels by name. Writes `out_parquet` (the probes' feature layout) only after every file was read.
    """
    from semantoks.api import load_model

    model = load_model(model_path)
    keys, features = [], []
    for path in map(Path, paths):
        frame, record = _read_timeseries_file(path)
        scan_tr = record.get("tr") if tr is None else tr
        if scan_tr is None:
            raise SemantoksError(f"{path}: no repetition time recorded in the file; pass --tr SECONDS.")
        try:
            features.append(model.encode(frame, scan_tr, n_crops=n_crops))
        except SemantoksError as error:
            raise SemantoksError(f"{path}: {error}") from None
        stem = path.name.split(".")[0]
        subject = record.get("subject") or _bids_subject(stem)
        keys.append({"cohort": record.get("cohort") or "external", "scan_id": record.get("scan_id") or stem,
                     "subject": subject, "session": record.get("session")})
    if not keys:
        raise SemantoksError("no time-series files given; pass --timeseries FILE [FILE ...].")
    table = pd.DataFrame(keys, columns=list(KEY_COLUMNS))
    values = np.asarray(features, dtype=np.float32)
    record = {"checkpoint_sha256": model.sha256, "seed": None, "atlas_id": model.data_identity["atlas_id"],
              "preprocessing": model.data_identity["preprocessing"],
              "feature": "teacher cls + mean of valid network tokens", "n_crops": int(n_crops),
              "embedding_dim": int(values.shape[1]), "cohorts": sorted(table["cohort"].unique().tolist())}
    write_feature_table(out_parquet, table, values, record)
    return table.assign(embedding=list(values))


def _read_timeseries_file(path):
    """(DataFrame named by parcel, the file's own record) of one per-run time-series file."""
    if not path.is_file():
        raise SemantoksError(f"{path}: time-series file not found; fix the path.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(path)
            record = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
            return table.to_pandas(), record
        if suffix in (".tsv", ".csv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", na_values=["n/a"]), {}
    except (OSError, ValueError, pa.ArrowException) as error:
        raise SemantoksError(f"{path}: not readable ({str(error).splitlines()[0]}); re-export the time series.") from None
    raise SemantoksError(f"{path}: unsupported format '{suffix}'; give per-run .parquet files or .tsv/.csv with "
                         "parcel names as column headers.")


def _bids_subject(stem):
    for part in stem.split("_"):
        if part.startswith("sub-"):
            return part[4:]
    return stem
