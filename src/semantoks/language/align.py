"""Alignment heads: frozen fMRI features -> the frozen text space, trained with a SigLIP-style sigmoid loss.

A head is a linear map of standardised features onto the unit sphere of the text space, with a
learnable temperature and bias in the pairwise sigmoid loss (positives: a scan or network token with its
own text; negatives: every other pair in the batch). Only training subjects' pairs are ever seen.
"""

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semantoks.atomic import atomic_path, write_json
from semantoks.dataset.keys import key_cohort
from semantoks.errors import SemantoksError
from semantoks.features.table import read_feature_table, write_feature_table
from semantoks.language.descriptors import read_reference
from semantoks.language.label_transfer import (
    check_label_prompts,
    held_out_cohorts,
    loco_head_names,
    phenotype_text_vectors,
)
from semantoks.language.network_tokens import read_network_tokens
from semantoks.language.pairs import is_train, network_pairs, network_text_targets, scan_pairs, scan_text_targets
from semantoks.language.text_embed import encoder_from_record, read_text_embeddings
from semantoks.language.text_encoders import identity_difference

log = logging.getLogger(__name__)


class AlignmentHead(nn.Module):
    """Standardise -> linear -> L2-normalise; `log_scale` and `bias` parameterise the sigmoid loss."""

    def __init__(self, in_dim, out_dim, mean=None, std=None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(in_dim) if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.proj = nn.Linear(in_dim, out_dim)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))
        self.bias = nn.Parameter(torch.tensor(-10.0))

    def forward(self, x):
        return F.normalize(self.proj((x - self.mean) / self.std), dim=-1)

    @torch.no_grad()
    def project(self, features):
        """float32 [n, text_dim] unit vectors for a numpy feature matrix."""
        return self(torch.as_tensor(np.asarray(features), dtype=torch.float32)).numpy()


def sigmoid_loss(z, y, log_scale, bias):
    """SigLIP loss of a batch: row i of `z` matches row i of `y`, every other pair is a negative."""
    logits = z @ y.T * log_scale.exp() + bias
    labels = 2.0 * torch.eye(len(z), device=z.device) - 1.0
    return -F.logsigmoid(labels * logits).sum() / len(z)


