"""`semantoks export`: the teacher encoder as model.safetensors + config.json + a README.md model card."""

import hashlib
import json
from pathlib import Path

import torch

from semantoks import __version__
from semantoks.atomic import atomic_path, write_json, write_text
from semantoks.errors import SemantoksError
from semantoks.seeds import split_seed

FORMAT = "semantoks-encoder"
# 2: config.json and README.md digests in the weights file's metadata (every file of the folder is checked)
FORMAT_VERSION = 2
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


def export_model(checkpoint, out_dir, probes_summary=None, training_log=None):
    """Write the exported folder; `probes_summary` (summary.tsv) and `training_log` (log.csv) feed the card."""
    from safetensors.torch import save_file

    from semantoks.model.checkpoint import checkpoint_sha256, load_checkpoint, load_encoder

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = load_checkpoint(checkpoint)
    encoder, identity = load_encoder(checkpoint, which="teacher")
    # contiguous copies: safetensors refuses views that share storage
    weights = {key: value.detach().contiguous().clone() for key, value in encoder.state_dict().items()}
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "semantoks_version": __version__,
        "pretrain_config": state["config"], "data_identity": identity, "step": int(state["step"]),
        "stopped_early": state.get("stopped_early"),
        "source_checkpoint_sha256": checkpoint_sha256(checkpoint),
        "weights_sha256": _weights_digest(weights),
    }
    write_json(out_dir / CONFIG_NAME, config)
    write_text(out_dir / CARD_NAME, model_card(config, probes_summary, training_log))
    # the weights file, written last, carries the digests of the other two as written: an edited config.json or
    # card is refused at load
    metadata = {"format": FORMAT, "weights_sha256": config["weights_sha256"],
                "config_sha256": _config_digest(json.loads((out_dir / CONFIG_NAME).read_text())),
                "card_sha256": _text_digest((out_dir / CARD_NAME).read_text())}
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file(weights, str(tmp), metadata=metadata)
    return out_dir


def read_export_config(folder):
    """config.json of an exported folder, checked for its format; one line naming the file otherwise."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise SemantoksError(f"{folder}: no {CONFIG_NAME}; pass a checkpoint.pt or a folder written by semantoks export.")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SemantoksError(f"{path}: not readable JSON ({error}); re-export the model with semantoks export.") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise SemantoksError(f"{path}: not a semantoks export (format {config.get('format') if isinstance(config, dict) else None!r}); "
                             "re-export the model with semantoks export.")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise SemantoksError(f"{path}: format version {config['format_version']} is newer than this semantoks "
                             f"({__version__}) reads; upgrade semantoks.")
    return config


def load_exported(folder, config):
    """(encoder in eval mode, data_identity, weights sha256) of an exported folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from semantoks.model.checkpoint import build_encoder_from

    weights_path = Path(folder) / WEIGHTS_NAME
    if not weights_path.is_file():
        raise SemantoksError(f"{folder}: no {WEIGHTS_NAME}; re-export the model with semantoks export.")
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SemantoksError(f"{weights_path}: unreadable ({error}); re-export the model with semantoks export.") from None
    identity = config["data_identity"]
    encoder = build_encoder_from(config["pretrain_config"], identity)
    expected = encoder.state_dict()
    mismatched = sorted(set(expected) ^ set(weights)) or sorted(
        key for key in expected if tuple(expected[key].shape) != tuple(weights[key].shape))
    if mismatched:
        raise SemantoksError(f"{folder}: {CONFIG_NAME} does not describe {WEIGHTS_NAME} (first mismatch: "
                             f"{mismatched[0]}); re-export both from the same checkpoint.")
    if _weights_digest(weights) != config.get("weights_sha256"):
        raise SemantoksError(f"{weights_path}: its weights differ from those {CONFIG_NAME} records; "
                             "re-export both from the same checkpoint.")
    _check_folder_digests(Path(folder), config)
    encoder.load_state_dict(weights)
    encoder.eval().requires_grad_(False)
    return encoder, identity, config["weights_sha256"]


def _check_folder_digests(folder, config):
    """config.json and README.md must be the files exported with these weights (parcel order, TR, z-scoring
    and the card's claims all change what an embedding means)."""
    from safetensors import safe_open

    with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as weights_file:
        recorded = weights_file.metadata() or {}
    card_path = folder / CARD_NAME
    found = {"config_sha256": (_config_digest(config), CONFIG_NAME),
             "card_sha256": (_text_digest(card_path.read_text()) if card_path.is_file() else None, CARD_NAME)}
    for key, (digest, name) in found.items():
        if recorded.get(key) != digest:
            raise SemantoksError(f"{folder / name}: differs from the file exported with {WEIGHTS_NAME} (digest "
                                 f"{key} does not match); restore it or re-export the model with semantoks export.")


