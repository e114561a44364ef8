"""Student/teacher self-distillation: composes encoder, heads, masking and losses."""

import copy

import torch
from torch import nn

from semantoks.model.heads import ProjectionHead
from semantoks.model.losses import CodingRateLoss, masked_token_loss, temporal_regularizer_loss
from semantoks.model.masking import exclusive_slice_mask, sample_mask_ratios, slice_mask
from semantoks.model.config import LossConfig
from semantoks.model.presets import as_encoder_config, build_encoder

NO_DECAY_NAMES = ("cls_token", "mask_token", "network_embedding")


class DistillationNetwork(nn.Module):
    """Encoder + projection heads: one module so the trainer can wrap the student in DDP.

    forward -> dict of unit vectors: cls [B, d], tokens and networks [B, N, d] (each network's
    token averaged over its valid patches, then projected), plus token_valid [B, N*K] and
    network_valid [B, N]. tokens is [B, N*K, d], or, given `project_tokens` ([B, N*K] bool), only
    those tokens' projections [S, d] in row-major order: the masked-token loss reads only masked
    tokens, so only they go through the head (as DINOv2's iBOT head). One head is shared by CLS,
    patch and network tokens (as DINOv2's default) unless `separate_patch_head`.
    """

    def __init__(self, encoder, out_dim=128, head_hidden=2048, separate_patch_head=False):
        super().__init__()
        self.encoder = encoder
        self.cls_head = ProjectionHead(encoder.dim, head_hidden, out_dim)
        self.patch_head = ProjectionHead(encoder.dim, head_hidden, out_dim) if separate_patch_head else None

    def forward(self, x, parcel_valid=None, patch_valid=None, token_mask=None, project_tokens=None):
        out = self.encoder(x, parcel_valid, patch_valid, token_mask)
        patch_head = self.patch_head if self.patch_head is not None else self.cls_head
        batch, n_networks = x.shape[0], self.encoder.n_networks
        tokens = out["tokens"].reshape(batch, n_networks, -1, self.encoder.dim)
        weights = out["token_valid"].reshape(batch, n_networks, -1).to(tokens.dtype)
        network_tokens = (tokens * weights[..., None]).sum(dim=2) / weights.sum(dim=2, keepdim=True).clamp(min=1.0)
        return {
            "cls": self.cls_head(out["cls"]),
            "tokens": patch_head(out["tokens"] if project_tokens is None else out["tokens"][project_tokens]),
            "networks": patch_head(network_tokens),
            "token_valid": out["token_valid"],
            "network_valid": weights.sum(dim=2) > 0,
        }


def _unwrap(module):
    """The DistillationNetwork inside DDP(...) and/or torch.compile(...) wrappers."""
    while isinstance(module, nn.Module) and not isinstance(module, DistillationNetwork):
        module = module.module if hasattr(module, "module") else module._orig_mod
    return module


