"""Network tokenizer: one token per (functional network, time patch) from that network's parcels."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def network_sizes(parcel_network, n_networks=None):
    """Parcel count per network as a numpy array; read on the CPU so models can be built on meta."""
    if isinstance(parcel_network, torch.Tensor):
        parcel_network = parcel_network.cpu().numpy()
    labels = np.asarray(parcel_network, dtype=np.int64)
    if labels.ndim != 1 or labels.size == 0 or labels.min() < 0:
        raise ValueError("parcel_network must be a non-empty 1-D array of network ids >= 0")
    n_networks = int(labels.max()) + 1 if n_networks is None else int(n_networks)
    sizes = np.bincount(labels, minlength=n_networks)
    if len(sizes) != n_networks or (sizes == 0).any():
        raise ValueError(f"parcel_network must use every network id 0..{n_networks - 1} at least once")
    return labels, sizes


class NetworkPatchEncoder(nn.Module):
    """One network's patch [B', parcels, patch_len] -> [B', short_channels + long_channels] features."""

    def __init__(self, n_parcels, short_channels, long_channels, short_kernel, long_kernels):
        super().__init__()
        self.short = nn.Conv1d(n_parcels, short_channels, short_kernel, padding=short_kernel // 2)
        self.depthwise = nn.ModuleList(
            nn.Conv1d(n_parcels, n_parcels, k, padding=k // 2, groups=n_parcels, bias=False)
            for k in long_kernels)
        self.pointwise = nn.Conv1d(n_parcels * len(long_kernels), long_channels, 1)

    def forward(self, x):
        long = self.pointwise(torch.cat([conv(x) for conv in self.depthwise], dim=1))
        return F.gelu(torch.cat([self.short(x), long], dim=1)).mean(dim=-1)


class NetworkTokenizer(nn.Module):
    """Maps (parcels of one network x patch_len samples) to a D-dim token, per network and patch.

    Per network, two parallel branches: a dense Conv1d with the network's parcels as input channels
    and a short kernel, and a multi-scale temporal branch (depthwise convs of several kernel sizes
    per parcel, then a pointwise conv mixing the network's parcels and scales). They are
    concatenated, passed through GELU, mean-pooled over the patch and layer-normalised (shared
    LayerNorm). Invalid parcels are zero-filled and each network's input is rescaled by
    (network size / valid parcels), so a network with dropped parcels is not just quieter.

    The networks run in a Python loop over exact-size convolutions: on CPU this was 2x faster than
    one grouped convolution over networks zero-padded to the largest one (benchmark in the report),
    and every network keeps exact, readable parameters.
    """

    def __init__(self, parcel_network, dim, patch_len=20, short_kernel=3, long_kernels=(5, 9, 15),
                 n_networks=None, short_channels=None):
        super().__init__()
        kernels = (short_kernel, *long_kernels)
        if any(k % 2 == 0 or k < 1 for k in kernels):
            raise ValueError(f"tokenizer kernel sizes must be odd and positive, got {kernels}")
        labels, sizes = network_sizes(parcel_network, n_networks)
        self.n_parcels = int(labels.size)
        self.n_networks = len(sizes)
        self.patch_len = patch_len
        self.dim = dim
        self.sizes = [int(s) for s in sizes]
        short_channels = dim // 2 if short_channels is None else short_channels
        self.register_buffer("parcel_network", torch.as_tensor(labels), persistent=False)
        # Stable sort: parcels grouped by network, atlas order kept within each network.
        self.register_buffer("network_order", torch.as_tensor(np.argsort(labels, kind="stable")),
                             persistent=False)
        self.register_buffer("network_sizes", torch.as_tensor(sizes, dtype=torch.float32), persistent=False)
        self.networks = nn.ModuleList(
            NetworkPatchEncoder(size, short_channels, dim - short_channels, short_kernel, long_kernels)
            for size in self.sizes)
        self.norm = nn.LayerNorm(dim)

    def network_valid(self, parcel_valid):
        """[B, P] bool -> ([B, N] bool: network has a valid parcel, [B, N] float input rescale)."""
        valid_counts = torch.zeros(parcel_valid.shape[0], self.n_networks, device=parcel_valid.device)
        valid_counts.index_add_(1, self.parcel_network, parcel_valid.to(valid_counts.dtype))
        scale = self.network_sizes / valid_counts.clamp(min=1.0)
        return valid_counts > 0, scale

    def forward(self, x, parcel_valid=None, patch_valid=None):
        """x [B, P, T] -> tokens [B, N, K, D] for K = T / patch_len."""
        batch, n_parcels, length = x.shape
        if n_parcels != self.n_parcels or length % self.patch_len:
            raise ValueError(f"expected x of shape [B, {self.n_parcels}, multiple of {self.patch_len}], "
                             f"got {list(x.shape)}")
        n_patches = length // self.patch_len
        keep = torch.ones(batch, n_parcels, length, dtype=torch.bool, device=x.device)
        if parcel_valid is not None:
            keep = keep & parcel_valid[:, :, None]
        if patch_valid is not None:
            keep = keep & patch_valid.repeat_interleave(self.patch_len, dim=1)[:, None, :]
        # where(), not multiply: masked inputs may be NaN.
        x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        if parcel_valid is not None:
            _, scale = self.network_valid(parcel_valid)
            x = x * scale[:, self.parcel_network, None].to(x.dtype)

        patches = x[:, self.network_order].reshape(batch, n_parcels, n_patches, self.patch_len)
        patches = patches.transpose(1, 2).reshape(batch * n_patches, n_parcels, self.patch_len)
        per_network = torch.split(patches, self.sizes, dim=1)
        features = torch.stack([encode(part) for encode, part in zip(self.networks, per_network)], dim=1)
        tokens = self.norm(features)
        return tokens.reshape(batch, n_patches, self.n_networks, self.dim).transpose(1, 2)
