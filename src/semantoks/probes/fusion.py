"""The probe's feature-set registry, and fused sets: file-level sets side by side, each block weighted equally.

A fused set `a+b` is never written to disk: the probe concatenates the aligned blocks per scan, and
each split's `SplitBasis` standardises every column on that split's training scans and divides it
by sqrt(width of its block), so each block carries the same total variance into the penalised fit
whatever its width (64 embedding dimensions do not outvote 28 network-FC means, or vice versa).
"""

import numpy as np

from semantoks.errors import SemantoksError
from semantoks.probes.load import CONNECTIVITY_KINDS
from semantoks.seeds import seeded_name, split_seed

MODEL_FEATURE_SETS = ("model", "random_init")
FILE_FEATURE_SETS = MODEL_FEATURE_SETS + CONNECTIVITY_KINDS
FUSED_FEATURE_SETS = {"model+network_fc": ("model", "network_fc")}
PROBE_FEATURE_SETS = FILE_FEATURE_SETS + tuple(FUSED_FEATURE_SETS)
# the language stages' feature sets (docs/language.md), probed in their own job beside the others
ALIGNED_FEATURE_SET = "model_aligned"


def components(name):
    """The file-level feature sets a probed set is made of (itself when it is not fused); at a seed
    (`model+network_fc@1`) its model-derived parts are that seed's files (`model@1`, `network_fc`)."""
    base, seed = split_seed(name)
    if "+" in base and base not in FUSED_FEATURE_SETS:
        raise SemantoksError(
            f"config.yaml: probe.feature_sets names {base!r}; use any of {', '.join(PROBE_FEATURE_SETS)}."
        )
    parts = FUSED_FEATURE_SETS.get(base, (base,))
    if seed is None:
        return parts
    return tuple(seeded_name(part, seed) if part in MODEL_FEATURE_SETS else part for part in parts)


def probed_feature_sets(names, pretrain_enabled=True, seeds=None):
    """The configured sets that can run: without pretraining, none that needs the model's embeddings.

    With `seeds` (the pretraining seeds), every set made with `model` or `random_init` is probed once per
    seed (`model@0`, `model@1`, ...; semantoks/seeds.py)."""
    runnable = [name for name in names if pretrain_enabled or not _drawn_per_seed(name)]
    if seeds is None:
        return runnable
    return [drawn for name in runnable
            for drawn in ([seeded_name(name, seed) for seed in seeds] if _drawn_per_seed(name) else [name])]


def _drawn_per_seed(name):
    return bool(set(components(name)) & set(MODEL_FEATURE_SETS))


def language_feature_sets(language):
    """With `language.enabled`: the scan head's projections and the per-scan codes (`codes_<K>`), else none."""
    if not language.get("enabled"):
        return []
    return [ALIGNED_FEATURE_SET, f"codes_{language['codes_k']}"]


def feature_files(names):
    """The file-level sets that `names` need, each once, in first-use order."""
    return list(dict.fromkeys(part for name in names for part in components(name)))


def add_fused_sets(aligned, names):
    """{name: (meta, X)} for `names` from aligned file-level sets, and {name: block widths} of the fused ones."""
    probed, blocks = {}, {}
    for name in names:
        parts = components(name)
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
