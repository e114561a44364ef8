"""Stage 1 trained: a text-aligned vector-quantised tokenizer over the frozen network tokens (fMRI-LM's stage 1).

One small model trained jointly on the training subjects' network tokens:
- an encoder (MLP) over each standardised network token of the pretrained model (frozen, cached);
- a vector quantiser with a cosine codebook (unit codes, encodings normalised) updated by EMA of its
  members, a commitment loss pulling encodings to their code, and dead-code restarts (a code unused
  for `restart_after` steps jumps to a random encoding of the batch);
- reconstruction of the standardised token from its code (what the tokens encode);
- a soft SigLIP alignment of the pre-quantisation encoding with the frozen text space: the target of
  pair (i, j) is the text-text similarity of their sentences, so scans whose sentences are (near-)
  duplicates are not false negatives.
fMRI-LM's optional domain-adversarial term is not implemented (one cohort in the demo).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semantoks.errors import SemantoksError


@dataclass(frozen=True)
class TokenizerConfig:
    codebook_size: int = 32
    code_dim: int = 32
    hidden: int = 128
    steps: int = 300
    batch_size: int = 256
    lr: float = 3e-3
    ema_decay: float = 0.9
    commitment: float = 0.25
    reconstruction: float = 1.0
    alignment: float = 1.0
    # text-text cosine below this is an unrelated pair (target 0); 1 is the same text
    similarity_floor: float = 0.5
    restart_after: int = 20
    seed: int = 0


class CosineVectorQuantizer(nn.Module):
    """Unit codebook [K, d]; nearest code by cosine, EMA-updated codes, straight-through gradients."""

    def __init__(self, size, dim, decay):
        super().__init__()
        self.decay = decay
        self.register_buffer("codes", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("ema_sum", self.codes.clone())
        self.register_buffer("idle_steps", torch.zeros(size, dtype=torch.long))

    def assign(self, z):
        return (F.normalize(z, dim=-1) @ self.codes.T).argmax(dim=-1)

    def forward(self, z):
        """(quantised with straight-through gradient, code indices, commitment loss) of encodings z [n, d]."""
        z = F.normalize(z, dim=-1)
        index = self.assign(z)
        chosen = self.codes[index]
        commitment = (1.0 - (z * chosen.detach()).sum(dim=-1)).mean()
        if self.training:
            self._ema_update(z.detach(), index)
        return z + (chosen - z).detach(), index, commitment

    @torch.no_grad()
    def _ema_update(self, z, index):
        members = F.one_hot(index, len(self.codes)).float()
        self.ema_sum.mul_(self.decay).add_((1 - self.decay) * members.T @ z)
        used = members.sum(dim=0) > 0
        self.codes.copy_(F.normalize(self.ema_sum, dim=-1))
        self.idle_steps.add_(1).masked_fill_(used, 0)

    @torch.no_grad()
    def restart_dead(self, z, after, generator):
        """Codes idle for `after` steps restart at random encodings of the batch; returns how many restarted."""
        dead = torch.nonzero(self.idle_steps >= after).flatten()
        if len(dead):
            picks = torch.randint(0, len(z), (len(dead),), generator=generator)
            fresh = F.normalize(z[picks].detach(), dim=-1)
            self.codes[dead], self.ema_sum[dead] = fresh, fresh
            self.idle_steps[dead] = 0
        return int(len(dead))


class TextAlignedTokenizer(nn.Module):
    """Standardise -> encoder -> (cosine VQ -> decoder) and (alignment projection into the text space)."""

    def __init__(self, in_dim, text_dim, config, mean=None, std=None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim) if mean is None else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(in_dim) if std is None else torch.as_tensor(std, dtype=torch.float32))
        self.encoder = nn.Sequential(nn.Linear(in_dim, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.code_dim))
        self.quantizer = CosineVectorQuantizer(config.codebook_size, config.code_dim, config.ema_decay)
        self.decoder = nn.Sequential(nn.Linear(config.code_dim, config.hidden), nn.GELU(), nn.Linear(config.hidden, in_dim))
        self.align = nn.Linear(config.code_dim, text_dim)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def standardise(self, x):
        return (x - self.mean) / self.std

    def losses(self, x, text, config):
        """{reconstruction, commitment, alignment, total} of a batch of tokens x and their unit text vectors."""
        target = self.standardise(x)
        z = self.encoder(target)
        quantised, _, commitment = self.quantizer(z)
        reconstruction = F.mse_loss(self.decoder(quantised), target)
        alignment = soft_sigmoid_loss(F.normalize(self.align(z), dim=-1), text, self.log_scale, self.bias,
                                      config.similarity_floor)
        total = (config.reconstruction * reconstruction + config.commitment * commitment
                 + config.alignment * alignment)
        return {"reconstruction": reconstruction, "commitment": commitment, "alignment": alignment, "total": total}

    @torch.no_grad()
    def encode_codes(self, tokens):
        """Code index of every token row (numpy [n, in_dim] -> int64 [n])."""
        x = torch.as_tensor(np.asarray(tokens), dtype=torch.float32)
        return self.quantizer.assign(self.encoder(self.standardise(x))).numpy()


def soft_targets(text, floor):
    """Pair targets in [0, 1] from text-text cosine: 1 for the same text, 0 at or below `floor`."""
    similarity = text @ text.T
    return ((similarity - floor) / (1.0 - floor)).clamp(0.0, 1.0)


def soft_sigmoid_loss(z, text, log_scale, bias, floor):
    """SigLIP's pairwise sigmoid loss with soft labels: near-duplicate texts are not negatives."""
    logits = z @ text.T * log_scale.exp() + bias
    return F.binary_cross_entropy_with_logits(logits, soft_targets(text, floor), reduction="sum") / len(z)


