"""Encoder size presets and `build_encoder`."""

from semantoks.errors import SemantoksError
from semantoks.model.backbone import NetworkTokenEncoder

ENCODER_DEFAULTS = {
    "mlp_ratio": 4.0,
    "layerscale_init": 0.1,
    "drop_path": 0.0,
    "short_kernel": 3,
    "long_kernels": (5, 9, 15),
    "window": 100,
    "patch_len": 20,
}

PRESETS = {
    "tiny": {"dim": 64, "depth": 2, "heads": 4},
    "small": {"dim": 384, "depth": 6, "heads": 6, "drop_path": 0.1},
    "base": {"dim": 768, "depth": 8, "heads": 12, "drop_path": 0.1},
}


def resolve_encoder_config(preset_or_dict, window=None, patch_len=None):
    """Full encoder config: a preset name, or a dict with an optional `preset` plus overrides."""
    config = {"preset": preset_or_dict} if isinstance(preset_or_dict, str) else dict(preset_or_dict)
    name = config.pop("preset", None)
    if name is not None and name not in PRESETS:
        raise SemantoksError(f"config.yaml: unknown model preset '{name}'; use one of {', '.join(PRESETS)}.")
    resolved = {**ENCODER_DEFAULTS, **PRESETS.get(name, {}), **config}
    if window is not None:
        resolved["window"] = int(window)
    if patch_len is not None:
        resolved["patch_len"] = int(patch_len)
    unknown = set(resolved) - set(ENCODER_DEFAULTS) - {"dim", "depth", "heads"}
    missing = {"dim", "depth", "heads"} - set(resolved)
    if unknown or missing:
        raise SemantoksError(f"config.yaml: model encoder keys {sorted(unknown)} are unknown and {sorted(missing)} "
                             f"are missing; name a preset ({', '.join(PRESETS)}) or give dim, depth and heads.")
    if resolved["window"] % resolved["patch_len"]:
        raise SemantoksError(f"config.yaml: model window {resolved['window']} is not a multiple of patch length "
                             f"{resolved['patch_len']}; choose a window that the patch length divides.")
    if resolved["dim"] % resolved["heads"]:
        raise SemantoksError(f"config.yaml: model dim {resolved['dim']} is not divisible by heads "
                             f"{resolved['heads']}; change one of them.")
    resolved["long_kernels"] = list(resolved["long_kernels"])
    return {"preset": name, **resolved}


def build_encoder(preset_or_dict, parcel_network, n_networks, window=None, patch_len=None):
    """NetworkTokenEncoder from a preset name or (resolved) config dict; window/patch_len override it."""
    config = resolve_encoder_config(preset_or_dict, window, patch_len)
    config.pop("preset")
    config["long_kernels"] = tuple(config["long_kernels"])
    return NetworkTokenEncoder(parcel_network, n_networks, **config)
