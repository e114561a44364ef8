"""The one pretraining configuration: typed defaults, presets as small diffs, resolved once per run.

A run's `pretrain` config section (flat schedule/preprocessing keys, nested `model`, `loss`,
`augment`, and `extra` merged in) becomes one `PretrainConfig`; the checkpoint stores
`config.to_dict()` and `PretrainConfig.from_dict` rebuilds it.
"""

import copy
import dataclasses
from dataclasses import dataclass, field

from semantoks.errors import SemantoksError


@dataclass(frozen=True)
class Augmentations:
    """Upper bounds of each augmentation; each view draws its own amounts uniformly below them."""

    parcel_drop: float = 0.10
    time_block: float = 0.30
    noise_std: float = 0.10
    scale_range: tuple = (0.8, 1.2)


@dataclass(frozen=True)
class Preprocessing:
    """What every scan goes through before windowing; part of a checkpoint's data identity."""

    model_tr: float = 2.0
    # None: band-passing belongs to the censor-aware denoising step, before gaps are closed
    band_pass: tuple | None = None
    zscore: bool = True
    window: int = 100
    patch_len: int = 20
    max_view_offset: int = 80
    filter_order: int = 2
    # spikes (a 1e9 cell) are clipped to the parcel's median +- clip_mad robust SDs (1.4826 MAD); None: no clipping
    clip_mad: float | None = 8.0

    def __post_init__(self):
        if self.window % self.patch_len:
            raise SemantoksError(f"pretrain config: window {self.window} is not a multiple of patch_len "
                                 f"{self.patch_len}; choose a window divisible by the patch length.")

    @classmethod
    def from_config(cls, cfg):
        band = cfg.get("band_pass", cls.band_pass)
        return cls(model_tr=float(cfg.get("model_tr", cls.model_tr)),
                   band_pass=None if band is None else (float(band[0]), float(band[1])),
                   zscore=bool(cfg.get("zscore", cls.zscore)), window=int(cfg.get("window", cls.window)),
                   patch_len=int(cfg.get("patch_len", cls.patch_len)),
                   max_view_offset=int(cfg.get("max_view_offset", cls.max_view_offset)),
                   filter_order=int(cfg.get("filter_order", cls.filter_order)),
                   # a checkpoint saved before clipping existed was trained on unclipped scans
                   clip_mad=None if cfg.get("clip_mad") is None else float(cfg["clip_mad"]))

    @property
    def n_patches(self):
        return self.window // self.patch_len

    def identity(self):
        """The part of the checkpoint's data identity that says how scans were prepared."""
        return {"model_tr": self.model_tr, "band_pass": None if self.band_pass is None else list(self.band_pass),
                "filter_order": self.filter_order, "zscore": self.zscore, "window": self.window,
                "patch_len": self.patch_len, "clip_mad": self.clip_mad}


# the recipe's named choices (the reference's first): coding-rate expansion "reference" as Brain-Semantoks/SimDINO
# (on the student-teacher mean, scale p/(m eps), times gamma) or "student" (student only, d/(n eps^2), / d)
EXPANSION_MODES = ("reference", "student")
MASKERS = ("exclusive", "mixed")
LONG_BRANCHES = ("structured", "depthwise")
TOKENIZER_NORMS = ("per_network", "shared")


def _check_choice(where, value, choices):
    if value not in choices:
        raise SemantoksError(f"config.yaml: {where} {value!r} is not one of {', '.join(choices)}; pick one of them.")


