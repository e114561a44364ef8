"""The pretraining loop: one readable loop over steps, resumable exactly from its checkpoints."""

import contextlib
import copy
import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from semantoks.atomic import write_text
from semantoks.errors import SemantoksError
from semantoks.model import distributed
from semantoks.model.augment import Augmentations, augment_views
from semantoks.model.checkpoint import (
    CHECKPOINT_NAME, data_identity, load_latest, parcel_network_ids, restore_rng_state, rng_state, save_checkpoint,
)
from semantoks.model.data import Preprocessing, open_pretraining_data, step_seed
from semantoks.model.logging import TrainingLog
from semantoks.model.meta_arch import SelfDistillationModel, resolve_loss_config
from semantoks.model.presets import resolve_encoder_config
from semantoks.model.schedules import SCHEDULE_DEFAULTS, build_schedules

log = logging.getLogger(__name__)

TRAIN_DEFAULTS = {
    "preset": "tiny", "model": {}, "loss": {}, "steps": 300, "batch_size": 32, "seed": 0,
    "model_tr": 2.0, "band_pass": [0.01, 0.1], "zscore": True, "window": 100, "patch_len": 20,
    "max_view_offset": 80, "filter_order": 2, "ttr": "curriculum",
    **{key: value for key, value in SCHEDULE_DEFAULTS.items() if key not in ("batch_size", "ttr_mode")},
    "augment": {}, "mask_mode": "alternate", "grad_clip": 1.0, "betas": [0.9, 0.999],
    "precision": "auto", "compile": False, "flash": False, "device": "auto",
    "checkpoint_every": 100, "log_every": 10, "stop_at_step": None,
    "data_source": "auto", "num_workers": 0, "shuffle_buffer": 256, "memory_limit_gb": 4.0,
    "cache_dtype": "float32",
}
# workflow-level keys of the config's pretrain section that the trainer does not use
IGNORED_KEYS = ("enabled", "cohorts", "gpus")
# keys a resumed run may change without changing what is computed
OPERATIONAL_KEYS = ("stop_at_step", "checkpoint_every", "log_every", "num_workers", "device", "compile", "flash",
                    "memory_limit_gb", "data_source")
MASK_MODES = ("alternate", "random", "always", "never")


def resolve_pretrain_config(cfg):
    """The trainer's full config from the `pretrain` section (`extra` merged in), defaults filled."""
    cfg = copy.deepcopy(dict(cfg or {}))
    cfg.update(cfg.pop("extra", None) or {})
    for key in IGNORED_KEYS:
        cfg.pop(key, None)
    unknown = sorted(set(cfg) - set(TRAIN_DEFAULTS))
    if unknown:
        raise SemantoksError(f"config.yaml: unknown pretrain setting(s) {', '.join(unknown)}; "
                             f"fix the spelling or remove them (known: {', '.join(sorted(TRAIN_DEFAULTS))}).")
    resolved = {**copy.deepcopy(TRAIN_DEFAULTS), **cfg}
    if resolved["mask_mode"] not in MASK_MODES:
        raise SemantoksError(f"config.yaml: pretrain mask_mode {resolved['mask_mode']!r} is not one of "
                             f"{', '.join(MASK_MODES)}; pick one of them.")
    model = {"preset": resolved["preset"], **{k: v for k, v in dict(resolved["model"]).items() if k != "preset"}}
    resolved["model"] = resolve_encoder_config(model, resolved["window"], resolved["patch_len"])
    resolved["loss"] = resolve_loss_config(resolved["loss"])
    resolved["augment"] = dataclasses.asdict(Augmentations.from_config(resolved["augment"]))
    resolved["augment"]["scale_range"] = list(resolved["augment"]["scale_range"])
    return resolved


