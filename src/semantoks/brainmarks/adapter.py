"""A semantoks model in Brainmarks' terms: a per-sample transform and a batch wrapper (torch only here).

Brainmarks samples hold `bold` [T, dim] z-scored per column, in one of its parcel spaces. The transform
puts the columns into the model's parcel order, applies the checkpoint's own preprocessing and cuts a
fixed number of crops so samples collate; the wrapper returns the probe feature as `cls_embeds` and the
network tokens as `patch_embeds`. The plugin module `brainmarks.models.semantoks` registers them.
"""

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from semantoks.errors import SemantoksError
from semantoks.model.backbone import scan_features
from semantoks.model.config import Preprocessing
from semantoks.model.data import crop, is_usable, preprocess_scan
from semantoks.model.encode import load_scan_encoder

log = logging.getLogger(__name__)

REORDER_TABLE = Path(__file__).with_name("schaefer400_17to7.tsv")
# Brainmarks space -> (number of columns, where its first 400 columns come from)
SPACES = {
    "schaefer400": (400, "17-network order"),
    "schaefer400_tians3": (450, "7-network order"),
    "schaefer400_tians3_buckner7": (457, "7-network order"),
}


@lru_cache(maxsize=1)
def schaefer400_17_to_7():
    """For each Schaefer-400 parcel in 17-network order, its 0-based position in 7-network order."""
    table = pd.read_csv(REORDER_TABLE, sep="\t")
    return table["index7"].to_numpy(dtype=np.int64) - 1


def column_positions(space, model_parcel_names, atlas_id):
    """Model parcel position for every column of `space` (-1: the model has no such parcel)."""
    if space not in SPACES:
        raise SemantoksError(f"Brainmarks space {space!r} is not supported; use one of {', '.join(SPACES)}.")
    paper_space = atlas_id == "BrainSemantoks457"
    if not (paper_space or str(atlas_id).startswith("Schaefer400x7")) or len(model_parcel_names) < 400:
        raise SemantoksError(f"the model's atlas is {atlas_id}; Brainmarks spaces need a model trained on "
                             "Schaefer400x7 (atlas.n_parcels: 400, atlas.n_networks: 7) or brainsemantoks457.")
    n_columns, order = SPACES[space]
    positions = np.full(n_columns, -1, dtype=np.int64)
    positions[:400] = schaefer400_17_to_7() if order == "17-network order" else np.arange(400)
    if paper_space and order == "7-network order":
        # the paper's space lists Tian S3 then Buckner-7 after the cortex, as Brainmarks' 450/457 spaces do
        positions[400:] = np.arange(400, n_columns)
    return positions


class SemantoksTransform:
    """Per sample: reorder to the model's parcels, the checkpoint's preprocessing, `n_crops` fixed crops."""

    def __init__(self, model, space, n_crops=4):
        self.model, self.space, self.n_crops = model, space, int(n_crops)
        self.prep = Preprocessing.from_config(model.data_identity["preprocessing"])
        self.n_parcels = len(model.data_identity["parcel_names"])
        self.positions = column_positions(space, model.data_identity["parcel_names"], model.data_identity["atlas_id"])
        if model.data_identity.get("strategy") not in (None, {}, "none"):
            log.warning("Brainmarks data are not confound-regressed, but this checkpoint was trained on data "
                        "denoised with %s; expect a domain shift", model.data_identity.get("strategy"))

    def __call__(self, sample):
        bold = np.asarray(torch.as_tensor(sample["bold"]).float().numpy(), dtype=np.float64)
        tr = float(sample["tr"])
        if bold.ndim != 2 or bold.shape[1] != len(self.positions):
            raise SemantoksError(f"Brainmarks sample has shape {tuple(bold.shape)} but space {self.space} has "
                                 f"{len(self.positions)} columns; pass data of that space.")
        if not is_usable(bold.shape[0], tr, self.prep):
            raise SemantoksError(
                f"a {bold.shape[0]}-frame sample at TR {tr:g} s is shorter than one {self.prep.patch_len}-TR patch "
                f"at the model's TR {self.prep.model_tr:g} s; semantoks needs at least "
                f"{self.prep.patch_len * self.prep.model_tr:g} s of data per sample.")
        data = np.full((bold.shape[0], self.n_parcels), np.nan)
        known = self.positions >= 0
        data[:, self.positions[known]] = bold[:, known]
        scan = preprocess_scan(data, tr, self.prep)
        last = max(0, scan.n_frames - self.prep.window)
        # repeats allowed: every sample gets exactly n_crops crops, so default_collate can stack them
        starts = np.round(np.linspace(0, last, self.n_crops)).astype(int)
        crops = [crop(scan.values, int(start), self.prep) for start in starts]
        out = {key: value for key, value in sample.items() if key not in ("bold", "mean", "std")}
        out["x"] = torch.from_numpy(np.stack([c[0] for c in crops]))
        out["patch_valid"] = torch.from_numpy(np.stack([c[1] for c in crops]))
        out["parcel_valid"] = torch.from_numpy(scan.parcel_valid.copy())
        return out


class SemantoksWrapper(torch.nn.Module):
    """Batch -> (cls_embeds [B,1,2D]: CLS ⊕ mean valid tokens averaged over crops, None, patch_embeds [B,L,D])."""

    def __init__(self, model, space):
        super().__init__()
        self.__space__ = space
        self.encoder = model.encoder

    @torch.no_grad()
    def forward(self, batch):
        x, patch_valid = batch["x"], batch["patch_valid"]
        n_batch, n_crops = x.shape[:2]
        parcel_valid = batch["parcel_valid"][:, None].expand(-1, n_crops, -1).flatten(0, 1)
        out = self.encoder(x.flatten(0, 1).float(), parcel_valid, patch_valid.flatten(0, 1))
        feature = scan_features(out).reshape(n_batch, n_crops, -1).mean(1)
        weights = out["token_valid"].to(out["tokens"].dtype)[..., None]
        tokens = (out["tokens"] * weights).reshape(n_batch, n_crops, *out["tokens"].shape[1:]).sum(1)
        counts = weights.reshape(n_batch, n_crops, -1, 1).sum(1).clamp(min=1.0)
        return feature[:, None], None, tokens / counts


def build(checkpoint=None, space="schaefer400", n_crops=4):
    """(transform, wrapper) for a checkpoint.pt or exported folder; the plugin's registration calls this."""
    import os

    path = checkpoint or os.environ.get("SEMANTOKS_MODEL")
    if not path:
        raise SemantoksError("semantoks needs a model: pass --overrides model_kwargs.checkpoint=PATH or set "
                             "SEMANTOKS_MODEL to a checkpoint.pt or an exported folder.")
    model = load_scan_encoder(path)
    return SemantoksTransform(model, space, n_crops), SemantoksWrapper(model, space)
