import numpy as np
import pytest
import torch

from semantoks.errors import SemantoksError
from semantoks.model.config import ScheduleConfig
from semantoks.model import (NetworkTokenizer, SelfDistillationModel, build_encoder, build_schedules,
                             slice_mask)

torch.set_num_threads(1)

SIZES = (1, 3, 17)
WINDOW, PATCH = 100, 20
K = WINDOW // PATCH


def interleaved_networks(sizes=SIZES, seed=0):
    """Parcel -> network ids with networks interleaved, as Schaefer's LH/RH label order is."""
    labels = np.concatenate([np.full(size, n) for n, size in enumerate(sizes)])
    return torch.as_tensor(np.random.default_rng(seed).permutation(labels))


def make_batch(batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    parcel_network = interleaved_networks()
    x = torch.randn(batch, len(parcel_network), WINDOW, generator=generator)
    parcel_valid = torch.ones(batch, len(parcel_network), dtype=torch.bool)
    patch_valid = torch.ones(batch, K, dtype=torch.bool)
    return parcel_network, x, parcel_valid, patch_valid


def tiny_encoder(parcel_network, seed=0):
    torch.manual_seed(seed)
    return build_encoder("tiny", parcel_network, len(SIZES), WINDOW, PATCH).eval()


def test_encoder_shapes_and_network_major_token_order():
    parcel_network, x, parcel_valid, patch_valid = make_batch()
    parcel_valid[0, parcel_network == 1] = False
    patch_valid[1, 3:] = False
    out = tiny_encoder(parcel_network)(x, parcel_valid, patch_valid)
    n_tokens = len(SIZES) * K
    assert out["cls"].shape == (3, 64)
    assert out["tokens"].shape == (3, n_tokens, 64)
    valid = out["token_valid"]
    assert valid.shape == (3, n_tokens)
    # network-major: token n * K + k
    assert not valid[0, K:2 * K].any() and valid[0, :K].all() and valid[0, 2 * K:].all()
    late = torch.tensor([n * K + k for n in range(len(SIZES)) for k in (3, 4)])
    assert not valid[1, late].any() and valid[1].sum() == n_tokens - len(late)
    assert valid[2].all()


def test_padded_patches_and_invalid_parcels_leave_valid_outputs_unchanged():
    parcel_network, x, parcel_valid, patch_valid = make_batch()
    parcel_valid[0, torch.nonzero(parcel_network == 2)[:5, 0]] = False
    parcel_valid[1, parcel_network == 0] = False
    patch_valid[2, 4] = False
    encoder = tiny_encoder(parcel_network)
    before = encoder(x, parcel_valid, patch_valid)
    changed = x.clone()
    changed[~parcel_valid] = float("nan")
    changed[2, :, 4 * PATCH:] = 1e4
    after = encoder(changed, parcel_valid, patch_valid)
    valid = before["token_valid"]
    assert torch.allclose(before["cls"], after["cls"], atol=1e-6)
    assert torch.allclose(before["tokens"][valid], after["tokens"][valid], atol=1e-6)
    assert torch.isfinite(after["tokens"]).all()
    # and the valid data does matter
    changed[0, parcel_valid[0]] += 1.0
    assert not torch.allclose(before["cls"][0], encoder(changed, parcel_valid, patch_valid)["cls"][0], atol=1e-4)


def test_padded_patches_and_invalid_networks_are_not_attended():
    parcel_network, x, parcel_valid, patch_valid = make_batch()
    encoder = tiny_encoder(parcel_network)
    patch_valid[:, 4] = False
    padded = encoder(x, parcel_valid, patch_valid)
    shorter = encoder(x[:, :, :4 * PATCH], parcel_valid, patch_valid[:, :4])
    assert torch.allclose(padded["cls"], shorter["cls"], atol=1e-5)
    parcel_valid[:, parcel_network == 1] = False
    before = encoder(x, parcel_valid, patch_valid)["cls"]
    with torch.no_grad():
        encoder.network_embedding[1] += 1.0
    assert torch.allclose(before, encoder(x, parcel_valid, patch_valid)["cls"], atol=1e-5)


def test_tokenizer_handles_networks_of_different_sizes_and_keeps_them_separate():
    parcel_network, x, _, _ = make_batch(batch=2)
    torch.manual_seed(0)
    tokenizer = NetworkTokenizer(parcel_network, 32, PATCH)
    tokens = tokenizer(x)
    assert tokens.shape == (2, len(SIZES), K, 32)
    changed = x.clone()
    parcel = torch.nonzero(parcel_network == 1)[0, 0]
    changed[:, parcel, 2 * PATCH:3 * PATCH] += 5.0
    diff = (tokenizer(changed) - tokens).abs().amax(dim=(0, 3))
    assert diff[1, 2] > 1e-3
    diff[1, 2] = 0.0
    assert diff.max() == 0.0


def test_tokenizer_rescales_networks_with_dropped_parcels():
    parcel_network = interleaved_networks()
    tokenizer = NetworkTokenizer(parcel_network, 32, PATCH, long_branch="depthwise")
    with torch.no_grad():
        # Parcel-symmetric weights: a network's output then depends only on the sum of its inputs.
        for encoder in tokenizer.networks:
            encoder.short.weight.copy_(encoder.short.weight[:, :1].expand_as(encoder.short.weight))
            for conv in encoder.depthwise:
                conv.weight.copy_(conv.weight[:1].expand_as(conv.weight))
            n_scales = len(encoder.depthwise)
            first = encoder.pointwise.weight.reshape(32 - 16, n_scales, -1, 1)[:, :, :1]
            encoder.pointwise.weight.copy_(first.expand(-1, -1, encoder.depthwise[0].in_channels, -1)
                                           .reshape_as(encoder.pointwise.weight))
    signal = torch.randn(1, 1, WINDOW).expand(1, len(parcel_network), WINDOW).contiguous()
    parcel_valid = torch.ones(1, len(parcel_network), dtype=torch.bool)
    big = torch.nonzero(parcel_network == 2)[:, 0]
    parcel_valid[0, big[:9]] = False
    full = tokenizer(signal)
    dropped = tokenizer(signal, parcel_valid)
    assert torch.allclose(full, dropped, atol=1e-5)
    unscaled = tokenizer(torch.where(parcel_valid[:, :, None], signal, 0.0))
    assert not torch.allclose(full[:, 2], unscaled[:, 2], atol=1e-3)


def test_token_mask_hides_the_masked_token_input():
    parcel_network, x, parcel_valid, patch_valid = make_batch()
    encoder = tiny_encoder(parcel_network)
    token_mask = torch.zeros(3, len(SIZES) * K, dtype=torch.bool)
    token_mask[:, 2 * K + 1] = True
    before = encoder(x, parcel_valid, patch_valid, token_mask)
    changed = x.clone()
    changed[:, parcel_network == 2, PATCH:2 * PATCH] += 3.0
    after = encoder(changed, parcel_valid, patch_valid, token_mask)
    assert torch.allclose(before["cls"], after["cls"], atol=1e-6)
    unmasked = encoder(changed, parcel_valid, patch_valid)
    assert not torch.allclose(before["cls"], unmasked["cls"], atol=1e-4)


@pytest.mark.parametrize("ratio", [0.65, 0.75, 0.85])
def test_slice_mask_reaches_ratio_within_one_slice(ratio):
    n_networks, n_patches, batch = 8, 5, 64
    generator = torch.Generator().manual_seed(1)
    token_valid = torch.ones(batch, n_networks, n_patches, dtype=torch.bool)
    token_valid[: batch // 2, :, 3:] = torch.rand(batch // 2, 1, 2, generator=generator) > 0.5
    token_valid[::3, 6] = False
    token_valid = token_valid.flatten(1)
    mask = slice_mask(token_valid, n_networks, n_patches, ratio, generator)
    assert not (mask & ~token_valid).any()
    realised = mask.sum(1).float() / token_valid.sum(1)
    # the slice that crosses the target is kept only if that lands closer: within half a slice
    granularity = max(n_networks, n_patches) / token_valid.sum(1)
    assert ((realised - ratio).abs() <= granularity / 2 + 1e-6).all()
    assert (mask.sum(1) < token_valid.sum(1)).all()
    grid, valid = mask.reshape(batch, n_networks, n_patches), token_valid.reshape(batch, n_networks, n_patches)
    # whole slices only: every masked token's network row or patch column is masked wherever valid
    row_full = ((grid | ~valid).all(dim=2, keepdim=True)).expand_as(grid)
    col_full = ((grid | ~valid).all(dim=1, keepdim=True)).expand_as(grid)
    assert (~grid | row_full | col_full).all()


def test_slice_mask_is_deterministic_and_mixes_networks_and_patches():
    token_valid = torch.ones(200, 8 * 5, dtype=torch.bool)
    first = slice_mask(token_valid, 8, 5, 0.75, torch.Generator().manual_seed(7))
    second = slice_mask(token_valid, 8, 5, 0.75, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    assert not torch.equal(first, slice_mask(token_valid, 8, 5, 0.75, torch.Generator().manual_seed(8)))
    grid = first.reshape(200, 8, 5)
    assert grid.all(dim=2).any(dim=1).any() and grid.all(dim=1).any(dim=1).any()


@pytest.mark.parametrize("n_networks,n_patches", [(9, 5), (7, 5), (17, 8)])
def test_exclusive_slice_mask_hides_a_time_block_or_whole_networks_never_both(n_networks, n_patches):
    from semantoks.model.masking import exclusive_slice_mask
    batch = 400
    generator = torch.Generator().manual_seed(3)
    token_valid = torch.ones(batch, n_networks, n_patches, dtype=torch.bool)
    token_valid[::4, 1] = False
    token_valid = token_valid.flatten(1)
    mask = exclusive_slice_mask(token_valid, n_networks, n_patches, generator)
    assert torch.equal(mask, exclusive_slice_mask(token_valid, n_networks, n_patches, torch.Generator().manual_seed(3)))
    assert not (mask & ~token_valid).any()
    grid, valid = mask.reshape(batch, n_networks, n_patches), token_valid.reshape(batch, n_networks, n_patches)
    networks_hit, patches_hit = grid.any(dim=2), grid.any(dim=1)
    # a time block: every valid network hidden over contiguous patches; networks: all of their valid patches
    time_block = ((grid == (valid & patches_hit[:, None, :])).all(dim=(1, 2))
                  & (networks_hit == valid.any(dim=2)).all(dim=1))
    whole_networks = (grid == (valid & networks_hit[:, :, None])).all(dim=(1, 2)) & ~time_block
    assert (time_block | whole_networks).all()
    first, last = patches_hit.float().argmax(1), n_patches - 1 - patches_hit.flip(1).float().argmax(1)
    blocks = patches_hit.sum(1)
    assert (blocks[time_block] == (last - first + 1)[time_block]).all()
    assert blocks[time_block].min() >= round(0.6 * n_patches) and blocks[time_block].max() <= round(0.8 * n_patches)
    full_rows = valid.all(dim=2).all(dim=1)
    counts = networks_hit.sum(1)[whole_networks & full_rows]
    assert counts.min() >= round(5 / 9 * n_networks) and counts.max() <= round(6 / 9 * n_networks)
    assert 0.35 < time_block.float().mean() < 0.65
    assert (mask.sum(1) < token_valid.sum(1)).all()


def tiny_model(seed=0):
    torch.manual_seed(seed)
    parcel_network = interleaved_networks()
    return SelfDistillationModel({"preset": "tiny", "window": WINDOW, "patch_len": PATCH},
                                 {"head_hidden": 64, "out_dim": 16}, parcel_network, len(SIZES))


def make_views(batch=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n_parcels = sum(SIZES)
    parcel_valid = torch.ones(2, batch, n_parcels, dtype=torch.bool)
    parcel_valid[:, 0, :4] = False
    patch_valid = torch.ones(2, batch, K, dtype=torch.bool)
    patch_valid[:, 1, 4] = False
    return {"views": torch.randn(2, batch, n_parcels, WINDOW, generator=generator),
            "parcel_valid": parcel_valid, "patch_valid": patch_valid}


@pytest.mark.parametrize("apply_mask", [True, False])
def test_forward_backward_trains_student_only(apply_mask):
    model = tiny_model().train()
    losses = model.forward_backward(make_views(), {"ttr": 0.5, "mtm": 1.0}, apply_mask,
                                    torch.Generator().manual_seed(0))
    assert set(losses) == {"total", "compression", "expansion", "mtm", "ttr"}
    assert all(np.isfinite(v) for v in losses.values())
    assert (losses["mtm"] > 0) == apply_mask
    assert losses["total"] == pytest.approx(losses["compression"] - losses["expansion"]
                                            + losses["mtm"] + 0.5 * losses["ttr"], abs=1e-5)
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = {name: p.grad for name, p in model.student.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert (grads["encoder.mask_token"].abs().sum() > 0) == apply_mask
    assert grads["encoder.blocks.0.attn.qkv.weight"].abs().sum() > 0


def straightforward_forward_backward(model, batch, weights, apply_mask, generator):
    """The step as first written: every token of both networks through the heads, then a weighted mean."""
    from semantoks.model.losses import cosine_distance, temporal_regularizer_loss
    from semantoks.model.masking import exclusive_slice_mask, sample_mask_ratios

    n_views, batch_size = batch["views"].shape[:2]
    x, parcel_valid, patch_valid = (batch[key].flatten(0, 1) for key in ("views", "parcel_valid", "patch_valid"))
    with torch.no_grad():
        teacher = model.teacher(x, parcel_valid, patch_valid)
    token_valid = teacher["token_valid"]
    token_mask = torch.zeros_like(token_valid)
    if apply_mask and model.loss_config.masker == "exclusive":
        token_mask = exclusive_slice_mask(token_valid, len(SIZES), K, generator)
    elif apply_mask:
        ratios = sample_mask_ratios(token_valid.shape[0], generator, 0.65, 0.85)
        token_mask = slice_mask(token_valid, len(SIZES), K, ratios, generator)
    student = model.student(x, parcel_valid, patch_valid, token_mask)
    assert student["tokens"].shape[:2] == token_valid.shape

    def by_view(t):
        return t.reshape(n_views, batch_size, *t.shape[1:])

    cls_terms = model.cls_loss(by_view(student["cls"]), by_view(teacher["cls"]))
    selected = (token_mask & token_valid).float()
    mtm = (cosine_distance(student["tokens"], teacher["tokens"]) * selected).sum() / selected.sum().clamp(min=1.0)
    ttr = temporal_regularizer_loss(by_view(student["networks"]), by_view(teacher["networks"]),
                                    by_view(teacher["network_valid"]), "reference" if model.loss_config.ttr_expansion
                                    else None)
    total = cls_terms["loss"] + weights["mtm"] * mtm + weights["ttr"] * ttr
    total.backward()
    return {"total": total.item(), "compression": cls_terms["compression"].item(),
            "expansion": cls_terms["expansion"].item(), "mtm": mtm.item(), "ttr": ttr.item()}


@pytest.mark.parametrize("apply_mask", [True, False])
@pytest.mark.parametrize("separate_patch_head", [False, True])
def test_forward_backward_equals_projecting_every_token(apply_mask, separate_patch_head):
    """Only masked tokens go through the patch head; losses and gradients equal the all-token computation."""
    def model():
        torch.manual_seed(0)
        return SelfDistillationModel({"preset": "tiny", "window": WINDOW, "patch_len": PATCH},
                                     {"head_hidden": 64, "out_dim": 16, "separate_patch_head": separate_patch_head},
                                     interleaved_networks(), len(SIZES)).train()

    batch, weights = make_views(batch=6), {"ttr": 0.5, "mtm": 1.0}
    fast, slow = model(), model()
    head = fast.student.patch_head if separate_patch_head else fast.student.cls_head
    rows = []
    head.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[0]))
    losses = fast.forward_backward(batch, weights, apply_mask, torch.Generator().manual_seed(3))
    reference = straightforward_forward_backward(slow, batch, weights, apply_mask, torch.Generator().manual_seed(3))
    assert losses == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert (losses["mtm"] > 0) == apply_mask
    for (name, a), b in zip(fast.student.named_parameters(), slow.student.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name
    # 12 scans x 15 tokens: masked steps project the ~65-85 % masked ones, unmasked steps none
    token_rows = rows[0] if separate_patch_head else rows[1]  # calls: (cls,) tokens, networks
    assert token_rows < 0.9 * 12 * len(SIZES) * K and (token_rows > 0) == apply_mask


def test_forward_backward_loss_scale_scales_gradients_only():
    batch, weights = make_views(), {"ttr": 0.5, "mtm": 1.0}
    plain, scaled = tiny_model(), tiny_model()
    losses = plain.forward_backward(batch, weights, True, torch.Generator().manual_seed(0))
    scaled_losses = scaled.forward_backward(batch, weights, True, torch.Generator().manual_seed(0), loss_scale=8.0)
    assert scaled_losses == pytest.approx(losses, rel=1e-5)
    for a, b in zip(plain.student.parameters(), scaled.student.parameters()):
        assert torch.allclose(8.0 * a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_forward_backward_under_bf16_autocast():
    model = tiny_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.forward_backward(make_views(), {"ttr": 0.5, "mtm": 1.0}, True,
                                        torch.Generator().manual_seed(0))
    assert all(np.isfinite(v) for v in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in model.student.parameters())


def test_teacher_ema_update_is_exact():
    model = tiny_model()
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(torch.randn_like(p))
    teacher_before = [p.clone() for p in model.teacher.parameters()]
    student = [p.clone() for p in model.student.parameters()]
    model.update_teacher(0.9)
    for before, s, after in zip(teacher_before, student, model.teacher.parameters()):
        assert torch.allclose(after, 0.9 * before + 0.1 * s, rtol=0, atol=1e-6)
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert model.student.training and not model.teacher.training


def test_param_groups_cover_student_and_skip_decay_on_norms_biases_embeddings():
    model = tiny_model()
    decay, no_decay = model.param_groups(0.05)
    names = {id(p): n for n, p in model.student.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert decayed | skipped == set(names.values()) and not decayed & skipped
    for name in ("encoder.network_embedding", "encoder.cls_token", "encoder.mask_token", "encoder.norm.weight",
                 "encoder.blocks.0.ls1.gamma", "encoder.blocks.0.attn.qkv.bias"):
        assert name in skipped
    assert "encoder.blocks.0.attn.qkv.weight" in decayed and "cls_head.fc1.weight" in decayed
    assert decay["wd_multiplier"] == 1.0 and no_decay["weight_decay"] == 0.0


def test_base_preset_has_about_59m_parameters():
    # Schaefer 400 x 7 networks + Tian S1: Vis, SomMot, DorsAttn, SalVentAttn, Limbic, Cont, Default, Subcortex
    sizes = (61, 77, 46, 47, 26, 52, 91, 16)
    parcel_network = interleaved_networks(sizes)
    with torch.device("meta"):
        model = SelfDistillationModel("base", None, parcel_network, len(sizes))
    encoder = sum(p.numel() for p in model.teacher_encoder.parameters())
    student = sum(p.numel() for p in model.student_module.parameters())
    assert 56e6 < encoder < 59e6
    assert 58e6 < student < 61e6


def test_unknown_preset_is_a_user_error():
    with pytest.raises(SemantoksError, match="preset"):
        build_encoder("huge", interleaved_networks(), len(SIZES))


def test_schedules_endpoints_and_warmup():
    steps = 1000
    s = build_schedules(ScheduleConfig(warmup_fraction=0.1, min_lr=1e-6), 512, steps)
    assert all(len(v) == steps for v in s.values())
    assert s["lr"][0] == 0.0 and s["lr"][100] == pytest.approx(7e-4 * 2)
    assert np.all(np.diff(s["lr"][:101]) > 0) and np.all(np.diff(s["lr"][100:]) <= 0)
    assert s["lr"][-1] == pytest.approx(1e-6)
    assert s["weight_decay"][0] == pytest.approx(0.05) and s["weight_decay"][-1] == pytest.approx(0.3)
    assert s["momentum"][0] == pytest.approx(0.99) and s["momentum"][-1] == pytest.approx(1.0)
    assert np.all(s["mtm"] == 0.5)  # the reference's masked-token weight
    default = build_schedules(ScheduleConfig(), 256, steps)
    assert default["lr"][29] < default["lr"][30] == pytest.approx(7e-4)  # warm-up 3 % of steps, the reference's


def test_ttr_schedule_modes():
    steps = 1000
    curriculum = build_schedules(ScheduleConfig(ttr="curriculum"), 256, steps)["ttr"]
    assert curriculum[0] == pytest.approx(0.5)
    assert np.all(np.diff(curriculum[:50]) < 0) and curriculum[49] > 0
    assert np.all(curriculum[50:] == 0.0)
    assert np.all(build_schedules(ScheduleConfig(ttr="off"), 256, steps)["ttr"] == 0.0)
    assert np.all(build_schedules(ScheduleConfig(ttr="always"), 256, steps)["ttr"] == 0.5)
    with pytest.raises(SemantoksError, match="ttr"):
        ScheduleConfig(ttr="sometimes")


def test_forward_backward_through_ddp_wrapped_student(tmp_path, monkeypatch):
    import datetime

    import torch.distributed as dist

    # loopback and a timeout: a single-process group must never wait on the network
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=60))
    try:
        model = tiny_model()
        inner = model.student
        model.student = torch.nn.parallel.DistributedDataParallel(model.student)
        assert model.student_module is inner
        # two steps: DDP fails on the second if any student parameter went unused in the first
        for apply_mask in (False, True):
            losses = model.forward_backward(make_views(), {"ttr": 0.5, "mtm": 1.0}, apply_mask,
                                            torch.Generator().manual_seed(0))
            assert np.isfinite(losses["total"])
        assert all(p.grad is not None for p in inner.parameters())
        model.update_teacher(0.5)
        assert len(model.param_groups(0.05)[0]["params"]) > 0
    finally:
        dist.destroy_process_group()
