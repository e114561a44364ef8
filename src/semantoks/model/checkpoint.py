"""Checkpoints: atomic save keeping the previous good one, checked loads, frozen encoders, data identity."""

import json
import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from semantoks.atomic import atomic_path
from semantoks.digest import file_sha256
from semantoks.errors import SemantoksError

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"
REQUIRED_KEYS = ("student", "teacher", "step", "config", "data_identity")


def save_checkpoint(path, state, keep_previous=True):
    """Write `state` to `path` atomically; the file it replaces becomes checkpoint.prev.pt beside it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        # the new file is complete before the old one moves aside, so a good checkpoint always exists
        if keep_previous and path.exists():
            os.replace(path, path.with_name(PREVIOUS_NAME))
    return path


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict; a SemantoksError naming the file if it is missing, truncated or not ours."""
    path = Path(path)
    if not path.is_file():
        raise SemantoksError(f"{path}: checkpoint not found; train a model first or fix the path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        # torch's refusal of pickled objects opens with advice to load unsafely: name the object, never that advice
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if refused:
            raise SemantoksError(f"{path}: holds a Python object ({refused.group(1)}) that semantoks does not load "
                                 "(checkpoints are read as weights only, so a file cannot run code); point to a "
                                 "checkpoint.pt written by semantoks pretrain.") from None
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise SemantoksError(f"{path}: checkpoint is unreadable ({reason}); delete it and retrain or resume "
                             "from checkpoint.prev.pt.") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise SemantoksError(f"{path}: not a semantoks checkpoint (missing {', '.join(missing)}); "
                             "point to a checkpoint.pt written by semantoks pretrain.")
    return state


def load_latest(out_dir, map_location="cpu"):
    """(state, path) of the newest usable checkpoint in `out_dir`, None if there is none at all."""
    candidates = [Path(out_dir) / CHECKPOINT_NAME, Path(out_dir) / PREVIOUS_NAME]
    existing = [path for path in candidates if path.is_file()]
    if not existing:
        return None
    problems = []
    for path in existing:
        try:
            return load_checkpoint(path, map_location), path
        except SemantoksError as error:
            log.warning("%s; trying the previous checkpoint", error)
            problems.append(path.name)
    raise SemantoksError(f"{out_dir}: no usable checkpoint ({', '.join(problems)} unreadable); delete them "
                         "to start again or pass resume=False.")


def checkpoint_sha256(path):
    return file_sha256(path)


def rng_state():
    """Every global RNG, in types torch.load(weights_only=True) accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def parcel_network_ids(data_identity):
    """Network index of every parcel, in parcel order."""
    position = {name: i for i, name in enumerate(data_identity["networks"])}
    return np.asarray([position[name] for name in data_identity["parcel_networks"]], dtype=np.int64)


def build_encoder_from(config, data_identity):
    """A freshly initialised encoder of a PretrainConfig (or a checkpoint's saved `config` dict)."""
    from semantoks.model.config import PretrainConfig
    from semantoks.model.presets import build_encoder

    if not isinstance(config, PretrainConfig):
        config = PretrainConfig.from_dict(config)
    prep = data_identity["preprocessing"]
    return build_encoder(config.model, parcel_network_ids(data_identity), len(data_identity["networks"]),
                         prep["window"], prep["patch_len"])


def load_encoder(path, which="teacher", map_location="cpu"):
    """(encoder in eval mode with frozen weights, data_identity) from a checkpoint's teacher or student."""
    if which not in ("teacher", "student"):
        raise ValueError(f"which must be 'teacher' or 'student', got {which!r}")
    state = load_checkpoint(path, map_location)
    try:
        encoder = build_encoder_from(state["config"], state["data_identity"])
    except SemantoksError as error:
        raise SemantoksError(f"{path}: {error}") from None
    encoder.load_state_dict(_encoder_weights(state[which], encoder.state_dict().keys(), path, which))
    encoder.eval().requires_grad_(False)
    return encoder, state["data_identity"]


def _encoder_weights(module_state, encoder_keys, path, which):
    """The encoder's entries of a student/teacher state dict, found by their common key prefix."""
    encoder_keys = list(encoder_keys)
    probe = encoder_keys[0]
    prefixes = {key[:-len(probe)] for key in module_state if key.endswith(probe)}
    for prefix in sorted(prefixes, key=len):
        if all(prefix + key in module_state for key in encoder_keys):
            return {key: module_state[prefix + key] for key in encoder_keys}
    raise SemantoksError(f"{path}: the {which} weights do not match the encoder in its config; "
                         "the checkpoint was written by an incompatible version, retrain it.")


def data_identity(atlas_metadata, prep_identity, cohorts, source):
    """What a checkpoint was trained on: atlas, exact parcel order and networks, denoising, preprocessing."""
    selected = cohort_metadata(atlas_metadata, cohorts, source)
    labels = selected["labels"]
    return {"atlas_id": selected["atlas_id"], "space": selected["space"],
            "parcel_names": [label["name"] for label in labels],
            "parcel_networks": [label["network"] for label in labels],
            "networks": list(selected["networks"]), "strategy": selected["strategy"],
            "preprocessing": dict(prep_identity), "cohorts": sorted(cohorts) if cohorts else None}


def cohort_metadata(atlas_metadata, cohorts, source):
    """Atlas metadata restricted to `cohorts` (None: all); refuses cohorts denoised differently."""
    records = atlas_metadata.get("cohorts") or {}
    chosen = {name: records[name] for name in (cohorts or records) if name in records}
    missing = sorted(set(cohorts or []) - set(records)) if records else []
    if missing:
        raise SemantoksError(f"{source}: cohort(s) {', '.join(missing)} have no {atlas_metadata['atlas_id']} "
                             "time series; build them or remove them from the cohorts list.")
    merged = {key: atlas_metadata.get(key) for key in ("atlas_id", "labels", "networks", "space", "strategy")}
    for key in ("space", "strategy"):
        values = {_canonical(record.get(key)) for record in chosen.values()}
        if len(values) > 1:
            raise SemantoksError(f"{source}: cohorts {', '.join(sorted(chosen))} differ in their {key}; "
                                 "use cohorts prepared with the same space and denoising strategy.")
        if chosen:
            merged[key] = next(iter(chosen.values())).get(key)
    return merged


def check_identity(identity, atlas_metadata, source, checkpoint="the checkpoint", cohorts=None,
                   allow_strategy_mismatch=False):
    """Refuse a dataset whose atlas, parcel order/names, networks or (by default) denoising differ."""
    theirs = cohort_metadata(atlas_metadata, cohorts, source)
    names = [label["name"] for label in theirs["labels"]]
    networks = [label["network"] for label in theirs["labels"]]

    def refuse(what):
        raise SemantoksError(f"{source}: {what} differs from {checkpoint}'s; use a dataset built with the "
                             "checkpoint's atlas and denoising, or a checkpoint trained on this one.")

    if theirs["atlas_id"] != identity["atlas_id"]:
        refuse(f"atlas {theirs['atlas_id']} (checkpoint: {identity['atlas_id']})")
    if names != list(identity["parcel_names"]):
        first = _first_difference(names, identity["parcel_names"])
        refuse(f"the parcel order/names (first difference at position {first})")
    if networks != list(identity["parcel_networks"]):
        refuse(f"the parcel-to-network assignment (first difference at position "
               f"{_first_difference(networks, identity['parcel_networks'])})")
    if _canonical(theirs["strategy"]) != _canonical(identity["strategy"]):
        if not allow_strategy_mismatch:
            refuse("the denoising strategy")
        log.warning("%s: denoising strategy differs from %s's; continuing because the mismatch was allowed",
                    source, checkpoint)
    if theirs["space"] != identity.get("space"):
        log.warning("%s: space %s differs from %s's %s; parcels are matched by name", source, theirs["space"],
                    checkpoint, identity.get("space"))


def _first_difference(a, b):
    a, b = list(a), list(b)
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _canonical(value):
    return json.dumps(value, sort_keys=True, default=str)
