"""Per-iteration schedules (numpy arrays computed once, indexed by the global step)."""

import math

import numpy as np

from semantoks.errors import SemantoksError

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


def build_schedules(schedule, batch_size, total_steps):
    """dict(lr, weight_decay, momentum, ttr, mtm) -> float64 arrays of length total_steps.

    `schedule` is a ScheduleConfig; `batch_size` the global batch. Peak lr = base_lr * batch_size / 256,
    reached after the warm-up fraction, then cosine to min_lr; weight decay and teacher momentum
    follow a cosine without warm-up.
    """
    total_steps = int(total_steps)
    if total_steps < 1:
        raise SemantoksError("config.yaml: the training run has no steps; raise pretrain steps.")
    peak_lr = schedule.base_lr * batch_size / 256.0
    warmup_steps = int(round(schedule.warmup_fraction * total_steps))
    return {
        "lr": cosine_schedule(peak_lr, schedule.min_lr, total_steps, warmup_steps),
        "weight_decay": cosine_schedule(schedule.weight_decay, schedule.weight_decay_end, total_steps),
        "momentum": cosine_schedule(schedule.momentum, schedule.momentum_end, total_steps),
        "ttr": ttr_schedule(schedule.ttr_weight, schedule.ttr, schedule.ttr_fraction, total_steps),
        "mtm": np.full(total_steps, float(schedule.mtm_weight)),
    }
