"""The trained model outside the workflow: `load_model(path).encode(timeseries, tr)`.

A checkpoint or an exported folder carries its parcel order and preprocessing, so a caller's time series
are matched to the model's parcels by name and prepared exactly as the training data were.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from semantoks.dataset.keys import KEY_COLUMNS
from semantoks.errors import SemantoksError
from semantoks.features.table import METADATA_KEY, write_feature_table
from semantoks.model.config import Preprocessing
from semantoks.model.data import crop, embedding_crop_starts, is_usable, preprocess_scan
from semantoks.model.encode import embed_scans, load_scan_encoder

log = logging.getLogger(__name__)

# per-run Parquet files of this project keep the source frame index beside the parcel columns
_NON_PARCEL_COLUMNS = ("frame",)


class SemantoksModel:
    """A frozen network-token encoder with the data identity it was trained on."""

    def __init__(self, scan_encoder):
        self.scan_encoder = scan_encoder
        self.source = scan_encoder.source
        self.sha256 = scan_encoder.sha256
        self.data_identity = scan_encoder.data_identity

    @property
    def encoder(self):
        return self.scan_encoder.encoder

    @property
    def parcel_names(self):
        return list(self.data_identity["parcel_names"])

    @property
    def networks(self):
        return list(self.data_identity["networks"])

    @property
    def tr(self):
        """The TR (s) every scan is resampled to before windowing."""
        return float(self.data_identity["preprocessing"]["model_tr"])

    @property
    def feature_dim(self):
        return self.scan_encoder.feature_dim

    def encode(self, timeseries, tr, parcel_names=None, n_crops=8, assume_order=False):
        """Probe feature (CLS ⊕ mean of valid network tokens, averaged over crops) of one scan, float32 [F].

        `timeseries` is [frames, parcels]: a DataFrame whose columns are parcel names, or an array with
        `parcel_names`, or an array in the model's own parcel order with `assume_order=True`.
        """
        data = self.align(timeseries, parcel_names, assume_order)
        self._check_length(data, tr)
        _, features = embed_scans(self.scan_encoder, [(data, float(tr), {})], n_crops=n_crops)
        return features[0]

    @torch.no_grad()
    def encode_tokens(self, timeseries, tr, parcel_names=None, n_crops=8, assume_order=False):
        """Network tokens per crop: (tokens [crops, networks, patches, D] float32, valid [crops, networks, patches])."""
        data = self.align(timeseries, parcel_names, assume_order)
        self._check_length(data, tr)
        prep = Preprocessing.from_config(self.data_identity["preprocessing"])
        scan = preprocess_scan(data, float(tr), prep)
        crops = [crop(scan.values, start, prep) for start in embedding_crop_starts(scan.n_frames, prep, n_crops)]
        device = self.scan_encoder.device
        x = torch.from_numpy(np.stack([c[0] for c in crops])).to(device)
        patch_valid = torch.from_numpy(np.stack([c[1] for c in crops])).to(device)
        parcel_valid = torch.from_numpy(np.repeat(scan.parcel_valid[None], len(crops), axis=0)).to(device)
        out = self.encoder(x, parcel_valid, patch_valid)
        shape = (len(crops), len(self.networks), prep.n_patches)
        tokens = out["tokens"].float().reshape(*shape, -1).cpu().numpy()
        return tokens, out["token_valid"].reshape(shape).cpu().numpy()

    def align(self, timeseries, parcel_names=None, assume_order=False):
        """[frames, model parcels] float64 in the model's order; parcels the caller lacks are NaN (invalid)."""
        names, values = _names_and_values(timeseries, parcel_names)
        model_names = self.parcel_names
        if names is None:
            if values.shape[1] != len(model_names):
                raise SemantoksError(
                    f"the time series have {values.shape[1]} columns but the model ({self.source}) has "
                    f"{len(model_names)} parcels; pass parcel_names= or a DataFrame named by parcel.")
            if not assume_order:
                raise SemantoksError(
                    "an array without parcel names is trusted only with assume_order=True; pass parcel_names= "
                    "or a DataFrame whose columns are the model's parcel names (model.parcel_names).")
            return values
        position = {name: i for i, name in enumerate(model_names)}
        unknown = [name for name in names if name not in position]
        if unknown:
            raise SemantoksError(
                f"{len(unknown)} column(s) are not parcels of the model's atlas {self.data_identity['atlas_id']} "
                f"(first: {unknown[0]!r}); rename them to the model's parcel names (model.parcel_names).")
        if len(set(names)) != len(names):
            duplicate = next(name for name in names if names.count(name) > 1)
            raise SemantoksError(f"parcel {duplicate!r} appears twice in the time series; keep one column per parcel.")
        aligned = np.full((values.shape[0], len(model_names)), np.nan)
        aligned[:, [position[name] for name in names]] = values
        missing = len(model_names) - len(names)
        if missing:
            log.warning("%d of the model's %d parcels are missing from the time series; they are marked invalid",
                        missing, len(model_names))
        return aligned

    def _check_length(self, data, tr):
        try:
            tr = float(tr)
        except (TypeError, ValueError):
            tr = float("nan")
        if not tr > 0:
            raise SemantoksError("tr must be the scan's repetition time in seconds (a positive number); pass tr=.")
        prep = Preprocessing.from_config(self.data_identity["preprocessing"])
        if not is_usable(data.shape[0], tr, prep):
            raise SemantoksError(
                f"the scan has {data.shape[0]} frames at TR {tr:g} s, shorter than one {prep.patch_len}-TR patch "
                f"at the model's TR {prep.model_tr:g} s; use scans of at least {prep.patch_len * prep.model_tr:g} s.")


def load_model(path, device="cpu"):
    """A SemantoksModel from a `checkpoint.pt` (its teacher) or a folder written by `semantoks export`."""
    return SemantoksModel(load_scan_encoder(path, device))


def _names_and_values(timeseries, parcel_names):
    """(column names or None, [frames, columns] float64) of a DataFrame or an array."""
    if hasattr(timeseries, "columns"):
        if parcel_names is not None:
            raise SemantoksError("parcel_names= is for arrays; a DataFrame's columns already name its parcels.")
        frame = timeseries.drop(columns=[c for c in _NON_PARCEL_COLUMNS if c in timeseries.columns])
        from pandas.api.types import is_numeric_dtype

        text = [c for c in frame.columns if not is_numeric_dtype(frame[c])]
        if text:
            # a table saved parcels x frames reads as one text column of parcel names
            raise SemantoksError(
                f"column {text[0]!r} holds text (first: {str(frame[text[0]].iloc[0])!r}), not numbers; give a table "
                "of frames x parcels with parcel names as column headers (is it transposed?).")
        names, values = [str(c) for c in frame.columns], frame.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(timeseries, dtype=np.float64)
        names = None if parcel_names is None else [str(n) for n in parcel_names]
    if values.ndim != 2:
        raise SemantoksError(f"the time series must be 2-D [frames, parcels], got shape {values.shape}.")
    if names is not None and len(names) != values.shape[1]:
        raise SemantoksError(f"{len(names)} parcel names for {values.shape[1]} columns; give one name per column.")
    return names, values


def embed_timeseries_files(model_path, paths, out_parquet, tr=None, n_crops=8):
    """Embed per-run time-series files (this project's per-run Parquet, or TSV/CSV with parcel-name headers).

    The TR comes from a per-run Parquet's own record, else from `tr`; columns are matched to the model's
    parcels by name. Writes `out_parquet` (the probes' feature layout) only after every file was read.
    """
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
