"""The trained text-aligned tokenizer: cosine/EMA codebook, dead-code restarts, soft SigLIP targets, and a
planted vocabulary learned from training tokens only."""

import numpy as np
import pytest
import torch

from semantoks.errors import SemantoksError
from semantoks.language.vq_tokenizer import (
    CosineVectorQuantizer,
    TokenizerConfig,
    codebook_usage,
    fit_tokenizer,
    soft_targets,
)

torch.set_num_threads(1)


def test_quantizer_picks_the_nearest_code_by_cosine_and_moves_it_toward_its_members():
    quantizer = CosineVectorQuantizer(2, 2, decay=0.5)
    quantizer.codes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    quantizer.ema_sum.copy_(quantizer.codes)
    z = torch.tensor([[3.0, 1.0], [2.0, 1.0]])
    quantised, index, commitment = quantizer(z)
    assert index.tolist() == [0, 0] and commitment > 0
    # straight-through: the forward value is the code, the gradient reaches z
    torch.testing.assert_close(quantised.detach(), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert quantizer.codes[0, 1] > 0 and torch.allclose(quantizer.codes.norm(dim=1), torch.ones(2))
    assert quantizer.idle_steps.tolist() == [0, 1]


def test_a_code_idle_for_too_long_restarts_at_an_encoding():
    quantizer = CosineVectorQuantizer(3, 2, decay=0.9)
    quantizer.idle_steps.copy_(torch.tensor([0, 5, 1]))
    z = torch.tensor([[0.0, 2.0]])
    assert quantizer.restart_dead(z, 5, torch.Generator().manual_seed(0)) == 1
    torch.testing.assert_close(quantizer.codes[1], torch.tensor([0.0, 1.0]))
    assert quantizer.idle_steps.tolist() == [0, 0, 1]


def test_soft_targets_keep_duplicate_texts_positive():
    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=-1)
    targets = soft_targets(text, floor=0.5)
    assert targets[0, 1] == 1.0 and targets[0, 2] == 0.0 and 0 < targets[0, 3] < 1
    torch.testing.assert_close(targets.diagonal(), torch.ones(4))


def planted(n=600, kinds=6, dim=24, text_dim=16, seed=0):
    """Tokens from `kinds` clusters; each cluster has its own sentence vector."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(kinds, size=n)
    centres = 3 * rng.standard_normal((kinds, dim))
    tokens = centres[kind] + rng.standard_normal((n, dim))
    sentences = rng.standard_normal((kinds, text_dim))
    sentences /= np.linalg.norm(sentences, axis=1, keepdims=True)
    return tokens.astype(np.float32), sentences[kind].astype(np.float32), kind


def test_tokenizer_learns_a_planted_vocabulary_that_holds_on_held_out_tokens():
    tokens, texts, kind = planted()
    config = TokenizerConfig(codebook_size=12, code_dim=16, hidden=64, steps=150, batch_size=128)
    model, history = fit_tokenizer(tokens[:400], texts[:400], config)
    for name in ("reconstruction", "alignment"):
        assert np.mean(history[name][-10:]) < np.mean(history[name][:10])
    codes = model.encode_codes(tokens[400:])
    usage = codebook_usage(codes, 12)
    assert usage["perplexity"] >= 4 and usage["dead_codes"] + usage["perplexity"] <= 12
    # each held-out token's code names its cluster: a code's members share one kind
    purity = np.mean([np.bincount(kind[400:][codes == c]).max() / (codes == c).sum() for c in np.unique(codes)])
    assert purity > 0.9
    again, _ = fit_tokenizer(tokens[:400], texts[:400], config)
    np.testing.assert_array_equal(again.encode_codes(tokens[400:]), codes)


def test_fewer_training_tokens_than_codes_is_one_line():
    tokens, texts, _ = planted(n=10)
    with pytest.raises(SemantoksError, match="32 codes but only 10 training tokens"):
        fit_tokenizer(tokens, texts, TokenizerConfig())
