"""NetworkTokenizer: all networks at once give the outputs of a plain per-network loop of convolutions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semantoks.model.tokenizer import NetworkTokenizer

torch.set_num_threads(1)


def loop_reference(tokenizer, x, parcel_valid=None, patch_valid=None):
    """The tokenizer's definition, network by network, with its own parameters: tokens [B, N, K, D]."""
    batch, n_parcels, length = x.shape
    width = tokenizer.patch_len
    keep = torch.ones_like(x, dtype=torch.bool)
    if parcel_valid is not None:
        keep &= parcel_valid[:, :, None]
    if patch_valid is not None:
        keep &= patch_valid.repeat_interleave(width, dim=1)[:, None, :]
    x = torch.where(keep, x, 0.0)
    labels = tokenizer.parcel_network.numpy()
    features = []
    for n, network in enumerate(tokenizer.networks):
        members = np.flatnonzero(labels == n)
        part = x[:, members]
        if parcel_valid is not None:
            part = part * (len(members) / parcel_valid[:, members].sum(dim=1).clamp(min=1))[:, None, None]
        patches = part.reshape(batch, len(members), -1, width).transpose(1, 2).reshape(-1, len(members), width)
        short = F.conv1d(patches, network.short.weight, network.short.bias, padding=tokenizer.short_kernel // 2)
        if hasattr(network, "long"):
            long = fft_correlate(patches, network.long.kernels())
        else:
            long = torch.cat([F.conv1d(patches, conv.weight, padding=conv.kernel_size[0] // 2, groups=len(members))
                              for conv in network.depthwise], dim=1)
        long = F.conv1d(long, network.pointwise.weight, network.pointwise.bias)
        feature = F.gelu(torch.cat([short, long], dim=1)).mean(dim=-1)
        features.append(feature if tokenizer.norm is not None else network.norm(feature))
    tokens = torch.stack(features, dim=1)
    tokens = tokenizer.norm(tokens) if tokenizer.norm is not None else tokens
    return tokens.reshape(batch, -1, len(tokenizer.networks), tokenizer.dim).transpose(1, 2)


def fft_correlate(patches, kernels):
    """Each parcel's patch [B', m, W] against each of its kernels [m, L, taps] ('same', zeros outside), by FFT.

    Returns [B', L*m, W], filter-major: the reference computes its structured long convolution this way.
    """
    width, taps = patches.shape[-1], kernels.shape[-1]
    length = width + taps - 1
    spectrum = torch.fft.rfft(patches, n=length)[:, None] * torch.fft.rfft(kernels.flip(-1), n=length).transpose(0, 1)
    full = torch.fft.irfft(spectrum, n=length)  # [B', L, m, length]
    return full[..., taps // 2:taps // 2 + width].flatten(1, 2)


@pytest.mark.parametrize("branch, norm", [("structured", "per_network"), ("depthwise", "shared"),
                                          ("structured", "shared"), ("depthwise", "per_network")])
def test_tokenizer_branches_and_norms_match_a_per_network_loop(branch, norm):
    labels = np.array([0] * 9 + [1] * 2 + [2] * 5 + [3])
    torch.manual_seed(2)
    tokenizer = NetworkTokenizer(labels, 24, patch_len=20, long_branch=branch, norm=norm)
    with torch.no_grad():
        for parameter in tokenizer.parameters():
            parameter.normal_()
    x = torch.randn(2, len(labels), 60)
    torch.testing.assert_close(tokenizer(x), loop_reference(tokenizer, x), atol=1e-4, rtol=1e-4)


def test_structured_long_kernel_spans_multiscale_parts_at_unit_norm():
    from semantoks.model.tokenizer import StructuredLongKernel
    kernel = StructuredLongKernel(n_parcels=3, filters=2, sub_kernel=4, scales=3, decay=2.0)
    with torch.no_grad():
        kernel.skip.zero_()
    taps = kernel.kernels()
    assert taps.shape == (3, 2, 17)  # 4 + 4 + 8 taps, made odd for a centred 'same' convolution
    torch.testing.assert_close(taps.norm(dim=-1), torch.ones(3, 2))
    by_hand = torch.cat([kernel.parts[0] * 4, kernel.parts[1] * 2, kernel.parts[2].repeat_interleave(2, -1)], -1)
    torch.testing.assert_close(taps[..., :16], by_hand / by_hand.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("labels, kernels", [
    # interleaved networks of unequal sizes, default kernels
    (np.arange(23) % 4, (3, (5, 9, 15))),
    # one network of a single parcel, another much larger; other kernel sizes
    (np.array([0] * 17 + [1] + [2] * 5), (5, (3, 7))),
    # a short kernel longer than every long one
    (np.arange(12) % 2, (7, (3, 5))),
])
def test_tokenizer_matches_a_per_network_loop(labels, kernels):
    torch.manual_seed(0)
    tokenizer = NetworkTokenizer(labels, 24, patch_len=10, short_kernel=kernels[0], long_kernels=kernels[1],
                                 long_branch="depthwise")
    with torch.no_grad():
        for parameter in tokenizer.parameters():
            parameter.normal_()  # biases and norms too, so every parameter reaches the output
    x = torch.randn(3, len(labels), 40)
    parcel_valid = torch.rand(3, len(labels)) > 0.3
    patch_valid = torch.ones(3, 4, dtype=torch.bool)
    patch_valid[1, -1] = False
    x[~parcel_valid] = float("nan")
    for args in ((), (parcel_valid, patch_valid)):
        expected = loop_reference(tokenizer, x.nan_to_num() if not args else x, *args)
        got = tokenizer(x.nan_to_num() if not args else x, *args)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_tokenizer_gradients_match_the_loop():
    labels = np.arange(19) % 3
    torch.manual_seed(1)
    tokenizer = NetworkTokenizer(labels, 16, patch_len=10)
    x = torch.randn(2, len(labels), 30)
    grads = []
    for run in (loop_reference, lambda t, v: t(v)):
        tokenizer.zero_grad()
        run(tokenizer, x).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in tokenizer.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-4, rtol=1e-4, msg=name)


def test_state_dict_keeps_the_per_network_layout():
    tokenizer = NetworkTokenizer(np.arange(10) % 2, 8, patch_len=10, long_branch="depthwise", norm="shared")
    keys = set(tokenizer.state_dict())
    assert {"networks.0.short.weight", "networks.1.depthwise.2.weight", "networks.1.pointwise.bias",
            "norm.weight"} <= keys
    assert tokenizer.state_dict()["networks.0.short.weight"].shape == (4, 5, 3)