def _config_digest(config):
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _text_digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def model_card(config, probes_summary=None, training_log=None):
    """README.md of an exported model: what it was trained on, how to feed it, how well it did, its limits."""
    identity, cfg = config["data_identity"], config["pretrain_config"]
    prep = identity["preprocessing"]
    names = identity["parcel_names"]
    lines = [
        f"# semantoks network-token encoder ({cfg['model'].get('preset') or 'custom'}, {identity['atlas_id']})",
        "",
        "The frozen teacher encoder of a self-distilled network-token model (Brain-Semantoks style), exported by "
        f"semantoks {config['semantoks_version']}. Load it with `semantoks.load_model(\"<this folder>\")`.",
        "",
        "## Training data",
        f"- cohorts: {', '.join(identity.get('cohorts') or ['all cohorts of the dataset'])}",
        f"- optimiser steps: {config['step']}" + (
            f" of {cfg.get('steps')} planned: training stopped early ({config['stopped_early']})"
            if config.get("stopped_early") else ""),
        f"- atlas: {identity['atlas_id']} in {identity.get('space')}, {len(names)} parcels in this order "
        f"(full list in config.json: data_identity.parcel_names), first {names[0]!r}, last {names[-1]!r}",
        f"- networks (token order): {', '.join(identity['networks'])}",
        f"- denoising: {json.dumps(identity.get('strategy'), sort_keys=True)}",
        "",
        "## Preprocessing applied to every input (by `encode`)",
        f"- resampled to TR {prep['model_tr']} s; band-pass {prep.get('band_pass') or 'none'}; "
        f"z-scored per parcel: {prep.get('zscore')}",
        f"- windows of {prep['window']} TRs cut into {prep['patch_len']}-TR patches; one token per network and patch",
        "- parcels are matched by name; missing parcels are marked invalid; scans shorter than one patch are refused",
        "- NaN and inf are missing values: a parcel holding one is invalid, and a scan with fewer than half its "
        "parcels valid is refused",
        f"- spikes clipped to each parcel's median +- {prep.get('clip_mad')} robust SDs (1.4826 x MAD) before resampling"
        if prep.get("clip_mad") is not None else "- no spike clipping (trained before clipping existed)",
        "",
        "## Architecture",
        f"- {json.dumps(cfg['model'], sort_keys=True)}",
        "",
    ]
    lines += _health_lines(training_log) + _probe_lines(probes_summary)
    lines += [
        "## Intended use and limits",
        "- Research use: frozen features for linear probes of phenotypes on resting-state parcel time series "
        "prepared like the training data (same atlas, denoising and TR handling).",
        "- Not a clinical tool. Features of scans denoised differently, or of another atlas, are not comparable.",
        "- Check the training-health verdict and compare with the connectivity baselines and the random-init "
        "control before reading meaning into probe results.",
        "",
        f"Weights sha256 (of the tensors): {config['weights_sha256']}; source checkpoint sha256: "
        f"{config['source_checkpoint_sha256']}.",
        "",
    ]
    return "\n".join(lines)


def _health_lines(training_log):
    if not training_log or not Path(training_log).is_file():
        return ["## Training health", "- no training log was given to `semantoks export --log`.", ""]
    import pandas as pd

    table = pd.read_csv(training_log)
    last = table.iloc[-1]
    keep = [c for c in table.columns if c.startswith("loss_") or c in ("drift_r", "cka_init", "rankme",
                                                                          "token_cosine", "cls_cosine")]
    lines = ["## Training health (last logged step)", f"- step {int(last['step'])}"]
    lines += [f"- {column}: {last[column]:.4g}" for column in keep if pd.notna(last[column])]
    return lines + [""]


def _probe_lines(probes_summary):
    if not probes_summary or not Path(probes_summary).is_file():
        return ["## Probe results", "- no probe summary was given to `semantoks export --probes`.", ""]
    import pandas as pd

    table = pd.read_csv(probes_summary, sep="\t", na_values=["n/a"])
    lines = _verdict_lines(table, Path(probes_summary).with_name("paired.tsv"))
    lines += ["## Probe results (linear probes, subject-grouped repeated splits)", "",
             "| phenotype | metric | feature set | mean | sd | shuffled mean | p |", "|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        # a set drawn over pretraining seeds is listed once, pooled (its per-seed rows stay in summary.tsv)
        if getattr(row, "status", "ok") != "ok" or split_seed(row.feature_set)[1] is not None:
            continue
        lines.append(f"| {row.phenotype} | {row.metric} | {row.feature_set} | {row.mean:.3f} | {row.sd:.3f} | "
                     f"{row.shuffled_mean:.3f} | {row.p_value:.3g} |")
    return lines + [""]


def _verdict_lines(summary, paired_tsv):
    """The report's lead table, from the paired.tsv beside summary.tsv (the probe stage writes both)."""
    if not paired_tsv.is_file():
        return []
    import pandas as pd

    from semantoks.pretraining_verdict import verdict_markdown, verdict_rows

    paired = pd.read_csv(paired_tsv, sep="\t", na_values=["n/a"])
    return ["## What pretraining bought (probes of the model against its best baseline)", "",
            *verdict_markdown(verdict_rows(summary, paired)), ""]


def _weights_digest(weights):
    digest = hashlib.sha256()
    for key in sorted(weights):
        tensor = weights[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
