"""`build_encoder`: a NetworkTokenEncoder from a preset name, an EncoderConfig or a dict of overrides."""

import dataclasses

from semantoks.model.backbone import NetworkTokenEncoder
from semantoks.model.config import PRESETS, EncoderConfig, Preprocessing, encoder_config

__all__ = ["PRESETS", "build_encoder", "as_encoder_config", "resolve_encoder_config"]


def as_encoder_config(value):
    """EncoderConfig from a preset name, an EncoderConfig, or a dict (optional `preset` plus overrides)."""
    if isinstance(value, EncoderConfig):
        return value
    if value is None or isinstance(value, str):
        return encoder_config(value or "tiny")
    overrides = {k: v for k, v in dict(value).items() if k not in ("preset", "window", "patch_len")}
    return encoder_config(dict(value).get("preset") or "tiny", overrides)


def resolve_encoder_config(value, window=None, patch_len=None):
    """The encoder settings as a plain dict with window and patch_len (for scripts and benchmarks)."""
    data = Preprocessing(window=int(window or Preprocessing.window), patch_len=int(patch_len or Preprocessing.patch_len))
    preset = value if isinstance(value, str) else (dict(value).get("preset") if isinstance(value, dict) else None)
    return {"preset": preset, **dataclasses.asdict(as_encoder_config(value)), "window": data.window,
            "patch_len": data.patch_len}


def build_encoder(value, parcel_network, n_networks, window=None, patch_len=None):
    """NetworkTokenEncoder of `value` (see as_encoder_config); window/patch_len default to a dict's own or 100/20."""
    given = dict(value) if isinstance(value, dict) else {}
    data = Preprocessing(window=int(window or given.get("window") or Preprocessing.window),
                         patch_len=int(patch_len or given.get("patch_len") or Preprocessing.patch_len))
    settings = dataclasses.asdict(as_encoder_config(value))
    return NetworkTokenEncoder(parcel_network, n_networks, window=data.window, patch_len=data.patch_len, **settings)
