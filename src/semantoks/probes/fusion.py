"""The probe's feature-set registry, and fused sets: file-level sets side by side, each block weighted equally.

A fused set `a+b` is never written to disk: the probe concatenates the aligned blocks per scan, and
each split's `SplitBasis` standardises every column on that split's training scans and divides it
by sqrt(width of its block), so each block carries the same total variance into the penalised fit
whatever its width (64 embedding dimensions do not outvote 28 network-FC means, or vice versa).
"""

import numpy as np

from semantoks.errors import SemantoksError
from semantoks.probes.load import CONNECTIVITY_KINDS

MODEL_FEATURE_SETS = ("model", "random_init")
FILE_FEATURE_SETS = MODEL_FEATURE_SETS + CONNECTIVITY_KINDS
FUSED_FEATURE_SETS = {"model+network_fc": ("model", "network_fc")}
PROBE_FEATURE_SETS = FILE_FEATURE_SETS + tuple(FUSED_FEATURE_SETS)
# the language stages' feature sets (docs/language.md), probed in their own job beside the others
ALIGNED_FEATURE_SET = "model_aligned"


def components(name):
    """The file-level feature sets a probed set is made of (itself when it is not fused)."""
    if "+" in name and name not in FUSED_FEATURE_SETS:
        raise SemantoksError(
            f"config.yaml: probe.feature_sets names {name!r}; use any of {', '.join(PROBE_FEATURE_SETS)}."
        )
    return FUSED_FEATURE_SETS.get(name, (name,))


def probed_feature_sets(names, pretrain_enabled=True):
    """The configured sets that can run: without pretraining, none that needs the model's embeddings."""
    if pretrain_enabled:
        return list(names)
    return [name for name in names if not set(components(name)) & set(MODEL_FEATURE_SETS)]


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
