"""A discrete vocabulary of network tokens: cosine k-means fitted on training subjects, usage, names, histograms."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.atomic import write_json, write_table_tsv
from semantoks.errors import SemantoksError
from semantoks.language.descriptors import read_reference
from semantoks.language.metrics import unit_rows
from semantoks.features.table import write_feature_table
from semantoks.language.network_tokens import read_network_tokens
from semantoks.language.pairs import is_train

log = logging.getLogger(__name__)


def spherical_kmeans(X, k, n_iter=50, seed=0):
    """Unit centroids [k, D] maximising the summed cosine of rows to their centroid (k-means++ start)."""
    X = unit_rows(X)
    if len(X) < k:
        raise SemantoksError(f"language.codes.k: {k} codes but only {len(X)} training tokens; lower k.")
    rng = np.random.default_rng(seed)
    centroids = [X[rng.integers(len(X))]]
    for _ in range(1, k):
        distance = np.clip(1.0 - np.max(X @ np.array(centroids).T, axis=1), 0, None)
        p = distance / distance.sum() if distance.sum() > 0 else None
        centroids.append(X[rng.choice(len(X), p=p)])
    centroids = np.array(centroids)
    for _ in range(n_iter):
        similarity = X @ centroids.T
        codes = similarity.argmax(axis=1)
        updated = centroids.copy()
        for c in range(k):
            members = X[codes == c]
            # an emptied code restarts at the token it fits worst, so K stays K
            updated[c] = members.mean(axis=0) if len(members) else X[similarity.max(axis=1).argmin()]
        updated = unit_rows(updated)
        if np.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


def assign_codes(X, centroids):
    """Nearest centroid by cosine; -1 for zero rows (networks without valid parcels)."""
    codes = (unit_rows(X) @ centroids.T).argmax(axis=1)
    return np.where(np.linalg.norm(X, axis=1) > 0, codes, -1)


def usage(codes, k, networks_of_codes):
    """Perplexity (exp of usage entropy), dead codes, and each network's code entropy in bits."""
    valid = codes >= 0
    counts = np.bincount(codes[valid], minlength=k)
    p = counts / max(counts.sum(), 1)
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    per_network = {}
    for network in dict.fromkeys(networks_of_codes):
        own = codes[valid & (networks_of_codes == network)]
        q = np.bincount(own, minlength=k) / max(len(own), 1)
        per_network[network] = float(-(q[q > 0] * np.log2(q[q > 0])).sum())
    return {"k": int(k), "perplexity": float(np.exp(entropy)), "dead_codes": int((counts == 0).sum()),
            "network_entropy_bits": per_network}


def code_histograms(codes, k):
    """[n_scans, n_networks * k] float32: per network, a one-hot of its code (zeros when the network is invalid)."""
    n_scans, n_networks = codes.shape
    features = np.zeros((n_scans, n_networks, k), dtype=np.float32)
    scan, network = np.nonzero(codes >= 0)
    features[scan, network, codes[scan, network]] = 1.0
    return features.reshape(n_scans, n_networks * k)


def name_codes(centroids, tokens, codes, networks_of_tokens, sentences, n_sentences=3):
    """Each code's share, commonest network, and the sentences of the member tokens nearest its centroid."""
    rows = []
    similarity = unit_rows(tokens) @ centroids.T
    for c in range(len(centroids)):
        members = np.flatnonzero(codes == c)
        nearest = members[np.argsort(-similarity[members, c])][:n_sentences]
        networks = pd.Series(networks_of_tokens[members]).value_counts()
        rows.append({"code": c, "n_tokens": int(len(members)), "share": float(len(members) / max(len(codes), 1)),
                     "top_network": networks.index[0] if len(networks) else None,
                     "nearest_sentences": " | ".join(sentences[i] for i in nearest if sentences[i])})
    return pd.DataFrame(rows)


def codes_stage(tokens_parquet, descriptor_dir, out_dir, k=32, seed=0):
    """Fit the codebook on training subjects' tokens; write codes_K.parquet (feature set), usage and names."""
    out = Path(out_dir)
    record, _ = read_reference(Path(descriptor_dir) / "reference.json")
    meta, tokens, token_record = read_network_tokens(tokens_parquet)
    networks = np.array(token_record["networks"])
    n_scans, n_networks, dim = tokens.shape
    flat = tokens.reshape(-1, dim)
    token_network = np.tile(networks, n_scans)
    token_train = np.repeat(is_train(meta, record["split"]["train"]), n_networks)
    fit_rows = token_train & (np.linalg.norm(flat, axis=1) > 0)
    centroids = spherical_kmeans(flat[fit_rows], k, seed=seed)
    codes = assign_codes(flat, centroids)
    texts = pd.read_parquet(Path(descriptor_dir) / "texts.parquet")
    canonical = texts[(texts["level"] == "network") & (texts["variant"] == 0)]
    sentence = dict(zip(zip(canonical["cohort"], canonical["scan_id"], canonical["unit"]), canonical["text"]))
    token_keys = [(c, s, n) for c, s in zip(meta["cohort"], meta["scan_id"]) for n in networks]
    sentences = np.array([sentence.get(key, "") for key in token_keys], dtype=object)
    names = name_codes(centroids, flat[token_train], codes[token_train], token_network[token_train],
                       sentences[token_train])
    stats = {"train": usage(codes[token_train], k, token_network[token_train]),
             "all": usage(codes, k, token_network), "descriptor_identity": record["identity"],
             "checkpoint_sha256": token_record["checkpoint_sha256"], "seed": int(seed)}
    write_feature_table(out / f"codes_{k}.parquet", meta, code_histograms(codes.reshape(n_scans, n_networks), k),
                        {"feature": f"one-hot network codes (K={k})", "networks": networks.tolist(), **stats})
    write_table_tsv(out / f"codes_{k}_names.tsv", names)
    write_json(out / f"codes_{k}_usage.json", {**stats, "centroids": centroids.tolist()})
    log.info("codebook K=%d: perplexity %.1f, %d dead codes", k, stats["train"]["perplexity"], stats["train"]["dead_codes"])
    return stats
