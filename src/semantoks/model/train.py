"""The pretraining loop: one readable loop over steps, resumable exactly from its state folder.

Resumable state (checkpoint.pt, checkpoint.prev.pt, log.csv, tensorboard/) lives in `state_dir`,
which is no workflow output; the final checkpoint, log.csv and config.yaml are copied atomically
to `out_dir` when training ends. See docs/model.md, "Training state and resume".
"""

import contextlib
import copy
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from semantoks.atomic import atomic_path, write_text
from semantoks.errors import SemantoksError
from semantoks.model import distributed
from semantoks.model.augment import augment_views
from semantoks.model.checkpoint import (
    CHECKPOINT_NAME, data_identity, load_latest, parcel_network_ids, restore_rng_state, rng_state, save_checkpoint,
)
from semantoks.model.config import OPERATIONAL_KEYS, resolve_pretrain_config
from semantoks.model.data import open_pretraining_data, step_seed
from semantoks.model.encode import NetworkTokenScanEncoder
from semantoks.model.logging import TrainingLog, progress_line
from semantoks.model.meta_arch import SelfDistillationModel
from semantoks.model.online_eval import (
    check_phenotypes, evaluation_crops, held_out_subjects, phenotype_scores, reidentification_top1,
    usable_subjects,
)
from semantoks.model.schedules import build_schedules
from semantoks.model.state_lock import LOCK_NAME, state_lock

log = logging.getLogger(__name__)

STATE_NAME = "state"
PUBLISHED_MARK = "published.json"
# beside the published checkpoint: {step, steps, stopped_early}
TRAINING_END_NAME = "training.json"
LOSS_TERMS = ("total", "compression", "expansion", "mtm", "ttr")


def pretrain(cfg, dataset_root, atlas_id, cohorts, out_dir, resume=None, state_dir=None, code_version=None):
    """Pretrain on `cohorts` of the dataset; returns out_dir/checkpoint.pt, the final checkpoint.

    cfg: a `pretrain` config section or a PretrainConfig. state_dir: where resumable state lives
    (default out_dir/state). resume: None follows the config's `resume`; False always starts fresh.
    code_version: the rule's code hash; with it, a finished run of the same settings, code and data (a job that
    finished after its Snakemake was lost) is published again instead of retrained.
    """
    from semantoks.dataset import dataset_digest, read_atlas_metadata

    config = resolve_pretrain_config(cfg)
    if resume is not None:
        config = dataclasses.replace(config, resume="auto" if resume else "never")
    out_dir = Path(out_dir)
    state_dir = Path(state_dir) if state_dir is not None else out_dir / STATE_NAME
    context = distributed.init_distributed(config.device)
    if context.is_main and context.device.type == "cpu":
        # spinning OpenMP workers on shared cores made steps 5-10x slower once: say what this run got
        log.info("training on CPU with %d torch threads, OMP_WAIT_POLICY %s", torch.get_num_threads(),
                 os.environ.get("OMP_WAIT_POLICY", "unset"))
    try:
        identity = data_identity(read_atlas_metadata(dataset_root, atlas_id), config.data.identity(), cohorts,
                                 source=dataset_root)
        held_out = held_out_subjects(dataset_root, atlas_id, cohorts, config.eval_subjects, config.seed, config.data)
        phenotypes = _eval_phenotypes(dataset_root, cohorts, config) if context.is_main else None
        excluded = _hold_out_subjects(dataset_root, cohorts, config)
        data = open_pretraining_data(dataset_root, atlas_id, cohorts, config.data, config.batch_size, config.seed,
                                     context.rank, context.world_size, config.data_source,
                                     max(1, config.num_workers), config.shuffle_buffer, config.memory_limit_gb,
                                     config.cache_dtype, exclude_subjects=sorted(set(held_out) | set(excluded)))
        needs_crops = context.is_main and (config.health_every or config.eval_every)
        crops = _monitor_crops(dataset_root, atlas_id, cohorts, config, held_out) if needs_crops else None
        inputs = None if code_version is None else {"code": code_version,
                                                     "data": dataset_digest(dataset_root, atlas_id, cohorts)}
        run = _Run(config, context, identity, data, state_dir, held_out, crops, phenotypes, excluded, inputs)
        # one process trains in a state folder: an orphaned job still running must not be joined by a rerun
        with state_lock(state_dir) if context.is_main else contextlib.nullcontext():
            step, stop_reason = run.train()
            if context.is_main:
                _publish(state_dir, out_dir, config, step, stop_reason, inputs)
        distributed.barrier(context)
        return out_dir / CHECKPOINT_NAME
    finally:
        distributed.shutdown(context)