@dataclass(frozen=True)
class EncoderConfig:
    """NetworkTokenEncoder size; the defaults are the `tiny` preset (window/patch_len come from the data)."""

    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    layerscale_init: float = 0.1
    drop_path: float = 0.0
    short_kernel: int = 3
    long_kernels: tuple = (5, 9, 15)
    # the reference's tokenizer; "depthwise" / "shared" are the project's first recipe (long_kernels then apply)
    long_branch: str = "structured"
    long_filters: int = 3
    long_sub_kernel: int = 4
    long_scales: int = 3
    long_decay: float = 2.0
    tokenizer_norm: str = "per_network"

    def __post_init__(self):
        object.__setattr__(self, "long_kernels", tuple(int(k) for k in self.long_kernels))
        _check_choice("pretrain model long_branch", self.long_branch, LONG_BRANCHES)
        _check_choice("pretrain model tokenizer_norm", self.tokenizer_norm, TOKENIZER_NORMS)
        if self.dim % self.heads:
            raise SemantoksError(f"config.yaml: model dim {self.dim} is not divisible by heads {self.heads}; "
                                 "change one of them.")


@dataclass(frozen=True)
class LossConfig:
    """Projection heads and self-distillation losses."""

    out_dim: int = 128
    head_hidden: int = 2048
    separate_patch_head: bool = False
    eps: float = 0.05
    expansion_weight: float = 1.0
    gather_distributed: bool = True
    # "reference": the Brain-Semantoks/SimDINO coding rate; "student": the first recipe's (losses.EXPANSION_MODES)
    expansion: str = "reference"
    # the reference's TTR subtracts the coding-rate expansion of the network tokens; False: compression only
    ttr_expansion: bool = True
    # "exclusive": a time block or whole networks per view (reference); "mixed": slices to a ratio (first recipe)
    masker: str = "exclusive"
    mask_ratio_min: float = 0.65
    mask_ratio_max: float = 0.85

    def __post_init__(self):
        _check_choice("pretrain loss expansion", self.expansion, EXPANSION_MODES)
        _check_choice("pretrain loss masker", self.masker, MASKERS)


TTR_MODES = ("curriculum", "off", "always")
MASK_MODES = ("alternate", "random", "always", "never")
RESUME_MODES = ("auto", "never")


@dataclass(frozen=True)
class ScheduleConfig:
    """Per-step schedules: peak lr = base_lr * global batch / 256 after warm-up, cosine to min_lr."""

    base_lr: float = 7e-4
    min_lr: float = 1e-6
    warmup_fraction: float = 0.03
    weight_decay: float = 0.05
    weight_decay_end: float = 0.3
    momentum: float = 0.99
    momentum_end: float = 1.0
    ttr_weight: float = 0.5
    ttr: str = "curriculum"
    ttr_fraction: float = 0.05
    mtm_weight: float = 0.5

    def __post_init__(self):
        if self.ttr not in TTR_MODES:
            raise SemantoksError(f"config.yaml: pretrain ttr {self.ttr!r} is not one of {', '.join(TTR_MODES)}; "
                                 "pick one of them.")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything the trainer uses. Groups: model, loss, augment, data (preprocessing), schedule."""

    preset: str = "tiny"
    model: EncoderConfig = field(default_factory=EncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: Augmentations = field(default_factory=Augmentations)
    data: Preprocessing = field(default_factory=Preprocessing)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    steps: int = 300
    batch_size: int = 32
    seed: int = 0
    mask_mode: str = "alternate"
    grad_clip: float = 1.0
    betas: tuple = (0.9, 0.999)
    precision: str = "auto"
    compile: bool = False
    flash: bool = False
    device: str = "auto"
    checkpoint_every: int = 100
    log_every: int = 10
    stop_at_step: int | None = None
    max_minutes: float | None = None
    resume: str = "auto"
    health_every: int = 50
    eval_every: int = 0
    eval_subjects: int = 0
    eval_phenotypes: tuple = ()
    hold_out: dict | None = None
    data_source: str = "auto"
    num_workers: int = 0
    shuffle_buffer: int = 256
    memory_limit_gb: float = 4.0
    cache_dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "eval_phenotypes", tuple(self.eval_phenotypes or ()))
        if self.mask_mode not in MASK_MODES:
            raise SemantoksError(f"config.yaml: pretrain mask_mode {self.mask_mode!r} is not one of "
                                 f"{', '.join(MASK_MODES)}; pick one of them.")
        if self.resume not in RESUME_MODES:
            raise SemantoksError(f"config.yaml: pretrain resume {self.resume!r} is not one of "
                                 f"{', '.join(RESUME_MODES)}; pick one of them.")
        if (self.eval_every or self.eval_phenotypes) and not (self.eval_every and self.eval_subjects):
            raise SemantoksError("config.yaml: pretrain eval_every and eval_phenotypes need held-out subjects and a "
                                 "cadence; set pretrain eval_subjects (e.g. 16) and eval_every, or eval_every 0.")

    def to_dict(self):
        """Plain nested dict (lists, not tuples) for the checkpoint and config.yaml."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, saved):
        """The config saved by `to_dict` (a checkpoint's `config`)."""
        saved = dict(saved)
        try:
            groups = {name: kind(**{**FIRST_RECIPE.get(name, {}), **_tuples(saved.pop(name, {}), kind)})
                      for name, kind in GROUPS.items()}
            return cls(**groups, **_tuples(saved, cls))
        except TypeError as error:
            raise SemantoksError(f"the saved pretraining config does not match this version ({error}); "
                                 "retrain the checkpoint with this version.") from None


