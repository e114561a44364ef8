"""Network-token encoder, self-distillation losses, masking and schedules.

Token order everywhere is network-major: token n * K + k = network n at time patch k.
"""

from semantoks.lazy import lazy_names

# each public name and the submodule that defines it; loaded on first use, so model/config.py stays torch-free
_PUBLIC = {
    "CodingRateLoss": "losses",
    "DistillationNetwork": "meta_arch",
    "NetworkTokenEncoder": "backbone",
    "NetworkTokenizer": "tokenizer",
    "PRESETS": "presets",
    "ProjectionHead": "heads",
    "SelfDistillationModel": "meta_arch",
    "build_encoder": "presets",
    "build_schedules": "schedules",
    "coding_rate": "losses",
    "masked_token_loss": "losses",
    "resolve_encoder_config": "presets",
    "sample_mask_ratios": "masking",
    "slice_mask": "masking",
    "temporal_regularizer_loss": "losses",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
