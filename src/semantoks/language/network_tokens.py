"""One token per network and scan from the frozen teacher, through the embed stage's crop-averaging path."""

import numpy as np
import torch

from semantoks.dataset import iter_scans, read_atlas_metadata
from semantoks.embed import embed_scans
from semantoks.errors import SemantoksError
from semantoks.features.table import read_feature_table, write_feature_table
from semantoks.model.checkpoint import check_identity, checkpoint_sha256, load_encoder
from semantoks.model.data import scan_records
from semantoks.model.distributed import resolve_device


class NetworkTokensScanEncoder:
    """A ScanEncoder (semantoks.embed) whose features are each network's tokens averaged over valid patches.

    Features are [B, n_networks * dim], network-major; a network without valid parcels is a zero vector.
    """

    def __init__(self, encoder, identity, device):
        self.encoder = encoder.to(device).eval().requires_grad_(False)
        self.data_identity = identity
        self.device = torch.device(device)
        self.n_networks, self.dim = encoder.n_networks, encoder.dim
        self.feature_dim = self.n_networks * self.dim

    @torch.no_grad()
    def embed(self, batch):
        out = self.encoder(batch["x"], batch["parcel_valid"], batch["patch_valid"])
        batch_size = out["tokens"].shape[0]
        tokens = out["tokens"].reshape(batch_size, self.n_networks, -1, self.dim)
        weights = out["token_valid"].reshape(batch_size, self.n_networks, -1, 1).to(tokens.dtype)
        mean = (tokens * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1.0)
        return mean.flatten(1).float()


def network_token_features(checkpoint, dataset_root, atlas_id, cohorts, out_parquet, n_crops=8, batch_size=64,
                           device="auto"):
    """Write the per-network tokens of every included scan in the embeddings layout; returns (keys, tokens)."""
    metadata = read_atlas_metadata(dataset_root, atlas_id)
    encoder, identity = load_encoder(checkpoint, which="teacher")
    check_identity(identity, metadata, f"{dataset_root} (atlas {atlas_id})", checkpoint=checkpoint, cohorts=cohorts)
    scan_encoder = NetworkTokensScanEncoder(encoder, identity, resolve_device(device))
    keys, features = embed_scans(scan_encoder, scan_records(iter_scans(dataset_root, atlas_id, cohorts)),
                                 n_crops, batch_size)
    record = {"checkpoint_sha256": checkpoint_sha256(checkpoint), "atlas_id": atlas_id,
              "feature": "teacher network tokens averaged over valid patches and crops",
              "networks": list(identity["networks"]), "n_networks": scan_encoder.n_networks,
              "token_dim": scan_encoder.dim, "n_crops": int(n_crops)}
    write_feature_table(out_parquet, keys, features, record)
    return keys, features.reshape(len(keys), scan_encoder.n_networks, scan_encoder.dim)


def read_network_tokens(path):
    """(keys DataFrame, tokens float32 [n_scans, n_networks, dim], record) of a network-token file."""
    frame, tokens, record = read_feature_table(path)
    if "n_networks" not in record:
        raise SemantoksError(f"{path}: not a network-token file; rerun the align stage's token extraction.")
    tokens = tokens.astype(np.float32)
    return frame, tokens.reshape(len(frame), record["n_networks"], record["token_dim"]), record