# a checkpoint saved before the recipe settings existed was trained with these values (its config lacks the keys)
FIRST_RECIPE = {
    "model": {"long_branch": "depthwise", "tokenizer_norm": "shared"},
    "loss": {"expansion": "student", "ttr_expansion": False, "masker": "mixed"},
    "schedule": {"warmup_fraction": 0.1, "mtm_weight": 1.0},
}

GROUPS = {"model": EncoderConfig, "loss": LossConfig, "augment": Augmentations, "data": Preprocessing,
          "schedule": ScheduleConfig}
# groups whose keys the config section gives flat (base_lr, band_pass, ...), as users always have
FLAT_GROUPS = ("data", "schedule")
# workflow-level keys of the pretrain section that the trainer does not use
WORKFLOW_KEYS = ("enabled", "cohorts", "gpus", "runtime", "seeds")
# keys a run may change and still continue its state: they change how, not what, is computed
OPERATIONAL_KEYS = ("stop_at_step", "checkpoint_every", "log_every", "num_workers", "device", "compile", "flash",
                    "memory_limit_gb", "data_source", "max_minutes", "resume", "health_every", "eval_every",
                    "eval_phenotypes")

# keys that never rerun the pretrain rule, whichever way written (flat or under `extra`): the operational
# keys (logging, checkpoint cadence, device, workers, budgets) and the scheduler's runtime. The rule keeps
# them out of its params and the script reads them from the config, so e.g. a new log_every or runtime never
# retrains a finished model
EXECUTION_KEYS = OPERATIONAL_KEYS + ("runtime",)


def rerun_settings(section):
    """The pretrain section without EXECUTION_KEYS, at its top level and inside `extra`: the rule's params."""
    kept = {key: value for key, value in dict(section or {}).items() if key not in EXECUTION_KEYS}
    if isinstance(kept.get("extra"), dict):
        kept["extra"] = {key: value for key, value in kept["extra"].items() if key not in EXECUTION_KEYS}
    return kept


def execution_settings(section):
    """The EXECUTION_KEYS a pretrain section sets (an `extra` value over a flat one, as `resolve` merges)."""
    section = dict(section or {})
    merged = {**section, **(section.get("extra") or {})}
    return {key: merged[key] for key in EXECUTION_KEYS if key in merged and key != "runtime"}


PRESETS = {
    "tiny": {},
    "small": {"dim": 384, "depth": 6, "heads": 6, "drop_path": 0.1},
    "base": {"dim": 768, "depth": 8, "heads": 12, "drop_path": 0.1},
}
# optimisation diffs per preset, under the user's own values: the CPU sweeps (docs/model.md) found tiny and
# small indistinguishable from their init at the paper's lr (peak 8.7e-5 at batch 32, norms clipped from 9-64
# to 1); base keeps the paper's values until swept on a GPU. tiny keeps DINOv2's 2048-wide head: a 256-wide one
# halves a CPU step but lost the demo's planted age effect (paired p 0.19 vs 0.022; docs/model.md)
PRESET_TRAINING = {
    "tiny": {"base_lr": 8e-3, "grad_clip": 3.0, "momentum": 0.9},
    "small": {"base_lr": 2.4e-3, "grad_clip": 3.0, "momentum": 0.9},
    "base": {},
}


