"""Per-iteration schedules (numpy arrays computed once, indexed by the global step)."""

import math

import numpy as np

from semantoks.errors import SemantoksError

TTR_MODES = ("curriculum", "off", "always")

SCHEDULE_DEFAULTS = {
    "batch_size": 256,
    "base_lr": 7e-4,
    "min_lr": 1e-6,
    "warmup_fraction": 0.1,
    "weight_decay": 0.05,
    "weight_decay_end": 0.3,
    "momentum": 0.99,
    "momentum_end": 1.0,
    "ttr_weight": 0.5,
    "ttr_mode": "curriculum",
    "ttr_fraction": 0.05,
    "mtm_weight": 1.0,
}


def cosine_schedule(start, end, total_steps, warmup_steps=0, warmup_start=0.0):
    """Linear warmup from warmup_start to start, then half-cosine from start to end (last step = end)."""
    warmup_steps = min(int(warmup_steps), int(total_steps))
    warmup = warmup_start + (start - warmup_start) * np.arange(warmup_steps) / max(warmup_steps, 1)
    decay_steps = int(total_steps) - warmup_steps
    progress = np.arange(decay_steps) / max(decay_steps - 1, 1)
    decay = end + 0.5 * (start - end) * (1.0 + np.cos(math.pi * progress))
    return np.concatenate([warmup, decay]).astype(np.float64)


def ttr_schedule(weight, mode, fraction, total_steps):
    """TTR weight: 'curriculum' cosine-decays weight -> 0 over the first `fraction` of steps, then 0."""
    if mode == "off":
        return np.zeros(total_steps)
    if mode == "always":
        return np.full(total_steps, float(weight))
    decay_steps = min(max(int(math.ceil(fraction * total_steps)), 1), total_steps)
    progress = np.arange(decay_steps) / decay_steps
    curriculum = 0.5 * float(weight) * (1.0 + np.cos(math.pi * progress))
    return np.concatenate([curriculum, np.zeros(total_steps - decay_steps)])


def build_schedules(cfg, total_steps):
    """dict(lr, weight_decay, momentum, ttr, mtm) -> float64 arrays of length total_steps.

    Peak lr = base_lr * batch_size / 256 (batch_size = global batch), reached after the warmup
    fraction, then cosine to min_lr; weight decay and teacher momentum follow a cosine without
    warmup. Unknown keys in cfg are ignored so the trainer can pass its whole section.
    """
    settings = {**SCHEDULE_DEFAULTS, **{k: v for k, v in (cfg or {}).items() if k in SCHEDULE_DEFAULTS}}
    if settings["ttr_mode"] not in TTR_MODES:
        raise SemantoksError(f"config.yaml: ttr_mode '{settings['ttr_mode']}' is not one of "
                             f"{', '.join(TTR_MODES)}; pick one of them.")
    total_steps = int(total_steps)
    if total_steps < 1:
        raise SemantoksError("config.yaml: the training run has no steps; raise the number of epochs or steps.")
    peak_lr = settings["base_lr"] * settings["batch_size"] / 256.0
    warmup_steps = int(round(settings["warmup_fraction"] * total_steps))
    return {
        "lr": cosine_schedule(peak_lr, settings["min_lr"], total_steps, warmup_steps),
        "weight_decay": cosine_schedule(settings["weight_decay"], settings["weight_decay_end"], total_steps),
        "momentum": cosine_schedule(settings["momentum"], settings["momentum_end"], total_steps),
        "ttr": ttr_schedule(settings["ttr_weight"], settings["ttr_mode"], settings["ttr_fraction"], total_steps),
        "mtm": np.full(total_steps, float(settings["mtm_weight"])),
    }
