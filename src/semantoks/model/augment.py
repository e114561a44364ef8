"""Per-view signal augmentations, vectorised over the batch and driven by one torch.Generator."""

import torch


def augment_views(views, parcel_valid, patch_valid, augmentations, generator):
    """views [V, B, P, T] -> augmented copy; padded frames and invalid parcels stay exactly zero.

    Per view: zero a random number (<= parcel_drop * P) of parcels, zero one contiguous block of
    <= time_block * T frames, scale by a factor in scale_range, add N(0, noise_std^2) noise.
    """
    n_views, batch, n_parcels, length = views.shape
    device, aug = views.device, augmentations

    def uniform(*shape):
        return torch.rand(shape, generator=generator, device=device)

    # an exact count per view (a random rank below it), so no view loses more than parcel_drop
    n_dropped = torch.floor(uniform(n_views, batch, 1) * (int(aug.parcel_drop * n_parcels) + 1))
    keep_parcel = uniform(n_views, batch, n_parcels).argsort(dim=-1).argsort(dim=-1) >= n_dropped

    block_length = torch.floor(uniform(n_views, batch, 1) * (int(aug.time_block * length) + 1))
    block_start = torch.floor(uniform(n_views, batch, 1) * (length - block_length + 1))
    frame = torch.arange(length, device=device, dtype=block_start.dtype)
    keep_frame = (frame < block_start) | (frame >= block_start + block_length)

    low, high = aug.scale_range
    scale = low + (high - low) * uniform(n_views, batch, 1, 1)
    noise = torch.randn(views.shape, generator=generator, device=device) * aug.noise_std

    patch_len = length // patch_valid.shape[-1]
    in_data = parcel_valid[..., :, None] & patch_valid.repeat_interleave(patch_len, dim=-1)[..., None, :]
    keep = in_data & keep_parcel[..., :, None] & keep_frame[..., None, :]
    return torch.where(keep, views * scale + noise.to(views.dtype), torch.zeros((), dtype=views.dtype, device=device))
