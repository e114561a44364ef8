"""Training health: has the encoder moved away from its random init, and has it collapsed?

`measure_health` compares the current encoder with its step-0 copy on one fixed held-out batch;
`verdict` (semantoks.health_verdict, torch-free so the report can use it) turns those numbers into
one of three plain labels. docs/model.md ("Training health") explains each metric and threshold.
"""

import torch

from semantoks.health_verdict import (
    COLLAPSED, COLLAPSED_COSINE, COLLAPSED_RANKME, HEALTH_KEYS, INDISTINGUISHABLE, INDISTINGUISHABLE_CKA, LEARNING,
    verdict,
)
from semantoks.model.backbone import scan_features

__all__ = [
    "COLLAPSED", "COLLAPSED_COSINE", "COLLAPSED_RANKME", "HEALTH_KEYS", "INDISTINGUISHABLE", "INDISTINGUISHABLE_CKA",
    "LEARNING", "linear_cka", "mean_dimension_r", "mean_pairwise_cosine", "measure_health", "rankme", "verdict",
]

# Tokens compared for token_cosine: enough for a stable mean, few enough to stay cheap.
MAX_TOKENS = 4096


def linear_cka(x, y):
    """Linear centred kernel alignment of [n, f] and [n, g] (Kornblith et al. 2019); 0 if either is constant."""
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    scale = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / scale) if scale > 0 else 0.0


def rankme(z, eps=1e-7):
    """Effective rank of [n, f] embeddings (Garrido et al. 2023): exp(entropy of normalised singular values)."""
    singular = torch.linalg.svdvals(z.double())
    p = singular / singular.sum().clamp(min=1e-30) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def mean_pairwise_cosine(vectors):
    """Mean cosine over distinct pairs of rows of [n, d] (n >= 2), from the norm of the sum of unit vectors."""
    n = vectors.shape[0]
    units = torch.nn.functional.normalize(vectors.double(), dim=-1)
    total = units.sum(dim=0).square().sum()
    return float((total - (units.square().sum())) / (n * (n - 1)))


def mean_dimension_r(x, y):
    """Mean over feature dimensions of the Pearson r between x[:, j] and y[:, j]; constant dimensions count as 0."""
    x = x.double() - x.double().mean(dim=0)
    y = y.double() - y.double().mean(dim=0)
    denominator = x.norm(dim=0) * y.norm(dim=0)
    r = torch.where(denominator > 0, (x * y).sum(dim=0) / denominator.clamp(min=1e-300), torch.zeros_like(denominator))
    return float(r.mean())


@torch.no_grad()
def _outputs(encoder, batch):
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder(batch["x"], batch["parcel_valid"], batch["patch_valid"])
    finally:
        encoder.train(was_training)


def measure_health(encoder, initial_encoder, batch):
    """Health metrics of `encoder` against its step-0 copy on `batch` (x [B,P,T], parcel_valid, patch_valid).

    Both encoders run in eval mode without gradients (their mode is restored). Embeddings are the
    scan features the embed stage uses (CLS concatenated with the mean of valid tokens). Returns
    floats keyed by HEALTH_KEYS: drift_r, cka_init, rankme, token_cosine, cls_cosine.
    """
    out = _outputs(encoder, batch)
    features = scan_features(out)
    initial_features = scan_features(_outputs(initial_encoder, batch))
    tokens = out["tokens"][out["token_valid"]]
    if tokens.shape[0] > MAX_TOKENS:
        # evenly spaced, so the sample is the same at every step
        tokens = tokens[torch.linspace(0, tokens.shape[0] - 1, MAX_TOKENS, device=tokens.device).long()]
    return {
        "drift_r": mean_dimension_r(features, initial_features),
        "cka_init": linear_cka(features, initial_features),
        "rankme": rankme(features),
        "token_cosine": mean_pairwise_cosine(tokens) if tokens.shape[0] > 1 else float("nan"),
        "cls_cosine": mean_pairwise_cosine(out["cls"]),
    }
