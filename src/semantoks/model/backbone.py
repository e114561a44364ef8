"""Network-token transformer encoder; it knows nothing about self-supervision."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from semantoks.model.tokenizer import NetworkTokenizer


def sinusoidal_embedding(n_positions, dim, device=None):
    """Fixed sine/cosine code [n_positions, dim] (Vaswani et al.)."""
    position = torch.arange(n_positions, dtype=torch.float32, device=device)[:, None]
    half = dim // 2
    frequency = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=device) / half)
    code = torch.zeros(n_positions, dim, device=device)
    code[:, 0:2 * half:2] = torch.sin(position * frequency)
    code[:, 1:2 * half:2] = torch.cos(position * frequency)
    return code


def scan_features(out):
    """Encoder output dict -> [B, 2D] float32 feature vectors: CLS concatenated with the mean of valid tokens."""
    weights = out["token_valid"].to(out["tokens"].dtype)[..., None]
    mean_tokens = (out["tokens"] * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return torch.cat([out["cls"], mean_tokens], dim=-1).float()


class DropPath(nn.Module):
    """Stochastic depth: drops a residual branch per sample while training."""

    def __init__(self, rate=0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if self.rate == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1.0 - self.rate)
        return x * keep / (1.0 - self.rate)


class LayerScale(nn.Module):
    def __init__(self, dim, init_value):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, attn_mask=None):
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block with LayerScale and stochastic depth."""

    def __init__(self, dim, heads, mlp_ratio, layerscale_init, drop_path):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layerscale_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x, attn_mask=None):
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), attn_mask)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class NetworkTokenEncoder(nn.Module):
    """Tokenizer + positional code + CLS + pre-LN transformer.

    Tokens are network-major: token n * K + k is network n at time patch k (K = window / patch_len).
    Positional code = learnable per-network embedding + fixed sinusoidal code of the patch index;
    the CLS token has neither. Padded patches and networks without any valid parcel are excluded
    as attention keys; their outputs exist but are marked invalid in `token_valid`.
    """

    def __init__(self, parcel_network, n_networks, dim, depth, heads, mlp_ratio=4.0, window=100,
                 patch_len=20, layerscale_init=0.1, drop_path=0.0, short_kernel=3, long_kernels=(5, 9, 15),
                 long_branch="structured", long_filters=3, long_sub_kernel=4, long_scales=3, long_decay=2.0,
                 tokenizer_norm="per_network"):
        super().__init__()
        if window % patch_len:
            raise ValueError(f"window {window} is not a multiple of patch_len {patch_len}")
        self.dim = dim
        self.n_networks = n_networks
        self.patch_len = patch_len
        self.n_patches = window // patch_len
        self.tokenizer = NetworkTokenizer(parcel_network, dim, patch_len, short_kernel, long_kernels, n_networks,
                                          long_branch=long_branch, norm=tokenizer_norm,
                                          long_structure=(long_filters, long_sub_kernel, long_scales, long_decay))
        self.network_embedding = nn.Parameter(torch.zeros(n_networks, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.register_buffer("temporal_embedding", sinusoidal_embedding(self.n_patches, dim), persistent=False)
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, layerscale_init, r) for r in rates)
        self.norm = nn.LayerNorm(dim)
        self._reset_parameters()

    def _reset_parameters(self):
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for parameter in (self.network_embedding, self.cls_token, self.mask_token):
            nn.init.trunc_normal_(parameter, std=0.02)

    def token_validity(self, parcel_valid, patch_valid):
        """[B, N*K] bool: the token's patch is real and its network has at least one valid parcel."""
        network_valid, _ = self.tokenizer.network_valid(parcel_valid)
        return (network_valid[:, :, None] & patch_valid[:, None, :]).flatten(1)

    def _positional_code(self, n_patches):
        temporal = self.temporal_embedding
        if n_patches != temporal.shape[0]:
            temporal = sinusoidal_embedding(n_patches, self.dim, temporal.device)
        return (self.network_embedding[:, None, :] + temporal[None, :, :]).flatten(0, 1)

    def forward(self, x, parcel_valid=None, patch_valid=None, token_mask=None):
        """x [B, P, T] -> dict(cls [B, D], tokens [B, N*K, D], token_valid [B, N*K])."""
        batch = x.shape[0]
        tokens = self.tokenizer(x, parcel_valid, patch_valid)
        n_patches = tokens.shape[2]
        # Without any validity input every token is real and attention runs unmasked (fastest kernel).
        attend_all = parcel_valid is None and patch_valid is None
        if parcel_valid is None:
            parcel_valid = torch.ones(batch, x.shape[1], dtype=torch.bool, device=x.device)
        if patch_valid is None:
            patch_valid = torch.ones(batch, n_patches, dtype=torch.bool, device=x.device)
        token_valid = self.token_validity(parcel_valid, patch_valid)

        tokens = tokens.flatten(1, 2)
        if token_mask is not None:
            tokens = torch.where(token_mask[:, :, None], self.mask_token.to(tokens.dtype), tokens)
        tokens = tokens + self._positional_code(n_patches)
        sequence = torch.cat([self.cls_token.expand(batch, -1, -1).to(tokens.dtype), tokens], dim=1)
        attn_mask = None
        if not attend_all:
            keys = torch.cat([token_valid.new_ones(batch, 1), token_valid], dim=1)
            attn_mask = keys[:, None, None, :]
        for block in self.blocks:
            sequence = block(sequence, attn_mask)
        sequence = self.norm(sequence)
        return {"cls": sequence[:, 0], "tokens": sequence[:, 1:], "token_valid": token_valid}
