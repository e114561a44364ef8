"""The embed stage: every included scan of a dataset through a frozen encoder (model.encode), one Parquet table."""

import torch

from semantoks.features.table import write_feature_table
from semantoks.model.checkpoint import build_encoder_from, check_identity, data_identity
from semantoks.model.data import scan_records
from semantoks.model.distributed import resolve_device
from semantoks.model.encode import NetworkTokenScanEncoder, embed_scans, load_scan_encoder


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
    write_feature_table(out_parquet, keys, features, record)
    frame = keys.assign(embedding=list(features))
    frame.attrs["semantoks"] = record
    return frame


