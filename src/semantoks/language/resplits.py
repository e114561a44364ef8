"""Repeated language splits: everything a split decides (z-reference, texts, the encoder's IDF, heads) redone per split.

The descriptors themselves are per-scan measures and stay; the gradients keep their Procrustes
alignment to the first split's group map (an unsupervised fit on its training scans, no labels).
"""

from semantoks.language.align import fit_head
from semantoks.language.descriptors import KEY_COLUMNS, ZReference, texts_table
from semantoks.language.pairs import is_train, network_pairs, network_text_targets, scan_pairs, scan_text_targets
from semantoks.language.split import language_split
from semantoks.language.text_embed import fit_and_encode


def split_seeds(seed, n_repeats):
    """Seeds of the repeated splits; the stages' own split is `seed`, so these start after it."""
    return [seed + 1 + r for r in range(n_repeats)]


def resplit_texts(table, reference, record, encoder_name, train_subjects, seed):
    """(text keys, text embeddings) of every described scan, with reference, texts and encoder fitted on `train_subjects`."""
    raw = table[KEY_COLUMNS + reference.names]
    refit = ZReference.fit(raw, train_subjects, reference.gradients)
    texts = texts_table(raw, refit, record["networks"], record["omitted_networks"], seed)
    _, embeddings = fit_and_encode(texts, train_subjects, encoder_name)
    return texts.drop(columns="text"), embeddings


def resplit_heads(meta, X, token_meta, tokens, networks, text_keys, text_embeddings, train_subjects, steps, seed):
    """(scan targets, network targets, scan head, network head) of one split, the heads fitted on its training subjects."""
    scan_targets = scan_text_targets(text_keys, text_embeddings)
    network_targets = network_text_targets(text_keys, text_embeddings)
    heads = []
    for features, targets, pair_meta in (scan_pairs(meta, X, scan_targets),
                                         network_pairs(token_meta, tokens, networks, network_targets)):
        rows = is_train(pair_meta, train_subjects)
        heads.append(fit_head(features[rows], targets[:, rows], steps=steps, seed=seed)[0])
    return scan_targets, network_targets, *heads


def repeated_language_splits(meta, seed, n_repeats, test_size):
    """[(seed, train subject keys)] of `n_repeats` further subject-grouped splits of the scans in `meta`."""
    return [(s, language_split(meta["cohort"], meta["subject"], test_size, s)[0]) for s in split_seeds(seed, n_repeats)]
