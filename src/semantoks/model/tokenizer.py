"""Network tokenizer: one token per (functional network, time patch) from that network's parcels."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semantoks.model.config import LONG_BRANCHES, TOKENIZER_NORMS


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



class StructuredLongKernel(nn.Module):
    """SGConv-style long kernels of one network: `filters` per parcel, each a few multi-scale decaying parts.

    Part i (of `scales`, each `sub_kernel` taps) is stretched 2^max(0, i-1) times (nearest) and weighted
    decay^(scales-1-i); the parts are concatenated into one kernel of sub_kernel * 2^(scales-1) taps (16 for
    4 x 3 scales, the reference's), divided by its norm at init, plus a learned skip (the SSM's D term)
    at the centre tap. Few parameters span most of a patch.
    """

    def __init__(self, n_parcels, filters, sub_kernel, scales, decay):
        super().__init__()
        self.scales, self.decay = scales, decay
        self.parts = nn.ParameterList(nn.Parameter(torch.randn(n_parcels, filters, sub_kernel)) for _ in range(scales))
        self.skip = nn.Parameter(torch.randn(n_parcels, filters))
        self.register_buffer("kernel_norm", self._stretched().norm(dim=-1, keepdim=True).detach())

    def _stretched(self):
        return torch.cat([part.repeat_interleave(2 ** max(0, i - 1), dim=-1) * self.decay ** (self.scales - 1 - i)
                          for i, part in enumerate(self.parts)], dim=-1)

    def kernels(self):
        """[parcels, filters, taps] centred odd-length kernels (a zero tap appended to an even length)."""
        kernel = self._stretched() / self.kernel_norm
        kernel = F.pad(kernel, (0, 1 - kernel.shape[-1] % 2))
        centre = F.one_hot(torch.tensor(kernel.shape[-1] // 2), kernel.shape[-1]).to(kernel.dtype)
        return kernel + self.skip[..., None] * centre.to(kernel.device)


class NetworkPatchEncoder(nn.Module):
    """One network's parameters: a dense short conv over its parcels, per-parcel long kernels, a pointwise mix.

    The long kernels are a StructuredLongKernel (`long`) or depthwise convs of fixed sizes (`depthwise`);
    `norm` is the network's own LayerNorm when the tokenizer normalises per network. It holds parameters
    only: NetworkTokenizer runs every network's convolutions at once.
    """

    def __init__(self, n_parcels, short_channels, long_channels, short_kernel, long_kernels, long_branch="depthwise",
                 structure=(3, 4, 3, 2.0), own_norm=False):
        super().__init__()
        self.short = nn.Conv1d(n_parcels, short_channels, short_kernel, padding=short_kernel // 2)
        if long_branch == "structured":
            self.long = StructuredLongKernel(n_parcels, *structure)
            n_filters = structure[0]
        else:
            self.depthwise = nn.ModuleList(
                nn.Conv1d(n_parcels, n_parcels, k, padding=k // 2, groups=n_parcels, bias=False)
                for k in long_kernels)
            n_filters = len(long_kernels)
        self.pointwise = nn.Conv1d(n_parcels * n_filters, long_channels, 1)
        self.norm = nn.LayerNorm(short_channels + long_channels) if own_norm else None

    def long_kernels(self):
        """[parcels, filters, taps]: every long kernel of the network, centred, zero-padded to the longest."""
        if hasattr(self, "long"):
            return self.long.kernels()
        longest = max(conv.kernel_size[0] for conv in self.depthwise)
        return torch.stack([F.pad(conv.weight[:, 0], ((longest - conv.kernel_size[0]) // 2,) * 2)
                            for conv in self.depthwise], dim=1)


class NetworkTokenizer(nn.Module):
    """Maps (parcels of one network x patch_len samples) to a D-dim token, per network and patch.

    Per network, two parallel branches: a dense Conv1d with the network's parcels as input channels
    and a short kernel, and a long temporal branch (`long_branch` "structured": several SGConv-style
    kernels per parcel, see StructuredLongKernel; "depthwise": one depthwise conv per size in
    `long_kernels`), then a pointwise conv mixing the network's parcels and filters. They are
    concatenated, passed through GELU, mean-pooled over the patch and layer-normalised (`norm`
    "per_network": each network its own LayerNorm, as the reference; "shared": one). Invalid parcels are zero-filled and each network's input is rescaled by
    (network size / valid parcels), so a network with dropped parcels is not just quieter.

    Parameters live per network (`networks[n]`, exact sizes, the state_dict layout of a Python loop
    over networks), but all networks run at once: parcels are gathered into [networks, largest network]
    slots (empty slots read zeros and meet zero weights) and the convolutions become a few batched
    matrix products (see `_encode_patches`). Outputs equal the per-network loop's
    (tests/test_model_tokenizer.py); on CPU it is several times faster (benchmarks/RESULTS.md).
    """

    def __init__(self, parcel_network, dim, patch_len=20, short_kernel=3, long_kernels=(5, 9, 15),
                 n_networks=None, short_channels=None, long_branch="structured", long_structure=(3, 4, 3, 2.0),
                 norm="per_network"):
        super().__init__()
        if long_branch not in LONG_BRANCHES or norm not in TOKENIZER_NORMS:
            raise ValueError(f"long_branch must be one of {LONG_BRANCHES} and norm one of {TOKENIZER_NORMS}")
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
        self.register_buffer("network_sizes", torch.as_tensor(sizes, dtype=torch.float32), persistent=False)
        self.networks = nn.ModuleList(
            NetworkPatchEncoder(size, short_channels, dim - short_channels, short_kernel, long_kernels, long_branch,
                                tuple(long_structure), own_norm=norm == "per_network")
            for size in self.sizes)
        self.norm = nn.LayerNorm(dim) if norm == "shared" else None
        self.short_kernel = short_kernel
        self.long_kernels = tuple(long_kernels)
        self.n_filters = long_structure[0] if long_branch == "structured" else len(self.long_kernels)
        self.max_size = max(self.sizes)
        # slot n * max_size + i holds parcel i of network n (atlas order), or index n_parcels (a zero row)
        slots = np.full((self.n_networks, self.max_size), self.n_parcels, dtype=np.int64)
        order = np.argsort(labels, kind="stable")  # stable: atlas order kept within each network
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for n, (start, size) in enumerate(zip(starts, self.sizes)):
            slots[n, :size] = order[start:start + size]
        self.register_buffer("parcel_slots", torch.as_tensor(slots.ravel()), persistent=False)

    def _padded_weights(self):
        """Per-network parameters zero-padded to max_size parcels and stacked over networks.

        Returns the depthwise kernels [N*M, L, Kmax] (centred, zero-padded to the longest), short conv
        taps [N, ks*M, S], short bias [N, S], pointwise [N, M*L, C] and pointwise bias [N, C]
        (M = max_size, L = number of long kernels).
        """
        depthwise, short, pointwise = [], [], []
        for size, network in zip(self.sizes, self.networks):
            missing = self.max_size - size
            depthwise.append(F.pad(network.long_kernels(), (0, 0, 0, 0, 0, missing)))  # [M, L, Kmax]
            short.append(F.pad(network.short.weight, (0, 0, 0, missing)).permute(2, 1, 0).flatten(0, 1))
            mix = network.pointwise.weight[:, :, 0].unflatten(1, (self.n_filters, size))
            pointwise.append(F.pad(mix, (0, missing)).permute(2, 1, 0).flatten(0, 1))  # [(M, L), C]
        return (torch.stack(depthwise).flatten(0, 1), torch.stack(short),
                torch.stack([network.short.bias for network in self.networks]), torch.stack(pointwise),
                torch.stack([network.pointwise.bias for network in self.networks]))

    def _toeplitz(self, kernels):
        """Kernels [S, L, Kmax] -> [S, W, W*L]: each slot's 'same' convolutions within a patch as one matrix."""
        width, reach = self.patch_len, kernels.shape[-1] // 2
        positions = torch.arange(width, device=kernels.device)
        offset = positions[:, None] - positions  # [t_in, t_out]
        matrix = kernels[:, :, (offset + reach).clamp(0, 2 * reach)] * (offset.abs() <= reach).to(kernels.dtype)
        return matrix.permute(0, 2, 3, 1).flatten(2, 3)  # [S, t_in, (t_out, l)]

    def _windows(self, by_network):
        """[N, B', W, M] -> [N, B'W, ks*M]: each output time's short-conv inputs (zero outside the patch)."""
        width, kernel = self.patch_len, self.short_kernel
        padded = F.pad(by_network, (0, 0, kernel // 2, kernel // 2))
        windows = torch.cat([padded[:, :, tap:tap + width] for tap in range(kernel)], dim=-1)
        return windows.reshape(by_network.shape[0], -1, windows.shape[-1])

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

        tokens = self.normalize(self._encode_patches(x, n_patches))
        return tokens.reshape(batch, n_patches, self.n_networks, self.dim).transpose(1, 2)

    def normalize(self, features):
        """[B', N, D] -> LayerNorm over D, with each network's own affine (per_network) or one shared."""
        if self.norm is not None:
            return self.norm(features)
        weight = torch.stack([network.norm.weight for network in self.networks])
        bias = torch.stack([network.norm.bias for network in self.networks])
        return F.layer_norm(features, (self.dim,), eps=self.networks[0].norm.eps) * weight + bias

    def _encode_patches(self, x, n_patches):
        """x [B, P, T] -> [B * K, N, D]: every network's convolutions, all networks at once.

        Depthwise convs: one product of each slot's patches with its W x W convolution matrices (a
        patch is short, so this beats a grouped conv on CPU). Short conv: one product per network
        of its windows (im2col: ks shifted copies of the patch). Pointwise conv: one product per network.
        """
        n_networks, size, width = self.n_networks, self.max_size, self.patch_len
        depthwise, short, short_bias, pointwise, pointwise_bias = self._padded_weights()
        dtype = x.dtype
        x = torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[-1])], dim=1).transpose(0, 1)[self.parcel_slots]
        patches = x.reshape(n_networks * size, -1, width)  # [N*M, B', W], B' = (scan, patch)
        long = torch.bmm(patches, self._toeplitz(depthwise).to(dtype))  # [N*M, B', (W, L)]
        long = long.reshape(n_networks, size, -1, self.n_filters).transpose(1, 2)
        long = torch.baddbmm(pointwise_bias[:, None, :].to(dtype), long.reshape(n_networks, -1, long.shape[2:].numel()),
                             pointwise.to(dtype))  # [N, B'W, C]
        by_network = patches.reshape(n_networks, size, -1, width).permute(0, 2, 3, 1)  # [N, B', W, M]
        short_out = torch.bmm(self._windows(by_network), short.to(dtype))  # [N, B'W, S]
        short_out = short_out.reshape(n_networks, -1, width, short_out.shape[-1])
        short_out = F.gelu(short_out + short_bias[:, None, None, :].to(dtype)).mean(dim=2)
        long = F.gelu(long).reshape(n_networks, -1, width, long.shape[-1]).mean(dim=2)
        return torch.cat([short_out, long], dim=-1).transpose(0, 1)