class SelfDistillationModel(nn.Module):
    """Student (trained) and EMA teacher over two temporal views of each scan.

    `student` is one DistillationNetwork; the trainer may replace it by DDP(student). The teacher
    is a frozen deep copy, always in eval mode, updated only by `update_teacher`.
    """

    def __init__(self, encoder_cfg, loss_cfg, parcel_network, n_networks, window=None, patch_len=None):
        super().__init__()
        self.encoder_config = as_encoder_config(encoder_cfg)
        self.loss_config = loss_cfg if isinstance(loss_cfg, LossConfig) else LossConfig(**dict(loss_cfg or {}))
        encoder = build_encoder(encoder_cfg, parcel_network, n_networks, window, patch_len)
        self.student = DistillationNetwork(encoder, self.loss_config.out_dim, self.loss_config.head_hidden,
                                           self.loss_config.separate_patch_head)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.cls_loss = CodingRateLoss(self.loss_config.eps, self.loss_config.expansion_weight,
                                       self.loss_config.gather_distributed, self.loss_config.expansion)

    @property
    def student_module(self):
        return _unwrap(self.student)

    @property
    def teacher_encoder(self):
        return self.teacher.encoder

    def train(self, mode=True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward_backward(self, batch, weights, apply_mask, generator, loss_scale=None):
        """Compute all losses on batch {views [2,B,P,T], parcel_valid [2,B,P], patch_valid [2,B,K]}, backprop.

        weights: dict(ttr=float, mtm=float) for this step. apply_mask: slice-mask the student's
        tokens (loss config `masker`: "exclusive" a time block or whole networks per view; "mixed" slices
        to a ratio ~ U[mask_ratio_min, mask_ratio_max] per sample), drawn from `generator`.
        loss_scale: multiplies the loss before backward (fp16 GradScaler.get_scale()); None for bf16/fp32.
        Returns unscaled floats: total, compression, expansion, mtm, ttr.
        """
        views = batch["views"]
        n_views, batch_size = views.shape[:2]
        x = views.reshape(n_views * batch_size, *views.shape[2:])
        parcel_valid = batch["parcel_valid"].reshape(n_views * batch_size, -1)
        patch_valid = batch["patch_valid"].reshape(n_views * batch_size, -1)

        encoder = self.student_module.encoder
        token_valid = encoder.token_validity(parcel_valid, patch_valid)
        n_patches = token_valid.shape[1] // encoder.n_networks
        if apply_mask and self.loss_config.masker == "exclusive":
            token_mask = exclusive_slice_mask(token_valid, encoder.n_networks, n_patches, generator)
        elif apply_mask:
            ratios = sample_mask_ratios(token_valid.shape[0], generator, self.loss_config.mask_ratio_min,
                                        self.loss_config.mask_ratio_max)
            token_mask = slice_mask(token_valid, encoder.n_networks, n_patches, ratios.to(token_valid.device), generator)
        else:
            # An all-False mask keeps the mask token in the graph, so DDP sees every parameter used.
            token_mask = torch.zeros_like(token_valid)
        # slice_mask only masks valid tokens: these are the tokens the masked-token loss reads
        with torch.no_grad():
            teacher = self.teacher(x, parcel_valid, patch_valid, project_tokens=token_mask)
        student = self.student(x, parcel_valid, patch_valid, token_mask, project_tokens=token_mask)

        def by_view(t):
            return t.reshape(n_views, batch_size, *t.shape[1:])

        cls_terms = self.cls_loss(by_view(student["cls"]), by_view(teacher["cls"]))
        mtm = masked_token_loss(student["tokens"], teacher["tokens"])
        loss_cfg = self.loss_config
        ttr = temporal_regularizer_loss(by_view(student["networks"]), by_view(teacher["networks"]),
                                        by_view(teacher["network_valid"]),
                                        loss_cfg.expansion if loss_cfg.ttr_expansion else None, loss_cfg.eps,
                                        loss_cfg.gather_distributed)
        total = cls_terms["loss"] + float(weights.get("mtm", 0.0)) * mtm + float(weights.get("ttr", 0.0)) * ttr
        with torch.autocast(device_type=x.device.type, enabled=False):
            (total if loss_scale is None else total * loss_scale).backward()
        terms = torch.stack([total, cls_terms["compression"], cls_terms["expansion"], mtm, ttr]).detach()
        return dict(zip(("total", "compression", "expansion", "mtm", "ttr"), terms.float().cpu().tolist()))

    @torch.no_grad()
    def update_teacher(self, momentum):
        """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter."""
        teacher_params = list(self.teacher.parameters())
        student_params = [p.detach() for p in self.student_module.parameters()]
        momentum = float(momentum)
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)

    def param_groups(self, weight_decay):
        """AdamW groups for the student: no decay on norms, biases, embeddings, tokens, LayerScale.

        Each group carries `wd_multiplier` (1 or 0): set group weight_decay = schedule * multiplier.
        """
        decay, no_decay = [], []
        for name, parameter in self.student_module.named_parameters():
            if not parameter.requires_grad:
                continue
            skip = parameter.ndim < 2 or name.split(".")[-1] in NO_DECAY_NAMES
            (no_decay if skip else decay).append(parameter)
        return [
            {"params": decay, "weight_decay": weight_decay, "wd_multiplier": 1.0},
            {"params": no_decay, "weight_decay": 0.0, "wd_multiplier": 0.0},
        ]