def fit_head(features, targets, steps=300, batch_size=256, lr=1e-2, weight_decay=1e-4, seed=0):
    """Train a head on (features [n, F], targets [n_variants, n, d]); each step draws one variant per pair.

    Returns (head, per-step losses). Targets are unit text embeddings; variant 0 is the canonical text.
    """
    features = np.asarray(features, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    if targets.ndim == 2:
        targets = targets[None]
    if len(features) < 2:
        raise SemantoksError("language.align: fewer than 2 training pairs; add training subjects.")
    generator = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    std = features.std(axis=0)
    head = AlignmentHead(features.shape[1], targets.shape[2], features.mean(axis=0), np.where(std > 0, std, 1.0))
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    x_all, y_all = torch.from_numpy(features), torch.from_numpy(targets)
    losses = []
    for _ in range(steps):
        rows = torch.randperm(len(x_all), generator=generator)[:batch_size]
        variant = torch.randint(0, y_all.shape[0], (len(rows),), generator=generator)
        loss = sigmoid_loss(head(x_all[rows]), y_all[variant, rows], head.log_scale, head.bias)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return head.eval(), losses


def save_head(path, head, identity):
    """The head's weights, sizes and identities (text encoder, descriptors, features) in one torch file."""
    state = {"state_dict": head.state_dict(), "in_dim": head.proj.in_features, "out_dim": head.proj.out_features,
             "identity": identity}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_head(path, text_encoder=None, descriptor_identity=None):
    """(head, identity); one line if it was trained for another text encoder or another descriptor reference."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SemantoksError(f"{path}: alignment head not found; run the align stage first.") from None
    identity = state["identity"]
    if text_encoder is not None and identity["text_encoder"] != text_encoder:
        trained = identity["text_encoder"]
        # name and hash may agree while another field differs: say which, or the two identities read the same
        raise SemantoksError(f"{path}: trained for text encoder {trained.get('name')} "
                             f"({(trained.get('weights_hash') or '')[:12]}), not the "
                             f"{text_encoder.get('name')} ({(text_encoder.get('weights_hash') or '')[:12]}) given "
                             f"({identity_difference(trained, text_encoder)}); rerun align with this encoder.")
    if descriptor_identity is not None and identity["descriptor_identity"] != descriptor_identity:
        raise SemantoksError(f"{path}: trained on descriptor reference {identity['descriptor_identity'][:12]}, not "
                             f"{descriptor_identity[:12]}; rerun align after the descriptors stage.")
    head = AlignmentHead(state["in_dim"], state["out_dim"])
    head.load_state_dict(state["state_dict"])
    return head.eval(), identity


def write_aligned_features(path, head, meta, X, identity):
    """Every scan's scan-head projection as the probes' `model_aligned` feature set (embeddings layout)."""
    write_feature_table(path, meta, head.project(X),
                        {"feature": "scan head projection of the model features into the text space", **identity})


def align_stage(descriptor_dir, text_parquet, text_json, features_parquet, tokens_parquet, out_dir,
                phenotypes=None, label_transfer=(), steps=300, seed=0, aligned_features=None):
    """Fit the scan head, the network head and (with `label_transfer` phenotypes) the label-transfer scan head.

    The label-transfer head's targets add the phenotype sentences of the training subjects only; the
    held-out subjects' phenotype sentences never enter any alignment text. A phenotype whose class
    prompts the encoder cannot tell apart is refused before any head is trained. With two or more cohorts,
    each cohort B also gets a leave-one-cohort-out pair (label-transfer head and control head without
    phenotype sentences) trained on the other cohorts' training subjects only. With `aligned_features`,
    the scan head (descriptor texts only, no phenotype sentence) projects every scan there.
    """
    out = Path(out_dir)
    record, _ = read_reference(Path(descriptor_dir) / "reference.json")
    text_keys, text_embeddings, text_record = read_text_embeddings(text_parquet, text_json)
    if text_record["descriptor_identity"] != record["identity"]:
        raise SemantoksError(f"{text_json}: embeds texts of another descriptor reference; rerun text_embed.")
    train = record["split"]["train"]
    if label_transfer:
        check_label_prompts(phenotypes, label_transfer, encoder_from_record(text_record))
    meta, X, _ = read_feature_table(features_parquet)
    token_meta, tokens, token_record = read_network_tokens(tokens_parquet)
    base = {"text_encoder": text_record["encoder"], "descriptor_identity": record["identity"]}
    summary = {"train_subjects": len(train), "heads": {}}

    def fit_and_save(name, features, targets, pair_meta, identity, subjects=train):
        rows = is_train(pair_meta, subjects)
        head, losses = fit_head(features[rows], targets[:, rows], steps=steps, seed=seed)
        save_head(out / f"{name}_head.pt", head, identity)
        summary["heads"][name] = {"n_train_pairs": int(rows.sum()), "loss_first": losses[0], "loss_last": losses[-1],
                                  "temperature": float(head.log_scale.detach().exp()), "bias": float(head.bias.detach())}
        log.info("%s head: %d training pairs, loss %.3f -> %.3f", name, rows.sum(), losses[0], losses[-1])
        return head

    scan_targets = scan_text_targets(text_keys, text_embeddings)
    features, targets, pair_meta = scan_pairs(meta, X, scan_targets)
    features_id = {"features": "scan: cls + mean tokens", "checkpoint_sha256": token_record["checkpoint_sha256"]}
    scan_head = fit_and_save("scan", features, targets, pair_meta, {**base, **features_id, "level": "scan"})
    if aligned_features is not None:
        write_aligned_features(aligned_features, scan_head, meta, X, {**base, **features_id, "head": "scan"})
    network_targets = network_text_targets(text_keys, text_embeddings)
    features, targets, pair_meta = network_pairs(token_meta, tokens, token_record["networks"], network_targets)
    fit_and_save("network", features, targets, pair_meta, {**base, **features_id, "level": "network"})
    if label_transfer:
        encoder = encoder_from_record(text_record)
        extra = phenotype_text_vectors(phenotypes, label_transfer, encoder, train)
        transfer_id = {**base, **features_id, "level": "scan", "phenotypes": list(label_transfer)}
        features, targets, pair_meta = scan_pairs(meta, X, scan_targets, extra)
        fit_and_save("label_transfer", features, targets, pair_meta, transfer_id)
        plain = scan_pairs(meta, X, scan_targets)
        summary["loco"] = held_out_cohorts(meta["cohort"])
        for cohort in summary["loco"]:
            # B's scans and phenotype sentences never enter the heads that are scored on B
            others = [key for key in train if key_cohort(key) != cohort]
            transfer_stem, control_stem = loco_head_names(cohort)
            fit_and_save(transfer_stem, features, targets, pair_meta, {**transfer_id, "held_out_cohort": cohort},
                         others)
            fit_and_save(control_stem, *plain, {**base, **features_id, "level": "scan", "held_out_cohort": cohort},
                         others)
    write_json(out / "align.json", summary)
    return summary
