"""The probe's view of the feature-set registry; fused sets: file-level sets side by side, blocks weighted equally.

A fused set `a+b` is never written to disk: the probe concatenates the aligned blocks per scan, and
each split's `SplitBasis` standardises every column on that split's training scans and divides it
by sqrt(width of its block), so each block carries the same total variance into the penalised fit
whatever its width (64 embedding dimensions do not outvote 28 network-FC means, or vice versa).
"""

import numpy as np

from semantoks.errors import SemantoksError
from semantoks.features.registry import FEATURE_SETS, feature_set, fold_features
from semantoks.seeds import seeded_name, split_seed

PROBE_FEATURE_SETS = tuple(FEATURE_SETS)
# the language stages' feature sets (docs/language.md), probed in their own job beside the others
ALIGNED_FEATURE_SET = "model_aligned"


def components(name):
    """The file-level feature sets a probed set is made of (itself when it is not fused); at a seed
    (`model+network_fc@1`) its per-seed parts are that seed's files (`model@1`, `network_fc`)."""
    base, seed = split_seed(name)
    parts = feature_set(base).components
    if seed is None:
        return parts
    return tuple(seeded_name(part, seed) if FEATURE_SETS[part].per_seed else part for part in parts)


def probed_feature_sets(names, pretrain_enabled=True, seeds=None):
    """The configured sets that can run: without pretraining, none that needs the model's embeddings.

    With `seeds` (the pretraining seeds), every set made with a per-seed set (`model`, `random_init`) is
    probed once per seed (`model@0`, `model@1`, ...; semantoks/seeds.py)."""
    runnable = [name for name in names if pretrain_enabled or not feature_set(name).needs_model]
    if seeds is None:
        return runnable
    return [drawn for name in runnable
            for drawn in ([seeded_name(name, seed) for seed in seeds] if _drawn_per_seed(name) else [name])]


def _drawn_per_seed(name):
    return any(FEATURE_SETS[part].per_seed for part in components(name))


def _loaded_parts(name):
    """The parts of a loaded set: registry sets (at a seed too) by `components`, others (language sets) whole."""
    return components(name) if split_seed(name)[0] in FEATURE_SETS else (name,)


def language_feature_sets(language):
    """With `language.enabled`: the scan head's projections, the k-means codes (`codes_<K>`) and the trained
    tokenizer's codes (`vq_<K>`), else none."""
    if not language.get("enabled"):
        return []
    return [ALIGNED_FEATURE_SET, f"codes_{language['codes_k']}", f"vq_{language['vq_codebook_size']}"]


def feature_files(names):
    """The file-level sets that `names` need, each once, in first-use order."""
    return list(dict.fromkeys(part for name in names for part in components(name)))


def add_fused_sets(aligned, names):
    """{name: (meta, X)} for `names` from aligned file-level sets, and {name: block widths} of the fused ones."""
    probed, blocks = {}, {}
    for name in names:
        parts = _loaded_parts(name)
        missing = [part for part in parts if part not in aligned]
        if missing:
            raise SemantoksError(f"feature set {name!r}: needs {', '.join(missing)}, which was not loaded.")
        if len(parts) == 1:
            probed[name] = aligned[name]
            continue
        meta = aligned[parts[0]][0]
        probed[name] = (meta, np.hstack([aligned[part][1] for part in parts]))
        blocks[name] = [aligned[part][1].shape[1] for part in parts]
    return probed, blocks


def split_features(name, X_train, X_test, blocks=None):
    """One split's (train, test, block widths) of a probed set: each part's fold (e.g. tangent FC) fitted on the
    training rows only. A fused set's stored blocks (`blocks` widths) are folded part by part."""
    parts = _loaded_parts(name)
    if len(parts) == 1:
        return (*fold_features(name, X_train, X_test), blocks)
    edges = np.cumsum([0, *blocks])
    folded = [fold_features(part, X_train[:, lo:hi], X_test[:, lo:hi]) for part, lo, hi in zip(parts, edges, edges[1:])]
    return (np.hstack([train for train, _ in folded]), np.hstack([test for _, test in folded]),
            [train.shape[1] for train, _ in folded])