def pretrain(cfg, dataset_root, atlas_id, cohorts, out_dir, resume=True):
    """Pretrain on `cohorts` of the dataset; returns the path of the last checkpoint written."""
    from semantoks.dataset import read_atlas_metadata

    cfg = resolve_pretrain_config(cfg)
    out_dir = Path(out_dir)
    context = distributed.init_distributed(cfg["device"])
    device = context.device
    try:
        prep = Preprocessing.from_config(cfg)
        identity = data_identity(read_atlas_metadata(dataset_root, atlas_id), prep.identity(), cohorts,
                                 source=dataset_root)
        data = open_pretraining_data(dataset_root, atlas_id, cohorts, prep, cfg["batch_size"], cfg["seed"],
                                     context.rank, context.world_size, cfg["data_source"], max(1, cfg["num_workers"]),
                                     cfg["shuffle_buffer"], cfg["memory_limit_gb"], cfg["cache_dtype"])
        return _train(cfg, context, device, identity, data, out_dir, resume)
    finally:
        distributed.shutdown(context)


def _train(cfg, context, device, identity, data, out_dir, resume):
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg["seed"])
    total_steps = int(cfg["steps"])
    schedule_cfg = {**cfg, "batch_size": cfg["batch_size"] * context.world_size, "ttr_mode": cfg["ttr"]}
    schedules = build_schedules(schedule_cfg, total_steps)
    model = SelfDistillationModel(cfg["model"], cfg["loss"], parcel_network_ids(identity), len(identity["networks"]))
    model.to(device)
    optimizer = torch.optim.AdamW(model.param_groups(float(schedules["weight_decay"][0])),
                                  lr=float(schedules["lr"][0]), betas=tuple(cfg["betas"]))
    precision = _precision(cfg["precision"], device)
    scaler = torch.amp.GradScaler("cuda") if precision == torch.float16 else None

    start_step = 0
    if resume:
        start_step = _resume(out_dir, cfg, model, optimizer, scaler, data, context)
    if context.enabled:
        model.student = torch.nn.parallel.DistributedDataParallel(
            model.student, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg["compile"]:
        model.student = torch.compile(model.student)
    if context.is_main:
        write_text(out_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    checkpoint_path = out_dir / CHECKPOINT_NAME
    end_step = min(total_steps, cfg["stop_at_step"] or total_steps)
    if start_step >= end_step:
        return checkpoint_path

    augmentations = Augmentations.from_config(cfg["augment"])
    tokens_per_scan = 2 * len(identity["networks"]) * (cfg["window"] // cfg["patch_len"])
    scans_per_step = cfg["batch_size"] * context.world_size
    training_log = TrainingLog(out_dir, start_step, total_steps, enabled=context.is_main)
    parameters = [p for p in model.student_module.parameters() if p.requires_grad]
    model.train()
    interval_start, interval_steps = time.perf_counter(), 0
    try:
        for step, batch in data.batches(start_step, end_step, cfg["num_workers"]):
            batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
            batch["views"] = augment_views(batch["views"], batch["parcel_valid"], batch["patch_valid"],
                                           augmentations, _generator(cfg["seed"], step, context.rank, 1, device))
            for group in optimizer.param_groups:
                group["lr"] = float(schedules["lr"][step])
                group["weight_decay"] = float(schedules["weight_decay"][step]) * group.get("wd_multiplier", 1.0)
            weights = {"ttr": float(schedules["ttr"][step]), "mtm": float(schedules["mtm"][step])}
            optimizer.zero_grad(set_to_none=True)
            extra = {"loss_scale": scaler.get_scale()} if scaler is not None else {}
            with _autocast(device, precision), _attention_backends(cfg["flash"]):
                terms = model.forward_backward(batch, weights, _apply_mask(cfg, step),
                                               _generator(cfg["seed"], step, context.rank, 2, device), **extra)
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, cfg["grad_clip"])
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            elif distributed.all_finite(terms["total"], context):
                optimizer.step()
            else:
                raise SemantoksError(f"{out_dir}: the pretraining loss became non-finite at step {step}; "
                                     "lower base_lr or use precision fp32.")
            model.update_teacher(float(schedules["momentum"][step]))
            done = step + 1
            interval_steps += 1
            training_log.advance()
            if done % cfg["log_every"] == 0 or done == end_step:
                terms = distributed.mean_over_ranks(terms, context)
                seconds = max(time.perf_counter() - interval_start, 1e-9)
                scans_per_s = scans_per_step * interval_steps / seconds
                training_log.record({
                    "step": done, "epoch": step // data.steps_per_epoch, **{f"loss_{k}": v for k, v in terms.items()},
                    "lr": float(schedules["lr"][step]), "weight_decay": float(schedules["weight_decay"][step]),
                    "momentum": float(schedules["momentum"][step]), "ttr_weight": weights["ttr"],
                    "mtm_weight": weights["mtm"], "grad_norm": float(grad_norm),
                    "scans_per_s": scans_per_s, "tokens_per_s": scans_per_s * tokens_per_scan})
                interval_start, interval_steps = time.perf_counter(), 0
            if done % cfg["checkpoint_every"] == 0 or done == end_step:
                if context.is_main:
                    save_checkpoint(checkpoint_path, _state(cfg, identity, model, optimizer, scaler, done, data,
                                                            context))
                    training_log.flush()
                distributed.barrier(context)
    finally:
        training_log.close()
    return checkpoint_path


def _state(cfg, identity, model, optimizer, scaler, step, data, context):
    epoch, index = divmod(step, data.steps_per_epoch)
    return {
        "student": model.student_module.state_dict(),
        "teacher": model.teacher.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "step": step,
        "epoch": epoch,
        "data_position": {"epoch": epoch, "index_in_epoch": index, "steps_per_epoch": data.steps_per_epoch,
                          "source": type(data).__name__, "world_size": context.world_size,
                          "streams_per_rank": getattr(data, "streams_per_rank", 1)},
        "rng": rng_state(),
        "config": cfg,
        "data_identity": identity,
    }


def _resume(out_dir, cfg, model, optimizer, scaler, data, context):
    """Load the newest usable checkpoint in out_dir (if any) and return the step to continue from."""
    found = load_latest(out_dir, map_location=context.device)
    if found is None:
        return 0
    state, path = found
    latest = Path(out_dir) / CHECKPOINT_NAME
    if path.name != CHECKPOINT_NAME and latest.exists() and context.is_main:
        # set the unreadable file aside, or the next save would make it the "previous good" one
        os.replace(latest, latest.with_name("checkpoint.corrupt.pt"))
    changed = sorted(key for key in set(cfg) | set(state["config"]) if key not in OPERATIONAL_KEYS
                     and _comparable(cfg.get(key)) != _comparable(state["config"].get(key)))
    if changed:
        raise SemantoksError(f"{path}: was trained with different settings ({', '.join(changed)}); "
                             "use a new output folder or pass resume=False to start again.")
    position = state.get("data_position", {})
    layout = (context.world_size, data.steps_per_epoch, getattr(data, "streams_per_rank", 1))
    if (position.get("world_size"), position.get("steps_per_epoch"), position.get("streams_per_rank")) != layout:
        log.warning("%s: resuming with a different number of processes or data shards; batches after step %d "
                    "differ from an uninterrupted run", path, state["step"])
    model.student_module.load_state_dict(state["student"])
    model.teacher.load_state_dict(state["teacher"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    if context.is_main:
        log.info("resuming from %s at step %d", path, state["step"])
    return int(state["step"])


def _comparable(value):
    return yaml.safe_dump(value, sort_keys=True)


def _precision(setting, device):
    if setting == "fp32" or device.type != "cuda":
        return torch.float32
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    if setting in ("fp16", "auto"):
        return torch.float16
    raise SemantoksError(f"config.yaml: pretrain precision {setting!r} is unknown; use auto, bf16, fp16 or fp32.")


def _autocast(device, precision):
    if precision == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision)


def _attention_backends(flash):
    """flash: prefer fused attention kernels (math only as a fallback); otherwise PyTorch's own choice."""
    if not flash:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def _apply_mask(cfg, step):
    mode = cfg["mask_mode"]
    if mode == "random":
        return bool(np.random.default_rng(step_seed(cfg["seed"], step, stream=3)).random() < 0.5)
    return mode == "always" or (mode == "alternate" and step % 2 == 0)


def _generator(seed, step, rank, stream, device):
    """A generator seeded by (seed, step, rank, stream): what it draws never depends on earlier steps."""
    generator = torch.Generator(device=device)
    generator.manual_seed(step_seed(seed, step, rank, stream))
    return generator
