"""Descriptor z-scores -> texts: one text per family and one sentence per network, in a few wordings.

Variant 0 is the canonical wording (evaluation); the others are hand-written paraphrases used as
training augmentation, picked per scan by `seeded_variant`.
"""

import hashlib

import numpy as np

N_VARIANTS = 3
HUMAN_NAMES = {
    "Vis": "Visual", "SomMot": "Somatomotor", "DorsAttn": "Dorsal attention",
    "SalVentAttn": "Ventral attention / Salience", "Limbic": "Limbic", "Cont": "Control",
    "Default": "Default mode", "TempPar": "Temporo-parietal", "Subcortex": "Subcortex",
    "VisCent": "Visual (central)", "VisPeri": "Visual (peripheral)",
}
DYNAMICS_WORDS = {"falff": "fALFF", "spectral_ratio": "low-to-high frequency power ratio",
                  "autocorr": "lag-1 autocorrelation", "amplitude": "mean amplitude", "sd": "signal variability",
                  "outliers": "share of extreme frames"}


def band(z):
    """The spec's five bands of a z-score."""
    if z < -2:
        return "markedly lower"
    if z < -1:
        return "somewhat reduced"
    if z <= 1:
        return "typical"
    if z <= 2:
        return "somewhat elevated"
    return "markedly elevated"


def human_name(network):
    """Readable network name: Yeo-7/17 short names spelled out, A/B/C sub-networks kept as a suffix."""
    if network in HUMAN_NAMES:
        return HUMAN_NAMES[network]
    base, suffix = network[:-1], network[-1:]
    if base in HUMAN_NAMES and suffix in "ABC":
        return f"{HUMAN_NAMES[base]} {suffix}"
    return network


def seeded_variant(seed, scan_id, unit):
    """The augmentation wording (1..N_VARIANTS-1) of one text of one scan, fixed by the seed."""
    digest = hashlib.sha256(f"{seed}|{scan_id}|{unit}".encode()).digest()
    return 1 + digest[0] % (N_VARIANTS - 1)


def _phrase(label, z):
    return f"{label} {band(z)} (z={z:+.1f})"


def fc_text(z, networks, variant=0):
    """The three highest and three lowest within/between-network couplings by z."""
    pairs = [(networks[i], networks[j]) for i, j in zip(*np.triu_indices(len(networks)))]
    named = [(pair, value) for pair, value in zip(pairs, z) if np.isfinite(value)]
    ranked = sorted(named, key=lambda item: -item[1])

    def label(pair):
        a, b = pair
        return f"within {human_name(a)}" if a == b else f"{human_name(a)} with {human_name(b)}"

    high = "; ".join(_phrase(label(p), v) for p, v in ranked[:3])
    low = "; ".join(_phrase(label(p), v) for p, v in ranked[::-1][:3])
    return [
        f"Network connectivity. Highest coupling: {high}. Lowest coupling: {low}.",
        f"Functional connectivity between networks is highest for {high}, and lowest for {low}.",
        f"Connectivity profile: strongest {high}; weakest {low}.",
    ][variant]


def gradient_text(z_ranges, variant=0):
    ordinal = ["principal", "second", "third"]
    parts = "; ".join(_phrase(f"{ordinal[k]} gradient range", v) for k, v in enumerate(z_ranges) if np.isfinite(v))
    return [
        f"Functional gradients. {parts[:1].upper()}{parts[1:]}.",
        f"Macroscale gradients: {parts}.",
        f"Connectivity gradients show {parts}.",
    ][variant]


def graph_text(z_efficiency, z_modularity, z_clustering, variant=0):
    segregation = " (more segregated)" if z_modularity > 1 else " (more integrated)" if z_modularity < -1 else ""
    parts = (f"{_phrase('global efficiency', z_efficiency)}; {_phrase('modularity', z_modularity)}{segregation}; "
             f"{_phrase('weighted clustering', z_clustering)}")
    return [
        f"Graph organisation. {parts[:1].upper()}{parts[1:]}.",
        f"Network topology: {parts}.",
        f"As a graph, the brain shows {parts}.",
    ][variant]


def dynamics_text(z_by_measure, networks, variant=0):
    """Per measure, the networks outside the typical band (or that all are typical)."""
    clauses = []
    for measure, values in z_by_measure.items():
        unusual = [f"{human_name(n)} {band(v)}" for n, v in zip(networks, values) if np.isfinite(v) and abs(v) > 1]
        clauses.append(f"{DYNAMICS_WORDS[measure]} " + (", ".join(unusual) if unusual else "typical in every network"))
    parts = "; ".join(clauses)
    return [
        f"Network dynamics. {parts[:1].upper()}{parts[1:]}.",
        f"Temporal dynamics of the networks: {parts}.",
        f"Over time, {parts}.",
    ][variant]


def network_sentence(network, z_within, z_strength, z_position, z_dynamics, variant=0):
    """One network's values in one sentence (z_dynamics: measure -> z); NaN values are left out."""
    parts = [_phrase("within-network coupling", z_within), _phrase("mean strength", z_strength),
             _phrase("principal-gradient position", z_position)]
    parts += [_phrase(DYNAMICS_WORDS[m], v) for m, v in z_dynamics.items()]
    parts = [p for p in parts if "nan" not in p]
    body = "; ".join(parts)
    name = human_name(network)
    return [f"{name}: {body}.", f"{name} network: {body}.", f"In the {name} network, {body}."][variant]


def scan_texts(z, names, networks, omitted_networks=(), variant=0):
    """{unit: text} of one scan: the four family texts and one sentence per network not omitted."""
    value = dict(zip(names, z))
    pairs = [f"fc.{networks[i]}--{networks[j]}" for i, j in zip(*np.triu_indices(len(networks)))]
    measures = list(DYNAMICS_WORDS)
    texts = {
        "fc": fc_text([value[p] for p in pairs], networks, variant),
        "gradient": gradient_text([value[f"gradient.range.{k}"] for k in (1, 2, 3)], variant),
        "graph": graph_text(value["graph.efficiency"], value["graph.modularity"], value["graph.clustering"], variant),
        "dynamics": dynamics_text({m: [value[f"dynamics.{m}.{n}"] for n in networks] for m in measures}, networks,
                                  variant),
    }
    for n in networks:
        if n in omitted_networks:
            continue
        texts[n] = network_sentence(n, value[f"fc.{n}--{n}"], value[f"graph.strength.{n}"],
                                    value[f"gradient.position.{n}"],
                                    {m: value[f"dynamics.{m}.{n}"] for m in ("falff", "spectral_ratio", "autocorr")},
                                    variant)
    return texts
