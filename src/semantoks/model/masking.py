"""Slice masking: hide whole networks or whole time patches of the [N, K] token grid."""

import torch


def sample_mask_ratios(batch, generator, low=0.65, high=0.85):
    """One target ratio per sample, uniform in [low, high], drawn on the generator's device."""
    return low + (high - low) * torch.rand(batch, generator=generator, device=generator.device)


def slice_mask(token_valid, n_networks, n_patches, ratio, generator):
    """Mask slices in random order until a `ratio` of each sample's valid tokens is hidden.

    token_valid [B, N*K] bool (network-major, as the encoder returns it); ratio a float or [B]
    tensor. Slices are the N networks (all K patches) and the K time patches (all N networks),
    mixed in one random order per sample; a slice is added while the count is below target, and
    the slice that crosses the target is kept only if that lands closer to it, so the realised
    count is within one slice of the target. Never hides every valid token. Returns [B, N*K] bool
    (True = masked, only ever on valid tokens). Deterministic given the generator.
    """
    batch, device = token_valid.shape[0], token_valid.device
    valid = token_valid.reshape(batch, n_networks, n_patches)
    n_slices = n_networks + n_patches
    members = torch.zeros(n_slices, n_networks, n_patches, dtype=torch.bool, device=device)
    members[torch.arange(n_networks), torch.arange(n_networks)] = True
    members[n_networks + torch.arange(n_patches), :, torch.arange(n_patches)] = True
    order = torch.rand(batch, n_slices, generator=generator, device=generator.device).argsort(dim=1).to(device)

    n_valid = valid.sum(dim=(1, 2)).float()
    target = torch.as_tensor(ratio, dtype=torch.float32, device=device) * n_valid
    mask = torch.zeros_like(valid)
    count = torch.zeros(batch, device=device)
    active = n_valid > 0
    for step in range(n_slices):
        candidate = mask | (members[order[:, step]] & valid)
        candidate_count = candidate.sum(dim=(1, 2)).float()
        below = active & (candidate_count < target)
        crossing = active & ~below
        closer = (candidate_count - target) < (target - count)
        take = below | (crossing & closer & (candidate_count < n_valid))
        mask = torch.where(take[:, None, None], candidate, mask)
        count = torch.where(take, candidate_count, count)
        active = below
    return mask.reshape(batch, n_networks * n_patches)


# the reference's exclusive slice masker: 3-4 of 5 time patches or 5-6 of 9 networks, as fractions of our grid
TIME_BLOCK_FRACTION = (3 / 5, 4 / 5)
NETWORK_FRACTION = (5 / 9, 6 / 9)


def _count_range(total, fractions):
    """Slices to hide, as (low, high) inclusive: the fractions of `total` rounded, kept within 1..total-1."""
    low, high = (min(max(int(round(f * total)), 1), max(total - 1, 1)) for f in fractions)
    return low, max(low, high)


def _uniform_counts(batch, low, high, generator):
    return low + (torch.rand(batch, generator=generator, device=generator.device) * (high - low + 1)).long().clamp(
        max=high - low)


def exclusive_slice_mask(token_valid, n_networks, n_patches, generator):
    """Per sample either one contiguous block of time patches (all networks) or whole networks (all patches).

    token_valid [B, N*K] bool (network-major). Half the samples (at random) get a time block of
    TIME_BLOCK_FRACTION of K patches at a random start, the others NETWORK_FRACTION of the N networks
    at random; never both, as the reference's slice masker. Only valid tokens are masked; a sample whose
    slice would hide all its valid tokens is left unmasked. Returns [B, N*K] bool; deterministic given
    the generator.
    """
    batch, device = token_valid.shape[0], token_valid.device
    valid = token_valid.reshape(batch, n_networks, n_patches)
    draw = torch.rand(batch, 1 + n_networks, generator=generator, device=generator.device).to(device)
    by_time = draw[:, 0] < 0.5

    block = _uniform_counts(batch, *_count_range(n_patches, TIME_BLOCK_FRACTION), generator).to(device)
    start = (torch.rand(batch, generator=generator, device=generator.device).to(device)
             * (n_patches - block + 1)).long()
    patch = torch.arange(n_patches, device=device)
    time_mask = (patch >= start[:, None]) & (patch < (start + block)[:, None])  # [B, K]

    hidden = _uniform_counts(batch, *_count_range(n_networks, NETWORK_FRACTION), generator).to(device)
    rank = draw[:, 1:].argsort(dim=1).argsort(dim=1)
    network_mask = rank < hidden[:, None]  # [B, N]

    mask = torch.where(by_time[:, None, None], time_mask[:, None, :], network_mask[:, :, None]) & valid
    hides_all = mask.sum(dim=(1, 2)) == valid.sum(dim=(1, 2))
    mask = mask & ~hides_all[:, None, None]
    return mask.reshape(batch, n_networks * n_patches)
