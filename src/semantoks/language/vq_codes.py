"""The vq_codes stage: train the text-aligned tokenizer on training subjects' network tokens, write its codes.

Outputs beside the k-means codes: `vq_K.parquet` (per network a one-hot of its code, the probes'
embeddings layout), `vq_K_usage.json` (perplexity and dead codes on training and all tokens, losses,
restarts) and `vq_K_tokenizer.pt` (weights, config and identities).
"""

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from semantoks.atomic import atomic_path, write_json
from semantoks.errors import SemantoksError
from semantoks.features.table import write_feature_table
from semantoks.language.codes import code_histograms
from semantoks.language.descriptors import read_reference
from semantoks.language.network_tokens import read_network_tokens
from semantoks.language.pairs import is_train, network_pairs, network_text_targets
from semantoks.language.text_embed import read_text_embeddings
from semantoks.language.vq_tokenizer import TokenizerConfig, codebook_usage, fit_tokenizer

log = logging.getLogger(__name__)


def vq_codes_stage(tokens_parquet, descriptor_dir, text_parquet, text_json, out_dir, codebook_size=32, steps=300,
                   seed=0):
    """Fit on the training subjects' (network token, canonical network sentence) pairs; code every token."""
    out = Path(out_dir)
    record, _ = read_reference(Path(descriptor_dir) / "reference.json")
    text_keys, text_embeddings, text_record = read_text_embeddings(text_parquet, text_json)
    if text_record["descriptor_identity"] != record["identity"]:
        raise SemantoksError(f"{text_json}: embeds texts of another descriptor reference; rerun text_embed.")
    meta, tokens, token_record = read_network_tokens(tokens_parquet)
    networks = token_record["networks"]
    features, targets, pair_meta = network_pairs(meta, tokens, networks, network_text_targets(text_keys,
                                                                                              text_embeddings))
    train = is_train(pair_meta, record["split"]["train"]) & (np.linalg.norm(features, axis=1) > 0)
    config = TokenizerConfig(codebook_size=codebook_size, steps=steps, seed=seed)
    model, history = fit_tokenizer(features[train], targets[0, train], config)
    n_scans, n_networks, dim = tokens.shape
    flat = tokens.reshape(-1, dim)
    codes = np.where(np.linalg.norm(flat, axis=1) > 0, model.encode_codes(flat), -1)
    token_train = np.repeat(is_train(meta, record["split"]["train"]), n_networks) & (codes >= 0)
    identity = {"text_encoder": text_record["encoder"], "descriptor_identity": record["identity"],
                "checkpoint_sha256": token_record["checkpoint_sha256"]}
    stats = {"train": codebook_usage(codes[token_train], codebook_size),
             "all": codebook_usage(codes[codes >= 0], codebook_size), "n_train_pairs": int(train.sum()),
             "restarts": history["restarts"],
             "loss_first": {name: history[name][0] for name in ("reconstruction", "commitment", "alignment")},
             "loss_last": {name: float(np.mean(history[name][-10:]))
                           for name in ("reconstruction", "commitment", "alignment")},
             "config": asdict(config), **identity}
    with atomic_path(out / f"vq_{codebook_size}_tokenizer.pt") as tmp:
        torch.save({"state_dict": model.state_dict(), "in_dim": int(dim), "text_dim": int(targets.shape[2]),
                    "config": asdict(config), "identity": identity}, tmp)
    write_feature_table(out / f"vq_{codebook_size}.parquet", meta,
                      code_histograms(codes.reshape(n_scans, n_networks), codebook_size),
                      {"feature": f"one-hot network codes of the text-aligned VQ tokenizer (K={codebook_size})",
                       "networks": list(networks), **stats})
    write_json(out / f"vq_{codebook_size}_usage.json", stats)
    log.info("VQ tokenizer K=%d: perplexity %.1f, %d dead codes, %d restarts", codebook_size,
             stats["train"]["perplexity"], stats["train"]["dead_codes"], history["restarts"])
    return stats
