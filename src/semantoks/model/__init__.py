"""Network-token encoder, self-distillation losses, masking and schedules.

Token order everywhere is network-major: token n * K + k = network n at time patch k.
"""

from semantoks.model.backbone import NetworkTokenEncoder
from semantoks.model.heads import ProjectionHead
from semantoks.model.losses import CodingRateLoss, coding_rate, masked_token_loss, temporal_regularizer_loss
from semantoks.model.masking import sample_mask_ratios, slice_mask
from semantoks.model.meta_arch import DistillationNetwork, SelfDistillationModel
from semantoks.model.presets import PRESETS, build_encoder, resolve_encoder_config
from semantoks.model.schedules import build_schedules
from semantoks.model.tokenizer import NetworkTokenizer

__all__ = [
    "CodingRateLoss", "DistillationNetwork", "NetworkTokenEncoder", "NetworkTokenizer", "PRESETS",
    "ProjectionHead", "SelfDistillationModel", "build_encoder", "build_schedules", "coding_rate",
    "masked_token_loss", "resolve_encoder_config", "sample_mask_ratios", "slice_mask",
    "temporal_regularizer_loss",
]
