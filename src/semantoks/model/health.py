"""Training health: has the encoder moved away from its random init, and has it collapsed?

`measure_health` compares the current encoder with its step-0 copy on one fixed held-out batch;
`verdict` turns those numbers into one of three plain labels. docs/model.md ("Training health")
explains each metric and threshold.
"""

import torch

from semantoks.model.backbone import scan_features

LEARNING = "learning"
INDISTINGUISHABLE = "indistinguishable from its random init"
COLLAPSED = "collapsed"

# Linear CKA with the step-0 embeddings above this: the representation is still the random one.
INDISTINGUISHABLE_CKA = 0.95
# RankMe below this: the embeddings span about one direction (dimensional collapse).
COLLAPSED_RANKME = 2.0
# Mean pairwise cosine of (uncentred) CLS or token embeddings above this: every input maps to the same vector.
COLLAPSED_COSINE = 0.99
# Tokens compared for token_cosine: enough for a stable mean, few enough to stay cheap.
MAX_TOKENS = 4096
HEALTH_KEYS = ("drift_r", "cka_init", "rankme", "token_cosine", "cls_cosine")


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


def verdict(metrics):
    """(label, reason) for a dict of health metrics: indistinguishable first, then collapsed, else learning.

    The CKA test comes first: a model still equal to its init is "indistinguishable" even if the
    random init itself has similar outputs for every input.
    """
    cka = float(metrics["cka_init"])
    if cka > INDISTINGUISHABLE_CKA:
        return INDISTINGUISHABLE, f"linear CKA with the step-0 embeddings is {cka:.3f} (> {INDISTINGUISHABLE_CKA})"
    rank = float(metrics["rankme"])
    if rank < COLLAPSED_RANKME:
        return COLLAPSED, f"effective rank (RankMe) of the embeddings is {rank:.2f} (< {COLLAPSED_RANKME})"
    for key, name in (("cls_cosine", "CLS"), ("token_cosine", "token")):
        cosine = float(metrics[key])
        if cosine > COLLAPSED_COSINE:
            return COLLAPSED, f"mean pairwise cosine of {name} embeddings is {cosine:.3f} (> {COLLAPSED_COSINE})"
    return LEARNING, (f"linear CKA with the step-0 embeddings is {cka:.3f} (<= {INDISTINGUISHABLE_CKA}), "
                      f"effective rank {rank:.1f}, CLS cosine {float(metrics['cls_cosine']):.3f}")
