"""Distillation losses on L2-normalised projections: coding rate (CLS), masked tokens, TTR."""

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

from semantoks.model.config import EXPANSION_MODES


def coding_rate(features, eps=0.05, scale=None):
    """R(Z) = 1/2 logdet(I + scale Z^T Z) for Z [n, d], scale d / (n eps^2) unless given; float32, autocast off."""
    with torch.autocast(device_type=features.device.type, enabled=False):
        z = features.float()
        n, d = z.shape
        scale = d / (n * eps * eps) if scale is None else scale
        covariance = torch.eye(d, device=z.device) + scale * (z.T @ z)
        factor, _ = torch.linalg.cholesky_ex(covariance)
        return torch.log(torch.diagonal(factor)).sum()


def reference_expansion(features, eps=0.05):
    """gamma * R(Z) with scale p / (m eps) and gamma = (p + m) / (p m), for Z [m, p] (the reference's form)."""
    m, p = features.shape
    return (p + m) / (p * m) * coding_rate(features, scale=p / (m * eps))


def cosine_distance(a, b):
    """1 - cos for unit vectors (= half the squared Euclidean distance)."""
    return 1.0 - (a * b).sum(dim=-1)


def _gather_batch(z):
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return torch.cat(dist_fn.all_gather(z.contiguous()), dim=0)
    return z


def expansion_term(student_views, teacher_views, mode="reference", eps=0.05, gather_distributed=True):
    """Mean over views of the coding-rate expansion; each view a [n, d] tensor (rows may differ by view).

    reference: gamma * R of (student + teacher) / 2 with scale p/(m eps); student: R(student) / d with
    d/(n eps^2). Under DDP with gather_distributed the rows are the global batch's (autograd all_gather).
    """
    if mode not in EXPANSION_MODES:
        raise ValueError(f"expansion mode {mode!r} is not one of {EXPANSION_MODES}")
    rates = []
    for student, teacher in zip(student_views, teacher_views):
        z = (student + teacher) / 2 if mode == "reference" else student
        z = _gather_batch(z) if gather_distributed else z
        rates.append(reference_expansion(z, eps) if mode == "reference" else coding_rate(z, eps) / z.shape[-1])
    return torch.stack(rates).mean()


class CodingRateLoss(nn.Module):
    """SimDINO-style CLS loss: no prototypes, no centering.

    compression = mean over cross-view pairs (student view v, teacher view w != v) of 1 - cos.
    expansion = `expansion_term` over the views (see EXPANSION_MODES).
    loss = compression - expansion_weight * expansion.
    """

    def __init__(self, eps=0.05, expansion_weight=1.0, gather_distributed=True, expansion="reference"):
        super().__init__()
        self.eps = eps
        self.expansion_weight = expansion_weight
        self.gather_distributed = gather_distributed
        self.mode = expansion

    def forward(self, student, teacher):
        """student, teacher [V, B, d] unit vectors -> dict(loss, compression, expansion)."""
        n_views = student.shape[0]
        pairs = [cosine_distance(student[v], teacher[w]).mean()
                 for v in range(n_views) for w in range(n_views) if v != w]
        compression = torch.stack(pairs).mean()
        expansion = expansion_term(student, teacher, self.mode, self.eps, self.gather_distributed)
        return {"loss": compression - self.expansion_weight * expansion,
                "compression": compression, "expansion": expansion}


def masked_token_loss(student_masked, teacher_masked):
    """Mean 1 - cos over the masked valid tokens; student and teacher see the same view.

    student_masked, teacher_masked [S, d] unit vectors: the projections of the same S tokens (the
    masked valid ones, gathered in the same order). Zero (still in the graph) when S is 0.
    """
    return cosine_distance(student_masked, teacher_masked).sum() / max(student_masked.shape[0], 1)


def temporal_regularizer_loss(student_networks, teacher_networks, network_valid, expansion=None, eps=0.05,
                              gather_distributed=True):
    """Teacher-guided temporal regulariser on time-averaged network tokens, across views.

    student_networks, teacher_networks [V, B, N, d] unit vectors (projections of each network's
    time-averaged token); network_valid [V, B, N] bool. Compression: mean over cross-view pairs of
    1 - cos, averaged over networks valid in both views (and over the batch). `expansion` (an
    EXPANSION_MODES value, or None for compression only) subtracts the coding-rate expansion over each
    view's valid network tokens (the B*N rows), as the reference's TTR does.
    """
    n_views = student_networks.shape[0]
    pair_losses = []
    for v in range(n_views):
        for w in range(n_views):
            if v == w:
                continue
            both = (network_valid[v] & network_valid[w]).to(student_networks.dtype)
            distance = cosine_distance(student_networks[v], teacher_networks[w])
            pair_losses.append((distance * both).sum() / both.sum().clamp(min=1.0))
    compression = torch.stack(pair_losses).mean()
    if expansion is None:
        return compression
    students = [student_networks[v][network_valid[v]] for v in range(n_views)]
    teachers = [teacher_networks[v][network_valid[v]] for v in range(n_views)]
    return compression - expansion_term(students, teachers, expansion, eps, gather_distributed)