def encoder_config(preset="tiny", overrides=None):
    """EncoderConfig of a preset with `overrides` (a dict) applied."""
    if preset not in PRESETS:
        raise SemantoksError(f"config.yaml: unknown model preset '{preset}'; use one of {', '.join(PRESETS)}.")
    overrides = dict(overrides or {})
    _refuse_unknown("pretrain model", overrides, _field_names(EncoderConfig))
    return EncoderConfig(**{**PRESETS[preset], **overrides})


def resolve(section):
    """PretrainConfig from a config.yaml `pretrain` section: defaults <- preset <- the section's values."""
    section = copy.deepcopy(dict(section or {}))
    for key, value in (section.pop("extra", None) or {}).items():
        # nested groups merge key by key, so extra: {loss: {out_dim: 16}} keeps the other loss settings
        merged = isinstance(value, dict) and isinstance(section.get(key), dict)
        section[key] = {**section[key], **value} if merged else value
    for key in WORKFLOW_KEYS:
        section.pop(key, None)
    flat = {name: {} for name in FLAT_GROUPS}
    for name in FLAT_GROUPS:
        for key in [k for k in section if k in _field_names(GROUPS[name])]:
            flat[name][key] = section.pop(key)
    nested = {name: dict(section.pop(name, None) or {}) for name in ("model", "loss", "augment")}
    _refuse_unknown("pretrain", section, known_keys())
    preset = section.pop("preset", nested["model"].pop("preset", "tiny"))
    for key, value in PRESET_TRAINING.get(preset, {}).items():
        if key in _field_names(LossConfig):
            nested["loss"].setdefault(key, value)
            continue
        group = next((name for name in FLAT_GROUPS if key in _field_names(GROUPS[name])), None)
        target = flat[group] if group else section
        target.setdefault(key, value)
    _refuse_unknown("pretrain loss", nested["loss"], _field_names(LossConfig))
    _refuse_unknown("pretrain augment", nested["augment"], _field_names(Augmentations))
    data = dict(flat["data"])
    if data.get("band_pass") is not None:
        data["band_pass"] = tuple(float(v) for v in data["band_pass"])
    augment = dict(nested["augment"])
    if "scale_range" in augment:
        augment["scale_range"] = tuple(float(v) for v in augment["scale_range"])
    return PretrainConfig(preset=preset, model=encoder_config(preset, nested["model"]),
                          loss=LossConfig(**nested["loss"]), augment=Augmentations(**augment),
                          data=Preprocessing(**data), schedule=ScheduleConfig(**flat["schedule"]), **section)


def resolve_pretrain_config(cfg_section):
    """The PretrainConfig of a config.yaml `pretrain` section; unknown keys are a one-line SemantoksError."""
    return cfg_section if isinstance(cfg_section, PretrainConfig) else resolve(cfg_section)


def known_keys():
    """Every key the pretrain section (or its `extra`) may hold."""
    keys = (_field_names(PretrainConfig) - set(FLAT_GROUPS)) | set(WORKFLOW_KEYS) | {"extra"}
    for name in FLAT_GROUPS:
        keys |= _field_names(GROUPS[name])
    return keys


def _field_names(kind):
    return {f.name for f in dataclasses.fields(kind)}


def _refuse_unknown(where, values, known):
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SemantoksError(f"config.yaml: unknown {where} setting(s) {', '.join(unknown)}; fix the spelling or "
                             f"remove them (known: {', '.join(sorted(known))}).")


def _tuples(values, kind):
    """Saved lists back to the tuples the dataclass fields hold."""
    values = dict(values)
    for f in dataclasses.fields(kind):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return values


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
