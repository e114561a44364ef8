"""The embed stage: every included scan of a dataset through a frozen encoder (model.encode), one Parquet table."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from semantoks.atomic import atomic_path
from semantoks.dataset.keys import KEY_COLUMNS
from semantoks.model.checkpoint import build_encoder_from, check_identity, data_identity
from semantoks.model.data import scan_records
from semantoks.model.distributed import resolve_device
from semantoks.model.encode import NetworkTokenScanEncoder, embed_scans, load_scan_encoder

METADATA_KEY = b"semantoks"


def random_init_encoder(config, atlas_metadata, cohorts, seed, source):
    """(encoder, data_identity) of the architecture in a pretrain config, initialised from `seed`."""
    from semantoks.model.config import resolve_pretrain_config

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
        scan_encoder = NetworkTokenScanEncoder(encoder, identity, resolve_device(device))
        provenance = {"checkpoint_sha256": "random-init", "seed": int(seed)}
    else:
        # a checkpoint.pt or a folder written by `semantoks export`
        scan_encoder = load_scan_encoder(checkpoint_path, resolve_device(device))
        identity = scan_encoder.data_identity
        check_identity(identity, metadata, f"{dataset_root} (atlas {atlas_id})", checkpoint=checkpoint_path,
                       cohorts=cohorts, allow_strategy_mismatch=allow_strategy_mismatch)
        provenance = {"checkpoint_sha256": scan_encoder.sha256, "seed": None}
    keys, features = embed_scans(scan_encoder, scan_records(iter_scans(dataset_root, atlas_id, cohorts)),
                                 n_crops, batch_size)
    record = {**provenance, "atlas_id": atlas_id, "preprocessing": identity["preprocessing"],
              "feature": "teacher cls + mean of valid network tokens", "n_crops": int(n_crops),
              "embedding_dim": int(scan_encoder.feature_dim), "cohorts": sorted(keys["cohort"].unique().tolist())}
    write_embeddings(out_parquet, keys, features, record)
    frame = keys.assign(embedding=list(features))
    frame.attrs["semantoks"] = record
    return frame


def write_embeddings(path, keys, features, record):
    """The embeddings Parquet of docs/design.md: key columns + fixed_size_list<float32> `embedding`."""
    dim = features.shape[1]
    # pandas turns a missing session into NaN; Parquet keeps it as null
    columns = {name: pa.array(keys[name].tolist(), type=pa.string(), from_pandas=True) for name in KEY_COLUMNS}
    flat = pa.array(np.ascontiguousarray(features, dtype=np.float32).ravel(), type=pa.float32())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim)
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(record).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_embeddings(path):
    """(DataFrame with key columns and `embedding` arrays, metadata record) of an embeddings Parquet."""
    table = pq.read_table(path)
    record = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    frame = table.drop(["embedding"]).to_pandas()
    dim = table.schema.field("embedding").type.list_size
    values = table.column("embedding").combine_chunks().values.to_numpy(zero_copy_only=False)
    frame["embedding"] = list(values.reshape(-1, dim))
    return frame, record