def codebook_usage(codes, size):
    """Perplexity (exp of code-usage entropy; `size` = every code equally used) and the number of dead codes."""
    counts = np.bincount(np.asarray(codes), minlength=size)
    p = counts / max(counts.sum(), 1)
    entropy = -(p[p > 0] * np.log(p[p > 0])).sum()
    return {"codebook_size": int(size), "perplexity": float(np.exp(entropy)), "dead_codes": int((counts == 0).sum())}


def fit_tokenizer(tokens, texts, config=TokenizerConfig()):
    """Train on (tokens [n, D], unit text vectors [n, d]) of training subjects only; returns (model, history).

    `history` holds per-step losses and the dead-code restarts.
    """
    tokens = np.asarray(tokens, dtype=np.float32)
    texts = np.asarray(texts, dtype=np.float32)
    if len(tokens) < config.codebook_size:
        raise SemantoksError(f"language.vq_codebook_size: {config.codebook_size} codes but only {len(tokens)} training "
                             "tokens; lower the codebook size or add training subjects.")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    std = tokens.std(axis=0)
    model = TextAlignedTokenizer(tokens.shape[1], texts.shape[1], config, tokens.mean(axis=0),
                                 np.where(std > 0, std, 1.0))
    with torch.no_grad():
        # codes start at encodings of real tokens, so none starts far from the data
        start = torch.randperm(len(tokens), generator=generator)[:config.codebook_size]
        first = F.normalize(model.encoder(model.standardise(torch.from_numpy(tokens[start.numpy()]))), dim=-1)
        model.quantizer.codes.copy_(first)
        model.quantizer.ema_sum.copy_(first)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    x_all, t_all = torch.from_numpy(tokens), torch.from_numpy(texts)
    history = {name: [] for name in ("total", "reconstruction", "commitment", "alignment")}
    history["restarts"] = 0
    model.train()
    for _ in range(config.steps):
        rows = torch.randperm(len(x_all), generator=generator)[:config.batch_size]
        losses = model.losses(x_all[rows], t_all[rows], config)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        with torch.no_grad():
            encodings = model.encoder(model.standardise(x_all[rows]))
        history["restarts"] += model.quantizer.restart_dead(encodings, config.restart_after, generator)
        for name in ("total", "reconstruction", "commitment", "alignment"):
            history[name].append(float(losses[name].detach()))
    return model.eval(), history