def _eval_phenotypes(root, cohorts, config):
    """The dataset's phenotype table when eval_phenotypes names columns of it; None when none are asked for."""
    if not config.eval_phenotypes:
        return None
    from semantoks.phenotypes import read_phenotype_table

    phenotypes = read_phenotype_table(root, cohorts)
    check_phenotypes(phenotypes, config.eval_phenotypes, Path(root) / "phenotypes")
    return phenotypes


def _hold_out_subjects(root, cohorts, config):
    """The (cohort, subject) pairs pretrain.hold_out keeps out of training (e.g. the probe sites); [] when unset."""
    if not config.hold_out:
        return []
    from semantoks.phenotypes import held_out_by_value, read_phenotype_table

    excluded = held_out_by_value(read_phenotype_table(root, cohorts), config.hold_out)
    log.info("pretrain.hold_out %s: %d subjects never trained on", config.hold_out["column"], len(excluded))
    return excluded


def _monitor_crops(root, atlas_id, cohorts, config, held_out):
    """The fixed batch for health and online evaluation: held-out subjects' crops, else a seeded scan sample."""
    if held_out:
        return evaluation_crops(root, atlas_id, held_out, config.data)
    # subjects whose scans are all shorter than a patch are never trained on, so never sampled here
    subjects = usable_subjects(root, atlas_id, cohorts, config.data)
    rng = np.random.default_rng([config.seed, 11])
    chosen = sorted(subjects[i] for i in rng.choice(len(subjects), min(32, len(subjects)), replace=False))
    return evaluation_crops(root, atlas_id, chosen, config.data)


