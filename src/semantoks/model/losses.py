"""Distillation losses on L2-normalised projections: coding rate (CLS), masked tokens, TTR."""

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


def coding_rate(features, eps=0.05):
    """R(Z) = 1/2 logdet(I + d / (n eps^2) Z^T Z) for Z [n, d], in float32 with autocast off."""
    with torch.autocast(device_type=features.device.type, enabled=False):
        z = features.float()
        n, d = z.shape
        covariance = torch.eye(d, device=z.device) + (d / (n * eps * eps)) * (z.T @ z)
        factor, _ = torch.linalg.cholesky_ex(covariance)
        return torch.log(torch.diagonal(factor)).sum()


def cosine_distance(a, b):
    """1 - cos for unit vectors (= half the squared Euclidean distance)."""
    return 1.0 - (a * b).sum(dim=-1)


def _gather_batch(z):
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return torch.cat(dist_fn.all_gather(z.contiguous()), dim=0)
    return z


class CodingRateLoss(nn.Module):
    """SimDINO-style CLS loss: no prototypes, no centering.

    compression = mean over cross-view pairs (student view v, teacher view w != v) of 1 - cos.
    expansion = mean over views of R(student view) / d, the coding rate per output dimension
    (dividing by d makes its gradient per sample comparable to the compression term's).
    loss = compression - expansion_weight * expansion. Under DDP the coding rate is taken over
    the global batch (autograd all_gather).
    """

    def __init__(self, eps=0.05, expansion_weight=1.0, gather_distributed=True):
        super().__init__()
        self.eps = eps
        self.expansion_weight = expansion_weight
        self.gather_distributed = gather_distributed

    def expansion(self, student):
        """student [V, B, d] unit vectors -> mean over views of R / d."""
        rates = []
        for view in student:
            z = _gather_batch(view) if self.gather_distributed else view
            rates.append(coding_rate(z, self.eps) / z.shape[-1])
        return torch.stack(rates).mean()

    def forward(self, student, teacher):
        """student, teacher [V, B, d] unit vectors -> dict(loss, compression, expansion)."""
        n_views = student.shape[0]
        pairs = [cosine_distance(student[v], teacher[w]).mean()
                 for v in range(n_views) for w in range(n_views) if v != w]
        compression = torch.stack(pairs).mean()
        expansion = self.expansion(student)
        return {"loss": compression - self.expansion_weight * expansion,
                "compression": compression, "expansion": expansion}


def masked_token_loss(student_masked, teacher_masked):
    """Mean 1 - cos over the masked valid tokens; student and teacher see the same view.

    student_masked, teacher_masked [S, d] unit vectors: the projections of the same S tokens (the
    masked valid ones, gathered in the same order). Zero (still in the graph) when S is 0.
    """
    return cosine_distance(student_masked, teacher_masked).sum() / max(student_masked.shape[0], 1)


def temporal_regularizer_loss(student_networks, teacher_networks, network_valid):
    """Teacher-guided temporal regulariser on time-averaged network tokens, across views.

    student_networks, teacher_networks [V, B, N, d] unit vectors (projections of each network's
    time-averaged token); network_valid [V, B, N] bool. Mean over cross-view pairs of 1 - cos,
    averaged over networks valid in both views (and over the batch).
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
    return torch.stack(pair_losses).mean()