class _Run:
    """One training run: model, optimiser and schedules built once from the resolved config."""

    def __init__(self, config, context, identity, data, state_dir, held_out, crops, phenotypes, excluded=(),
                 inputs=None):
        self.config, self.context, self.identity, self.data = config, context, identity, data
        self.excluded, self.inputs = excluded, inputs
        self.state_dir, self.held_out, self.crops, self.phenotypes = state_dir, held_out, crops, phenotypes
        self.device = context.device
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(config.seed)
        self.model = SelfDistillationModel(config.model, config.loss, parcel_network_ids(identity),
                                           len(identity["networks"]), config.data.window, config.data.patch_len)
        self.model.to(self.device)
        # the step-0 teacher, rebuilt identically on resume because initialisation is seeded
        self.initial_encoder = copy.deepcopy(self.model.teacher_encoder).eval() if crops is not None else None
        self.global_batch = config.batch_size * context.world_size
        self.schedules = build_schedules(config.schedule, self.global_batch, config.steps)
        self.optimizer = torch.optim.AdamW(self.model.param_groups(float(self.schedules["weight_decay"][0])),
                                           lr=float(self.schedules["lr"][0]), betas=config.betas)
        self.precision = _precision(config.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == torch.float16 else None

    def train(self):
        """Run until `steps` (or stop_at_step / max_minutes); returns (last step, stop reason or None)."""
        config, context, model = self.config, self.context, self.model
        started = time.monotonic()
        start_step = self._start_step()
        if context.enabled:
            model.student = torch.nn.parallel.DistributedDataParallel(
                model.student, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            model.student = torch.compile(model.student)
        if context.is_main:
            write_text(self.state_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        end_step = min(config.steps, config.stop_at_step or config.steps)
        if start_step >= end_step:
            return start_step, _stop_reason(start_step, config, None)

        tokens_per_scan = 2 * len(self.identity["networks"]) * config.data.n_patches
        training_log = TrainingLog(self.state_dir, start_step, config.steps, enabled=context.is_main)
        model.train()
        interval = _Interval()
        done, budget_spent = start_step, False
        try:
            for step, batch in self.data.batches(start_step, end_step, config.num_workers):
                terms, grad_norm, masked = self._step(step, batch)
                done = step + 1
                interval.add(terms, masked)
                training_log.advance()
                budget_spent = _budget_spent(config, started, context)
                last = done == end_step or budget_spent
                monitor_due = last or any(every and done % every == 0
                                          for every in (config.health_every, config.eval_every))
                if done % config.log_every == 0 or monitor_due:
                    monitored = self._monitor(done, last)
                    means = distributed.mean_over_ranks(interval.means(), context)
                    scans_per_s = self.global_batch * interval.steps / interval.seconds()
                    row = {"step": done, "epoch": step // self.data.steps_per_epoch,
                           **{f"loss_{k}": v for k, v in means.items()}, **self._schedule_values(step),
                           "grad_norm": float(grad_norm), "scans_per_s": scans_per_s,
                           "tokens_per_s": scans_per_s * tokens_per_scan, **monitored}
                    training_log.record(row)
                    if context.is_main:
                        log.info("%s", progress_line(row, config.steps, (end_step - done) / max(scans_per_s, 1e-9)
                                                     * self.global_batch))
                    interval = _Interval()
                if done % config.checkpoint_every == 0 or last:
                    if context.is_main:
                        stopped = _stop_reason(done, config, "max_minutes" if budget_spent else None) if last else None
                        save_checkpoint(self.state_dir / CHECKPOINT_NAME, self._state(done, stopped))
                        training_log.flush()
                    distributed.barrier(context)
                if budget_spent:
                    break
        finally:
            training_log.close()
        return done, _stop_reason(done, config, "max_minutes" if budget_spent else None)

    def _step(self, step, batch):
        config, model, optimizer, scaler = self.config, self.model, self.optimizer, self.scaler
        batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
        batch["views"] = augment_views(batch["views"], batch["parcel_valid"], batch["patch_valid"], config.augment,
                                       _generator(config.seed, step, self.context.rank, 1, self.device))
        for group in optimizer.param_groups:
            group["lr"] = float(self.schedules["lr"][step])
            group["weight_decay"] = float(self.schedules["weight_decay"][step]) * group.get("wd_multiplier", 1.0)
        weights = {"ttr": float(self.schedules["ttr"][step]), "mtm": float(self.schedules["mtm"][step])}
        masked = _apply_mask(config, step)
        optimizer.zero_grad(set_to_none=True)
        extra = {"loss_scale": scaler.get_scale()} if scaler is not None else {}
        with _autocast(self.device, self.precision), _attention_backends(config.flash):
            terms = model.forward_backward(batch, weights, masked,
                                           _generator(config.seed, step, self.context.rank, 2, self.device), **extra)
        if scaler is not None:
            scaler.unscale_(optimizer)
        parameters = [p for p in model.student_module.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        elif distributed.all_finite(terms["total"], self.context):
            optimizer.step()
        else:
            raise SemantoksError(f"{self.state_dir}: the pretraining loss became non-finite at step {step}; "
                                 "lower base_lr or use precision fp32.")
        model.update_teacher(float(self.schedules["momentum"][step]))
        return terms, grad_norm, masked

    def _schedule_values(self, step):
        s = self.schedules
        return {"lr": float(s["lr"][step]), "weight_decay": float(s["weight_decay"][step]),
                "momentum": float(s["momentum"][step]), "ttr_weight": float(s["ttr"][step]),
                "mtm_weight": float(s["mtm"][step])}

    def _monitor(self, done, last):
        """Health metrics and online evaluation on the fixed crops (rank 0), when due."""
        config = self.config
        values = {}
        if self.crops is None:
            return values
        batch = {key: value.to(self.device) for key, value in self.crops.items()}
        if config.health_every and (done % config.health_every == 0 or last):
            values.update(_measure_health()(self.model.teacher_encoder, self.initial_encoder, batch))
        if config.eval_every and (done % config.eval_every == 0 or last):
            features = NetworkTokenScanEncoder(self.model.teacher_encoder, self.identity, self.device).embed(batch)
            values["eval_reid_top1"] = reidentification_top1(features)
            values["eval_reid_chance"] = 1.0 / len(self.held_out)
            if self.phenotypes is not None:
                values.update(phenotype_scores(features, self.held_out, self.phenotypes, config.eval_phenotypes))
        return values

    def _state(self, step, stopped_early=None):
        epoch, index = divmod(step, self.data.steps_per_epoch)
        return {
            "student": self.model.student_module.state_dict(),
            "teacher": self.model.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": step,
            "epoch": epoch,
            "data_position": {"epoch": epoch, "index_in_epoch": index, "steps_per_epoch": self.data.steps_per_epoch,
                              "source": type(self.data).__name__, "world_size": self.context.world_size,
                              "streams_per_rank": getattr(self.data, "streams_per_rank", 1)},
            "rng": rng_state(),
            "config": self.config.to_dict(),
            "data_identity": self.identity,
            "held_out_subjects": [list(pair) for pair in self.held_out],
            "hold_out_subjects": [list(pair) for pair in self.excluded],
            "stopped_early": stopped_early,
        }

    def _start_step(self):
        """The step to continue from: the state folder's, if it may be continued; otherwise 0 (state set aside)."""
        if self.config.resume == "never":
            self._set_aside("pretrain resume is never")
            return 0
        found = load_latest(self.state_dir, map_location=self.device)
        if found is None:
            return 0
        state, path = found
        reason = continuation_refusal(state, self.config, self.identity, self.state_dir, self.inputs)
        if reason:
            self._set_aside(reason)
            return 0
        latest = self.state_dir / CHECKPOINT_NAME
        if path.name != CHECKPOINT_NAME and latest.exists() and self.context.is_main:
            # set the unreadable file aside, or the next save would make it the "previous good" one
            latest.replace(latest.with_name("checkpoint.corrupt.pt"))
        self._load(state, path)
        if state["config"]["steps"] != self.config.steps and self.context.is_main:
            log.info("continuing %s from step %d with steps raised from %d to %d; the lr, weight-decay and momentum "
                     "schedules now span %d steps", path, state["step"], state["config"]["steps"], self.config.steps,
                     self.config.steps)
        return int(state["step"])

    def _load(self, state, path):
        position = state.get("data_position", {})
        layout = (self.context.world_size, self.data.steps_per_epoch, getattr(self.data, "streams_per_rank", 1))
        if (position.get("world_size"), position.get("steps_per_epoch"), position.get("streams_per_rank")) != layout:
            log.warning("%s: resuming with a different number of processes or data shards; batches after step %d "
                        "differ from an uninterrupted run", path, state["step"])
        self.model.student_module.load_state_dict(state["student"])
        self.model.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        if self.context.is_main:
            log.info("resuming from %s at step %d", path, state["step"])

    def _set_aside(self, reason):
        """Move an existing state folder to <state>.replaced (replacing an older one) and say why."""
        distributed.barrier(self.context)
        if self.context.is_main and self.state_dir.exists() and any(p.name != LOCK_NAME for p in self.state_dir.iterdir()):
            aside = self.state_dir.with_name(self.state_dir.name + ".replaced")
            shutil.rmtree(aside, ignore_errors=True)
            self.state_dir.rename(aside)
            # the lock stays with the state folder this run trains in
            self.state_dir.mkdir()
            if (aside / LOCK_NAME).exists():
                (aside / LOCK_NAME).replace(self.state_dir / LOCK_NAME)
            log.warning("starting fresh: %s; the old training state was moved to %s", reason, aside)
        distributed.barrier(self.context)


def continuation_refusal(state, config, identity, state_dir, inputs=None):
    """Why the state in `state_dir` must not be continued under `config` and `identity`; None if it may.

    A finished, published run is retrained (the rerun was asked for: code or data changed, or --forcerun)
    unless `inputs` (code and data digests) equal those it was published with: then only its job outlived
    Snakemake, and it is published again as it is.
    """
    saved = state["config"]
    changed = _changed_keys(saved, config.to_dict(), skip=OPERATIONAL_KEYS + ("steps",))
    changed += [f"data {key}" for key in sorted(set(identity) | set(state["data_identity"]))
                if _canonical(identity.get(key)) != _canonical(state["data_identity"].get(key))]
    if changed:
        return f"the training state was made with different settings ({', '.join(changed)})"
    if config.steps < saved["steps"]:
        return f"pretrain steps was lowered from {saved['steps']} to {config.steps}"
    published = _published(state_dir)
    if state["step"] >= saved["steps"] == config.steps and published.get("step") == state["step"]:
        if inputs is not None and published.get("inputs") == inputs:
            log.info("the state holds this finished run (same settings, code and data), published at step %d; "
                     "publishing it again without training (pretrain resume: never retrains it)", state["step"])
            return None
        return "the state holds a finished, published run with these settings, and rerunning it retrains"
    return None


def _published(state_dir):
    """The record of the model last copied to the outputs ({} if none was, e.g. killed while publishing)."""
    mark = Path(state_dir) / PUBLISHED_MARK
    return json.loads(mark.read_text()) if mark.is_file() else {}


def _changed_keys(old, new, skip=(), prefix=""):
    changed = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, prefix=f"{prefix}{key}.")
        elif _canonical(a) != _canonical(b):
            changed.append(prefix + key)
    return changed


def _publish(state_dir, out_dir, config, step, stop_reason, inputs=None):
    """Copy the final checkpoint, log.csv and config.yaml from the state folder to out_dir, each atomically;
    `training.json` beside them says at which step of how many and why training ended (report, model card)."""
    ending = {"step": step, "steps": config.steps, "stopped_early": stop_reason}
    write_text(out_dir / TRAINING_END_NAME, json.dumps(ending) + "\n")
    for name in (CHECKPOINT_NAME, "log.csv", "config.yaml"):
        source = state_dir / name
        if name == "log.csv" and not source.exists():
            write_text(source, "")
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(source, tmp)
    write_text(state_dir / PUBLISHED_MARK, json.dumps({**ending, "inputs": inputs}) + "\n")
    if stop_reason:
        # its outputs exist, so a plain rerun has nothing to do: only a forced rerun continues the run
        log.warning("pretraining stopped early at step %d of %d (%s); %s holds that model; continue it with "
                    "`snakemake --forcerun pretrain`", step, config.steps, stop_reason, out_dir / CHECKPOINT_NAME)
    else:
        log.info("pretraining finished at step %d; wrote %s", step, out_dir / CHECKPOINT_NAME)


def _stop_reason(step, config, cause):
    if step >= config.steps:
        return None
    if cause == "max_minutes":
        return f"the max_minutes budget of {config.max_minutes:g} minutes was spent"
    return f"stop_at_step {config.stop_at_step}"


def _budget_spent(config, started, context):
    """True on every rank once rank 0's clock passes max_minutes (ranks must stop at the same step)."""
    if not config.max_minutes:
        return False
    spent = float(time.monotonic() - started > 60.0 * config.max_minutes)
    return distributed.mean_over_ranks({"spent": spent}, context)["spent"] > 0


class _Interval:
    """Loss terms averaged over the steps since the last log row; mtm only over the steps that masked."""

    def __init__(self):
        self.started = time.perf_counter()
        self.steps = 0
        self.sums = dict.fromkeys(LOSS_TERMS, 0.0)
        self.counts = dict.fromkeys(LOSS_TERMS, 0)

    def add(self, terms, masked):
        self.steps += 1
        for key in LOSS_TERMS:
            if key != "mtm" or masked:
                self.sums[key] += terms[key]
                self.counts[key] += 1

    def means(self):
        return {key: self.sums[key] / self.counts[key] if self.counts[key] else float("nan") for key in LOSS_TERMS}

    def seconds(self):
        return max(time.perf_counter() - self.started, 1e-9)


def _measure_health():
    try:
        from semantoks.model.health import measure_health
    except ImportError:
        raise SemantoksError("pretrain health_every needs semantoks.model.health, which this installation lacks; "
                             "set pretrain health_every 0.") from None
    return measure_health


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=str)


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


def _apply_mask(config, step):
    mode = config.mask_mode
    if mode == "random":
        return bool(np.random.default_rng(step_seed(config.seed, step, stream=3)).random() < 0.5)
    return mode == "always" or (mode == "alternate" and step % 2 == 0)


def _generator(seed, step, rank, stream, device):
    """A generator seeded by (seed, step, rank, stream): what it draws never depends on earlier steps."""
    generator = torch.Generator(device=device)
    generator.manual_seed(step_seed(seed, step, rank, stream))
    return generator
