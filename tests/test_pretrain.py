"""Pretraining data, augmentations, checkpoints, exact resume and a learning test (CPU, tiny preset)."""

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from semantoks.atomic import atomic_path
from semantoks.dataset.fingerprint import scan_fingerprint
from semantoks.dataset.layout import METADATA_KEY, PART_NAME, TIMESERIES_SCHEMA, partition_dir
from semantoks.errors import SemantoksError
from semantoks.model.augment import augment_views
from semantoks.model.checkpoint import (
    check_identity, checkpoint_sha256, load_checkpoint, load_encoder, load_latest, save_checkpoint,
)
from semantoks.model.config import Augmentations, Preprocessing, PretrainConfig, resolve_pretrain_config
from semantoks.model.data import (
    InMemoryBatches, StreamingBatches, TooLittleData, crop, prepare_scans, preprocess_scan, resample_to_tr,
    view_starts,
)
from semantoks.model.train import pretrain

torch.set_num_threads(1)

ATLAS = "Toy24x4"
NETWORKS = ["Vis", "SomMot", "DorsAttn", "Default"]
STRATEGY = {"name": "simple", "high_pass": 0.01, "motion": "basic"}


def toy_labels(n_per_network=6):
    return [{"index": i + 1, "name": f"{NETWORKS[i // n_per_network]}_{i % n_per_network}",
             "network": NETWORKS[i // n_per_network], "hemisphere": "L" if i % 2 else "R"}
            for i in range(n_per_network * len(NETWORKS))]


def simulate_scans(n_subjects, seed, scans_per_subject=1, n_frames=150, tr=2.0, n_per_network=6, loading=0.5):
    """Scans of subjects whose parcels couple to a slow shared signal with a subject-specific pattern.

    The planted latent is the subject: its loading vector (one weight per parcel) sets how strongly
    and with which sign every parcel follows the shared signal, i.e. the scan's coupling pattern.
    Returns ([(data [n_frames, parcels] float32, tr)], subject label per scan).
    """
    rng = np.random.default_rng(seed)
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    n_parcels = n_per_network * len(NETWORKS)
    scans, subjects = [], []
    for subject in range(n_subjects):
        loadings = loading * rng.standard_normal(n_parcels)
        for _ in range(scans_per_subject):
            shared = np.convolve(rng.standard_normal(n_frames + 12), kernel, "valid")
            shared /= shared.std()
            data = shared[:, None] * loadings + rng.standard_normal((n_frames, n_parcels))
            scans.append((data.astype(np.float32), tr))
            subjects.append(subject)
    return scans, np.asarray(subjects)


def write_dataset(root, cohort, scans, labels=None, strategy=STRATEGY, atlas_id=ATLAS, rows_per_group=4):
    """A timeseries partition in the layout of docs/design.md, with the given (data, tr) scans."""
    labels = labels or toy_labels(scans[0][0].shape[1] // len(NETWORKS))
    n_parcels = len(labels)
    rows = {name: [] for name in TIMESERIES_SCHEMA.names}
    for i, (data, tr) in enumerate(scans):
        subject = f"{cohort}{i:03d}"
        values = dict(scan_id=f"sub-{subject}_task-rest", subject=subject, session=None, task="rest", run=None,
                      tr=tr, n_frames=data.shape[0], n_parcels=n_parcels, timeseries=data.ravel().tolist(),
                      parcel_coverage=[1.0] * n_parcels)
        for name, value in values.items():
            rows[name].append(value)
    metadata = {"atlas_id": atlas_id, "space": "MNI152NLin2009cAsym", "labels": labels,
                "networks": list(dict.fromkeys(label["network"] for label in labels)),
                "tr": sorted({tr for _, tr in scans}), "strategy": strategy, "pipeline_version": "test",
                "config_hash": "0", "n_scans": len(scans)}
    schema = TIMESERIES_SCHEMA.with_metadata({METADATA_KEY: json.dumps(metadata).encode()})
    path = partition_dir(root, "timeseries", atlas_id, cohort) / PART_NAME
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(rows, schema=schema), tmp, row_group_size=rows_per_group)
    # the manifest's content fingerprints identify the data a finished run was trained on
    manifest = {"scan_id": rows["scan_id"], "subject": rows["subject"], "included": [True] * len(scans),
                "source": [f"{cohort}/{scan_id}" for scan_id in rows["scan_id"]],
                "fingerprint": [scan_fingerprint(np.asarray(data, np.float32)) for data, _ in scans]}
    with atomic_path(partition_dir(root, "manifest", atlas_id, cohort) / PART_NAME) as tmp:
        pq.write_table(pa.table(manifest), tmp)
    return path


def tiny_config(**overrides):
    config = {"preset": "tiny", "model": {"dim": 32, "depth": 2, "heads": 2, "drop_path": 0.2},
              "loss": {"head_hidden": 64, "out_dim": 32},
              "steps": 6, "batch_size": 4, "checkpoint_every": 3, "log_every": 1, "base_lr": 0.5, "seed": 3}
    return {**config, **overrides}


def trained_toy_model(root, seed, n_subjects=8, n_frames=200):
    """(checkpoint, scans) of a 2-step tiny model on a one-cohort toy dataset under `root`/dataset."""
    scans, _ = simulate_scans(n_subjects, seed=seed, n_frames=n_frames)
    write_dataset(root / "dataset", "A", scans)
    checkpoint = pretrain(tiny_config(steps=2, checkpoint_every=2), root / "dataset", ATLAS, ["A"], root / "model")
    return checkpoint, scans


def assert_same_parameters(state_a, state_b, atol=1e-7):
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], atol=atol, rtol=0, msg=key)


def sinusoid_amplitude(values, tr, frequency, trim=20):
    """Least-squares amplitude of one frequency in a signal, ignoring the edges."""
    t = np.arange(len(values))[trim:-trim] * tr
    design = np.stack([np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, values[trim:-trim], rcond=None)
    return float(np.hypot(*coef))


def test_resampling_keeps_slow_rhythm_and_suppresses_aliasing():
    t = np.arange(400) * 1.5
    slow = np.sin(2 * np.pi * 0.05 * t)
    fast = 0.5 * np.sin(2 * np.pi * 0.3 * t)
    resampled = resample_to_tr(np.stack([slow + fast, slow], axis=1), 1.5, 2.0)
    assert resampled.shape == (300, 2)
    mixed = resampled[:, 0]
    assert sinusoid_amplitude(mixed, 2.0, 0.05) == pytest.approx(1.0, abs=0.03)
    spectrum = np.abs(np.fft.rfft(mixed[20:-20] * np.hanning(260)))
    assert np.fft.rfftfreq(260, 2.0)[spectrum.argmax()] == pytest.approx(0.05, abs=0.004)
    # 0.3 Hz sampled every 2 s would alias to 0.2 Hz; naive decimation keeps it at full amplitude
    naive = np.interp(np.arange(300) * 2.0, t, slow + fast)
    assert sinusoid_amplitude(naive, 2.0, 0.2) > 0.2
    assert sinusoid_amplitude(mixed, 2.0, 0.2) < 0.02


def test_zscore_per_parcel_and_nan_parcels_masked():
    rng = np.random.default_rng(0)
    data = 5.0 + 3.0 * rng.standard_normal((120, 6))
    with_nan = data.copy()
    with_nan[:, 2] = np.nan
    prep = Preprocessing(band_pass=None)
    clean = preprocess_scan(data, 2.0, prep)
    masked = preprocess_scan(with_nan, 2.0, prep)
    np.testing.assert_allclose(clean.values.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(clean.values.std(axis=0), 1.0, atol=1e-5)
    assert masked.parcel_valid.tolist() == [True, True, False, True, True, True]
    assert np.isfinite(masked.values).all() and (masked.values[:, 2] == 0).all()
    np.testing.assert_allclose(np.delete(masked.values, 2, axis=1), np.delete(clean.values, 2, axis=1), atol=1e-6)
    filtered = preprocess_scan(with_nan, 1.5, Preprocessing(band_pass=(0.01, 0.1)))
    assert np.isfinite(filtered.values).all() and not filtered.parcel_valid[2]


def test_inf_is_missing_like_nan_and_too_little_data_is_refused(caplog):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((120, 6))
    prep = Preprocessing(band_pass=None)
    with_nan, with_inf = data.copy(), data.copy()
    with_nan[7, 2], with_inf[7, 2] = np.nan, np.inf
    assert_same = np.testing.assert_array_equal
    assert_same(preprocess_scan(with_inf, 2.0, prep).values, preprocess_scan(with_nan, 2.0, prep).values)
    assert preprocess_scan(with_inf, 2.0, prep).parcel_valid.tolist() == [True, True, False, True, True, True]
    mostly_missing = data.copy()
    mostly_missing[:, :4] = np.nan
    for scan in (np.full((120, 6), np.nan), np.full((120, 6), -np.inf), mostly_missing):
        with pytest.raises(TooLittleData, match=r"sub-01: only \d of 6 parcels hold finite, varying values"):
            preprocess_scan(scan, 2.0, prep, {"scan_id": "sub-01"})
    with caplog.at_level("WARNING"):
        kept = prepare_scans([(data, 2.0, {"scan_id": "a"}), (mostly_missing, 2.0, {"scan_id": "b"})], prep)
    assert [scan.meta["scan_id"] for scan in kept] == ["a"] and "skipping b: only 2 of 6" in caplog.text


def test_one_extreme_spike_is_clipped_and_keeps_every_parcel():
    rng = np.random.default_rng(2)
    data = 100.0 + rng.standard_normal((120, 6))
    spiked = data.copy()
    spiked[50, 3] = 1e9
    prep = Preprocessing(band_pass=None)
    clean, robust = preprocess_scan(data, 2.0, prep), preprocess_scan(spiked, 2.0, prep)
    assert robust.parcel_valid.all()
    untouched = np.delete(np.arange(6), 3)
    np.testing.assert_allclose(robust.values[:, untouched], clean.values[:, untouched], atol=1e-6)
    # the spike is held at 8 robust SDs: one large value, no longer the whole parcel's variance
    assert 5 < robust.values[50, 3] < 9 and np.corrcoef(robust.values[:, 3], clean.values[:, 3])[0, 1] > 0.75
    unclipped = preprocess_scan(spiked, 2.0, Preprocessing(band_pass=None, clip_mad=None))
    assert unclipped.parcel_valid.all() and np.corrcoef(unclipped.values[:, 3], clean.values[:, 3])[0, 1] < 0.5
    # a model saved before clipping existed was trained on unclipped scans
    assert Preprocessing.from_config({"model_tr": 2.0}).clip_mad is None
    assert Preprocessing.from_config(prep.identity()).clip_mad == 8.0


def test_short_scans_are_padded_with_invalid_patches_or_dropped():
    prep = Preprocessing(band_pass=None)
    rng = np.random.default_rng(1)
    scan = preprocess_scan(rng.standard_normal((50, 4)), 2.0, prep)
    assert view_starts(scan.n_frames, prep, rng) == (0, 0)
    x, patch_valid = crop(scan.values, 0, prep)
    assert x.shape == (4, 100)
    assert patch_valid.tolist() == [True, True, False, False, False]
    assert (x[:, 50:] == 0).all() and np.array_equal(x[:, :50], scan.values.T)
    kept = prepare_scans([(rng.standard_normal((50, 4)), 2.0, {}), (rng.standard_normal((12, 4)), 2.0, {})], prep)
    assert len(kept) == 1


def test_view_crops_are_at_most_80_trs_apart():
    prep = Preprocessing()
    rng = np.random.default_rng(2)
    pairs = np.array([view_starts(400, prep, rng) for _ in range(2000)])
    offsets = np.abs(pairs[:, 0] - pairs[:, 1])
    assert offsets.max() <= 80 and offsets.max() >= 70
    assert pairs.min() >= 0 and pairs.max() <= 300


def test_augmentations_stay_within_bounds():
    n_views, batch, parcels, length = 2, 64, 40, 100
    views = torch.randn(n_views, batch, parcels, length) + 3.0
    parcel_valid = torch.ones(n_views, batch, parcels, dtype=torch.bool)
    parcel_valid[:, :, -4:] = False
    patch_valid = torch.ones(n_views, batch, 5, dtype=torch.bool)
    patch_valid[:, :8, -1] = False
    views = torch.where(parcel_valid[..., None], views, 0.0)

    only_zeroing = Augmentations(noise_std=0.0, scale_range=(1.0, 1.0))
    out = augment_views(views, parcel_valid, patch_valid, only_zeroing, torch.Generator().manual_seed(0))
    zero_parcels = (out[..., :36, :80] == 0).all(dim=-1).float().sum(dim=-1)
    assert zero_parcels.max() <= 0.1 * parcels and zero_parcels.max() >= 1
    zero_frames = (out[..., :36, :80] == 0).all(dim=-2).float().sum(dim=-1)
    assert zero_frames.max() <= 30 and zero_frames.max() >= 20
    assert (out[..., 36:, :] == 0).all() and (out[:, :8, :, 80:] == 0).all()

    only_scaling = Augmentations(parcel_drop=0.0, time_block=0.0, noise_std=0.0)
    ratio = augment_views(views, parcel_valid, patch_valid, only_scaling, torch.Generator().manual_seed(1))[..., 0, 0]
    ratio = ratio / views[..., 0, 0]
    assert ratio.min() >= 0.8 - 1e-6 and ratio.max() <= 1.2 + 1e-6 and ratio.std() > 0.05

    only_noise = Augmentations(parcel_drop=0.0, time_block=0.0, scale_range=(1.0, 1.0))
    noisy = augment_views(views, parcel_valid, patch_valid, only_noise, torch.Generator().manual_seed(2))
    assert (noisy - views)[..., :36, :80].std() == pytest.approx(0.1, rel=0.05)
    again = augment_views(views, parcel_valid, patch_valid, only_noise, torch.Generator().manual_seed(2))
    assert torch.equal(noisy, again)


def test_in_memory_batches_are_a_function_of_the_step(tmp_path):
    prep = Preprocessing(band_pass=None)
    raw, _ = simulate_scans(10, 0, n_frames=130)
    scans = prepare_scans([(data, tr, {"scan_id": str(i)}) for i, (data, tr) in enumerate(raw)], prep)
    source = InMemoryBatches(scans, prep, batch_size=2, seed=5, world_size=2, rank=1)
    assert source.steps_per_epoch == 2
    first = dict(source.batches(0, 4))
    again = dict(source.batches(2, 4))
    assert torch.equal(first[3]["views"], again[3]["views"])
    assert first[0]["views"].shape == (2, 2, 24, 100)
    assert not torch.equal(first[0]["views"], first[2]["views"])


def test_streaming_batches_cover_each_scan_once_per_epoch_and_resume(tmp_path):
    raw, _ = simulate_scans(22, 1, n_frames=110)
    write_dataset(tmp_path, "A", raw[:12], rows_per_group=3)
    write_dataset(tmp_path, "B", raw[12:], rows_per_group=4)
    prep = Preprocessing(band_pass=None)
    source = StreamingBatches(tmp_path, ATLAS, None, prep, batch_size=3, seed=0, streams_per_rank=2, shuffle_buffer=4)
    assert source.steps_per_epoch == 6
    batches = dict(source.batches(0, 8))
    assert sorted(batches) == list(range(8))
    first_epoch = torch.cat([batches[k]["views"][0, :, :, :10].flatten(1) for k in range(6)])
    assert len({tuple(row.tolist()) for row in first_epoch}) == 18
    resumed = dict(source.batches(5, 8))
    for step in range(5, 8):
        assert torch.equal(resumed[step]["views"], batches[step]["views"])
    with_workers = dict(source.batches(4, 7, num_workers=2))
    assert sorted(with_workers) == [4, 5, 6]
    for step in with_workers:
        assert torch.equal(with_workers[step]["views"], batches[step]["views"])


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    raw, _ = simulate_scans(12, 2, n_frames=130)
    write_dataset(root, "A", raw[:8])
    write_dataset(root, "B", raw[8:])
    return root


@pytest.fixture(scope="module")
def uninterrupted(toy_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return pretrain(tiny_config(), toy_dataset, ATLAS, ["A", "B"], out, resume=False)


def test_checkpoint_holds_models_config_and_data_identity(uninterrupted):
    state = load_checkpoint(uninterrupted)
    assert state["step"] == 6 and state["data_position"]["steps_per_epoch"] == 3 and state["epoch"] == 2
    assert {"student", "teacher", "optimizer", "scaler", "rng", "config"} <= state.keys()
    identity = state["data_identity"]
    assert identity["atlas_id"] == ATLAS and identity["cohorts"] == ["A", "B"]
    assert identity["parcel_names"] == [label["name"] for label in toy_labels()]
    assert identity["parcel_networks"][:7] == ["Vis"] * 6 + ["SomMot"] and identity["networks"] == NETWORKS
    assert identity["strategy"] == STRATEGY
    assert identity["preprocessing"] == {"model_tr": 2.0, "band_pass": None, "filter_order": 2,
                                         "zscore": True, "window": 100, "patch_len": 20, "clip_mad": 8.0}
    saved = yaml_load(uninterrupted.parent / "config.yaml")
    assert saved == state["config"] and saved["model"]["dim"] == 32
    assert PretrainConfig.from_dict(state["config"]) == resolve_pretrain_config({**tiny_config(), "resume": "never"})
    assert load_checkpoint(uninterrupted.parent / "state" / "checkpoint.prev.pt")["step"] == 3
    assert load_checkpoint(uninterrupted.parent / "state" / "checkpoint.pt")["step"] == 6
    assert checkpoint_sha256(uninterrupted) == hashlib.sha256(uninterrupted.read_bytes()).hexdigest()
    encoder, loaded_identity = load_encoder(uninterrupted)
    assert loaded_identity == identity and not encoder.training
    teacher = {k.removeprefix("encoder."): v for k, v in state["teacher"].items() if k.startswith("encoder.")}
    assert_same_parameters(encoder.state_dict(), teacher, atol=0)
    student, _ = load_encoder(uninterrupted, which="student")
    assert not torch.equal(student.blocks[0].attn.qkv.weight, encoder.blocks[0].attn.qkv.weight)


def test_resume_after_n_steps_matches_2n_steps(toy_dataset, uninterrupted, tmp_path, caplog):
    config = tiny_config()
    first = pretrain({**config, "stop_at_step": 3}, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert load_checkpoint(first)["step"] == 3
    final = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    expected, resumed = load_checkpoint(uninterrupted), load_checkpoint(final)
    assert resumed["step"] == 6
    assert_same_parameters(resumed["student"], expected["student"])
    assert_same_parameters(resumed["teacher"], expected["teacher"])
    for folder in (tmp_path, tmp_path / "state"):
        steps = [int(line.split(",")[0]) for line in (folder / "log.csv").read_text().splitlines()[1:]]
        assert steps == [1, 2, 3, 4, 5, 6]
    with caplog.at_level(logging.INFO):
        raised = pretrain({**config, "steps": 9}, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert load_checkpoint(raised)["step"] == 9 and "steps raised from 6 to 9" in caplog.text
    assert not (tmp_path / "state.replaced").exists()


def test_corrupt_checkpoint_falls_back_to_previous(toy_dataset, uninterrupted, tmp_path, caplog):
    config = tiny_config()
    pretrain({**config, "stop_at_step": 5}, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    latest = tmp_path / "state" / "checkpoint.pt"
    latest.write_bytes(latest.read_bytes()[:5000])
    with pytest.raises(SemantoksError, match="checkpoint.pt"):
        load_checkpoint(latest)
    with caplog.at_level(logging.WARNING):
        state, path = load_latest(tmp_path / "state")
    assert path.name == "checkpoint.prev.pt" and state["step"] == 3 and "unreadable" in caplog.text
    final = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert_same_parameters(load_checkpoint(final)["student"], load_checkpoint(uninterrupted)["student"])
    assert load_checkpoint(tmp_path / "state" / "checkpoint.prev.pt")["step"] == 3
    assert (tmp_path / "state" / "checkpoint.corrupt.pt").stat().st_size == 5000
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (tmp_path / "state" / name).write_bytes(b"not a checkpoint")
    with pytest.raises(SemantoksError, match=re.escape(str(tmp_path / "state"))):
        pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)


def test_dataset_with_other_parcel_order_or_denoising_is_refused(uninterrupted):
    identity = load_checkpoint(uninterrupted)["data_identity"]
    labels = toy_labels()
    metadata = {"atlas_id": ATLAS, "labels": labels, "networks": NETWORKS, "space": "MNI152NLin2009cAsym",
                "strategy": STRATEGY}
    check_identity(identity, metadata, "same.parquet")
    swapped = labels[:3] + [labels[4], labels[3]] + labels[5:]
    with pytest.raises(SemantoksError, match="other.parquet: the parcel order/names .*position 3"):
        check_identity(identity, {**metadata, "labels": swapped}, "other.parquet", checkpoint=uninterrupted)
    with pytest.raises(SemantoksError, match="atlas Schaefer100x7"):
        check_identity(identity, {**metadata, "atlas_id": "Schaefer100x7"}, "other.parquet")
    scrubbed = {**STRATEGY, "fd_threshold": 0.5}
    with pytest.raises(SemantoksError, match="denoising strategy"):
        check_identity(identity, {**metadata, "strategy": scrubbed}, "other.parquet")
    check_identity(identity, {**metadata, "strategy": scrubbed}, "other.parquet", allow_strategy_mismatch=True)


def test_a_checkpoint_holding_pickled_objects_is_refused_without_torchs_unsafe_advice(tmp_path):
    import fractions

    path = tmp_path / "foreign.pt"
    torch.save({"step": fractions.Fraction(1, 3)}, path)
    with pytest.raises(SemantoksError) as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert f"{path}: holds a Python object (fractions.Fraction) that semantoks does not load" in message
    assert "weights_only" not in message and "\n" not in message


def test_save_checkpoint_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    base = {"student": {}, "teacher": {}, "config": {}, "data_identity": {}}
    save_checkpoint(path, {**base, "step": 1})
    save_checkpoint(path, {**base, "step": 2})
    assert load_checkpoint(path)["step"] == 2
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def yaml_load(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


def subject_readout_accuracy(embeddings, subjects):
    """Linear read-out of the subject from embeddings: ridge classifier, one held-out scan per subject per fold."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    readout = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-2, 4, 13)))
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    return cross_val_score(readout, np.stack(embeddings), subjects, cv=folds).mean()


@pytest.mark.slow
def test_pretraining_learns_the_planted_coupling_pattern(tmp_path):
    """Pretrained teacher embeddings identify unseen subjects far better than a random-init encoder.

    Measured on 1 CPU thread (training seeds 0/1/2, random-init seeds 0/1/2): trained 0.85/0.71/0.76,
    random 0.49/0.47/0.42 (chance 1/24); the 0.15 margin leaves room under the worst pair (0.22).
    """
    from semantoks.embed import embed_dataset

    pretraining, _ = simulate_scans(64, seed=0)
    probe, subjects = simulate_scans(24, seed=1, scans_per_subject=4)
    write_dataset(tmp_path / "data", "pretrain", pretraining, rows_per_group=16)
    write_dataset(tmp_path / "data", "probe", probe, rows_per_group=16)
    # a short run learns best with the learning rate ramping up over all of it (warmup only)
    config = {"preset": "tiny", "model": {"dim": 32, "depth": 2, "heads": 2},
              "loss": {"head_hidden": 128, "out_dim": 16}, "steps": 800, "batch_size": 32,
              "band_pass": [0.01, 0.1], "base_lr": 0.064, "warmup_fraction": 1.0, "momentum": 0.99, "momentum_end": 0.99,
              "checkpoint_every": 800, "log_every": 100, "seed": 0}
    checkpoint = pretrain(config, tmp_path / "data", ATLAS, ["pretrain"], tmp_path / "model")
    trained = embed_dataset(checkpoint, tmp_path / "data", ATLAS, ["probe"], tmp_path / "trained.parquet", n_crops=1)
    random = embed_dataset(None, tmp_path / "data", ATLAS, ["probe"], tmp_path / "random.parquet", n_crops=1,
                           config=config, seed=0)
    expected_order = [f"sub-probe{i:03d}_task-rest" for i in range(96)]
    assert trained["scan_id"].tolist() == random["scan_id"].tolist() == expected_order
    trained_accuracy = subject_readout_accuracy(trained["embedding"], subjects)
    random_accuracy = subject_readout_accuracy(random["embedding"], subjects)
    print(f"subject read-out accuracy: trained {trained_accuracy:.3f}, random init {random_accuracy:.3f}")
    assert trained_accuracy > random_accuracy + 0.15


def read_log(path):
    import pandas as pd

    return pd.read_csv(path)


def test_every_loss_term_is_logged_on_every_row_with_alternate_masking(toy_dataset, tmp_path, caplog):
    # mtm is computed on even steps only; a row holding just its last (odd) step read 0 forever
    with caplog.at_level(logging.INFO, logger="semantoks.model.train"):
        pretrain(tiny_config(log_every=2, mask_mode="alternate"), toy_dataset, ATLAS, ["A", "B"], tmp_path)
    rows = read_log(tmp_path / "log.csv")
    assert rows["step"].tolist() == [2, 4, 6]
    for term in ("total", "compression", "expansion", "mtm", "ttr"):
        assert np.isfinite(rows[f"loss_{term}"]).all(), term
    assert (rows["loss_mtm"] > 0).all()
    progress = [line for line in caplog.messages if line.startswith("step ")]
    assert len(progress) == 3 and progress[0].startswith("step 2/6 | loss total ")
    assert all(word in progress[-1] for word in ("mtm", "ttr", "| lr ", "scans/s", "| ETA 0h00m00s"))


def test_changed_data_or_settings_start_fresh_and_say_why(toy_dataset, tmp_path, caplog):
    config = tiny_config()
    out = tmp_path / "model"
    pretrain({**config, "stop_at_step": 3}, toy_dataset, ATLAS, ["A", "B"], out)
    raw, _ = simulate_scans(12, 2, n_frames=130)
    rescrubbed = tmp_path / "rescrubbed"
    write_dataset(rescrubbed, "A", raw[:8], strategy={**STRATEGY, "fd_threshold": 0.5})
    write_dataset(rescrubbed, "B", raw[8:], strategy={**STRATEGY, "fd_threshold": 0.5})
    with caplog.at_level(logging.WARNING):
        final = pretrain(config, rescrubbed, ATLAS, ["A", "B"], out)
    assert "starting fresh: the training state was made with different settings (data strategy)" in caplog.text
    fresh = pretrain(config, rescrubbed, ATLAS, ["A", "B"], tmp_path / "fresh", resume=False)
    assert_same_parameters(load_checkpoint(final)["teacher"], load_checkpoint(fresh)["teacher"], atol=0)
    assert load_checkpoint(out / "state.replaced" / "checkpoint.pt")["step"] == 3
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pretrain({**config, "stop_at_step": 2, "extra": {"loss": {"out_dim": 16}}}, rescrubbed, ATLAS, ["A"], out)
    assert "different settings (loss.out_dim, data cohorts)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pretrain({**config, "steps": 4}, rescrubbed, ATLAS, ["A"], out)
    assert "starting fresh" in caplog.text and "loss.out_dim" in caplog.text


def test_rerunning_a_finished_run_retrains_it_from_scratch(toy_dataset, uninterrupted, tmp_path, caplog):
    config = tiny_config()
    pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    with caplog.at_level(logging.WARNING):
        again = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert "finished, published run with these settings" in caplog.text
    assert read_log(tmp_path / "log.csv")["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert_same_parameters(load_checkpoint(again)["student"], load_checkpoint(uninterrupted)["student"])
    # killed after its last checkpoint but before publishing it: the rerun publishes, it does not retrain
    (tmp_path / "checkpoint.pt").unlink()
    (tmp_path / "state" / "published.json").write_text('{"step": 3, "stopped_early": null}')
    caplog.clear()
    with caplog.at_level(logging.INFO):
        published = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert "starting fresh" not in caplog.text and "at step 6" in caplog.text
    assert_same_parameters(load_checkpoint(published)["student"], load_checkpoint(uninterrupted)["student"])
    caplog.clear()
    pretrain({**config, "stop_at_step": 3}, toy_dataset, ATLAS, ["A", "B"], tmp_path / "never")
    with caplog.at_level(logging.WARNING):
        pretrain({**config, "resume": "never"}, toy_dataset, ATLAS, ["A", "B"], tmp_path / "never")
    assert "starting fresh: pretrain resume is never" in caplog.text


def test_a_finished_run_of_the_same_code_and_data_is_published_again_not_retrained(toy_dataset, uninterrupted,
                                                                                     tmp_path, caplog):
    # a job that finished after its Snakemake was lost: --unlock and a rerun retrained every step
    config = tiny_config()
    pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path, code_version="code-1")
    (tmp_path / "checkpoint.pt").unlink()
    with caplog.at_level(logging.INFO):
        again = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path, code_version="code-1")
    assert "publishing it again without training" in caplog.text and "starting fresh" not in caplog.text
    assert "step 1/6" not in caplog.text and not (tmp_path / "state.replaced").exists()
    assert_same_parameters(load_checkpoint(again)["student"], load_checkpoint(uninterrupted)["student"], atol=0)
    # changed code (or data): the rerun was asked for, so the finished run is retrained
    caplog.clear()
    with caplog.at_level(logging.INFO):
        pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path, code_version="code-2")
    assert "starting fresh: the state holds a finished, published run" in caplog.text and "step 1/6" in caplog.text
    assert json.loads((tmp_path / "state" / "published.json").read_text())["inputs"]["code"] == "code-2"


def test_a_state_folder_another_live_process_trains_in_is_refused(toy_dataset, tmp_path, caplog):
    import os
    import socket
    import subprocess

    from semantoks.model.state_lock import LOCK_NAME

    config = tiny_config(steps=2)
    (tmp_path / "state").mkdir()
    lock = tmp_path / "state" / LOCK_NAME
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "since": "2026-01-01T00:00:00"}))
    with pytest.raises(SemantoksError, match=rf"{LOCK_NAME}: process {os.getppid()} on .* has been training in this "
                                             r"state folder since 2026-01-01T00:00:00; wait for it"):
        pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "state" / "checkpoint.pt").exists()
    # a lock whose process is gone is taken over, and released when training ends
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid, "since": "2026-01-01T00:00:00"}))
    with caplog.at_level(logging.WARNING):
        pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert "taking over a lock left by a process that is gone" in caplog.text and not lock.exists()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_max_minutes_stops_cleanly_with_a_checkpoint_and_a_rerun_continues(toy_dataset, uninterrupted, tmp_path,
                                                                           caplog):
    config = tiny_config()
    with caplog.at_level(logging.WARNING):
        stopped = pretrain({**config, "max_minutes": 1e-9}, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert load_checkpoint(stopped)["step"] == 1
    assert load_checkpoint(stopped)["stopped_early"] == "the max_minutes budget of 1e-09 minutes was spent"
    assert "stopped early at step 1 of 6 (the max_minutes budget of 1e-09 minutes was spent)" in caplog.text
    assert json.loads((tmp_path / "state" / "published.json").read_text())["stopped_early"].startswith("the max")
    # the outputs exist, so only a forced rerun continues: the log says so (the report and card read training.json)
    assert "continue it with `snakemake --forcerun pretrain`" in caplog.text
    assert json.loads((tmp_path / "training.json").read_text()) == {
        "step": 1, "steps": 6, "stopped_early": "the max_minutes budget of 1e-09 minutes was spent"}
    final = pretrain(config, toy_dataset, ATLAS, ["A", "B"], tmp_path)
    assert json.loads((tmp_path / "training.json").read_text())["stopped_early"] is None
    assert_same_parameters(load_checkpoint(final)["teacher"], load_checkpoint(uninterrupted)["teacher"])
    assert load_checkpoint(final)["stopped_early"] is None


def test_health_and_reidentification_are_logged_and_held_out_subjects_never_train(toy_dataset, tmp_path,
                                                                                  monkeypatch):
    import sys
    import types

    from semantoks.model.data import open_pretraining_data

    calls = []

    def measure_health(encoder, initial_encoder, batch):
        # stand-in for semantoks.model.health (written elsewhere): checks the call contract only
        assert not encoder.training and not initial_encoder.training
        assert batch["x"].shape == (8, 24, 100) and batch["parcel_valid"].dtype == torch.bool
        assert batch["patch_valid"].shape == (8, 5)
        calls.append(1)
        drift = sum(float((a - b).abs().sum()) for a, b in zip(encoder.parameters(), initial_encoder.parameters()))
        return {"stand_in_drift": drift}

    monkeypatch.setitem(sys.modules, "semantoks.model.health", types.SimpleNamespace(measure_health=measure_health))
    import shutil

    import pandas as pd

    from semantoks.phenotypes import phenotype_table_path, write_phenotypes

    root = tmp_path / "data"
    shutil.copytree(toy_dataset, root)
    rng = np.random.default_rng(0)
    for cohort, n in (("A", 8), ("B", 4)):
        frame = pd.DataFrame({"subject": [f"{cohort}{i:03d}" for i in range(n)], "age": rng.uniform(20, 60, n),
                              "group": pd.Categorical(rng.choice(["x", "y"], n))})
        write_phenotypes(frame, phenotype_table_path(root, cohort), {"age": "continuous", "group": "binary"})
    config = tiny_config(log_every=2, health_every=3, eval_every=3, eval_subjects=4, batch_size=2,
                         eval_phenotypes=["age", "group"])
    with pytest.raises(SemantoksError, match="eval_phenotypes sex are not in the phenotype table"):
        pretrain({**config, "eval_phenotypes": ["sex"]}, root, ATLAS, ["A", "B"], tmp_path / "model")
    checkpoint = pretrain(config, root, ATLAS, ["A", "B"], tmp_path / "model")
    rows = read_log(tmp_path / "model" / "log.csv").set_index("step")
    assert rows.loc[[3, 6], "eval_age_ridge_r"].between(-1, 1).all()
    assert rows.loc[[3, 6], "eval_group_knn_acc"].between(0, 1).all() and rows.loc[3, "eval_group_chance"] >= 0.5
    assert rows.index.tolist() == [2, 3, 4, 6] and len(calls) == 2
    assert rows.loc[3, "stand_in_drift"] > 0 and rows.loc[6, "stand_in_drift"] > rows.loc[3, "stand_in_drift"]
    assert rows.loc[[3, 6], "eval_reid_top1"].between(0, 1).all() and rows.loc[3, "eval_reid_chance"] == 0.25
    held_out = {tuple(pair) for pair in load_checkpoint(checkpoint)["held_out_subjects"]}
    assert len(held_out) == 4
    prep = Preprocessing()
    for source in ("memory", "stream"):
        data = open_pretraining_data(toy_dataset, ATLAS, ["A", "B"], prep, 2, 0, source=source,
                                     exclude_subjects=held_out)
        trained = ({(s.meta["cohort"], s.meta["subject"]) for s in data.scans} if source == "memory" else
                   {data.keys[row][0:1] + (data.reader.index["subject"][row],) for shard in data.shards
                    for row in shard})
        assert len(trained) == 8 and not trained & held_out


def test_health_without_its_module_is_a_one_line_error(toy_dataset, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "semantoks.model.health", None)
    with pytest.raises(SemantoksError, match="set pretrain health_every 0"):
        pretrain(tiny_config(health_every=2), toy_dataset, ATLAS, ["A", "B"], tmp_path)


# The real pretrain rule under Snakemake, on the toy dataset: the rule file is included by a Snakefile
# that defines only what the rule reads from common.smk (the rest of the DAG is not needed here).
KILL_TEST_SNAKEFILE = """
import sys
from pathlib import Path
sys.path.insert(0, {src!r})
configfile: "config.yaml"
ATLAS_ID = {atlas!r}
PRETRAIN_COHORTS = ["A", "B"]
PARTITION = "data/timeseries/atlas=" + ATLAS_ID + "/cohort={{cohort}}/part-0.parquet"
PHENOTYPE_TABLE = "data/phenotypes/cohort={{cohort}}/part-0.parquet"
MODEL_DIR = MODEL_SEED_DIR = "model"
CHECKPOINT = MODEL_DIR + "/checkpoint.pt"
from semantoks.model.config import rerun_settings as pretrain_rerun_settings
from semantoks.provenance import canonical
def seeded_pretrain_params(wildcards, keys=None):
    # one seed (pretrain.seed) in a folder without a seed wildcard: as common.smk's, less the wildcard
    return canonical({{k: v for k, v in pretrain_rerun_settings(config["pretrain"]).items() if k != "seeds"}})
def script_code(name):
    return "test"
def dataset_root(wildcards, input):
    return str(Path(input.partitions[0]).parents[3])
include: {rule!r}
"""
KILL_TEST_STEPS = 40


def snakemake_workdir(path, repo_root, strategy=STRATEGY, **pretrain_settings):
    """A Snakemake working directory holding the toy dataset and a config with the schema's pretrain defaults."""
    from semantoks.config import load_schema

    raw, _ = simulate_scans(12, 2, n_frames=130)
    write_dataset(path / "data", "A", raw[:8], strategy=strategy)
    write_dataset(path / "data", "B", raw[8:], strategy=strategy)
    defaults = {key: spec["default"] for key, spec in load_schema()["properties"]["pretrain"]["properties"].items()
                if "default" in spec}
    settings = tiny_config(steps=KILL_TEST_STEPS, checkpoint_every=5, log_every=5, **pretrain_settings)
    (path / "config.yaml").write_text(yaml_dump({"pretrain": {**defaults, **settings}}))
    (path / "Snakefile").write_text(KILL_TEST_SNAKEFILE.format(
        src=str(repo_root / "src"), atlas=ATLAS, rule=str(repo_root / "workflow" / "rules" / "pretrain.smk")))
    return path


def snakemake_command(workdir, *args):
    import sys

    return [sys.executable, "-m", "snakemake", "--snakefile", str(workdir / "Snakefile"), "--directory", str(workdir),
            "--cores", "2", *args, "model/checkpoint.pt"]


def run_workflow(workdir, *args):
    import subprocess

    result = subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_after_second_checkpoint(workdir):
    """Start Snakemake, SIGKILL its whole process group once the state folder holds two checkpoints."""
    import os
    import signal
    import subprocess
    import time

    state = workdir / "model" / "state" / "checkpoint.pt"
    previous = state.with_name("checkpoint.prev.pt")
    process = subprocess.Popen(snakemake_command(workdir), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not previous.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(state)["step"]
    assert 10 <= killed_at < KILL_TEST_STEPS
    assert not (workdir / "model" / "checkpoint.pt").exists()
    return killed_at


def yaml_dump(value):
    import yaml

    return yaml.safe_dump(value)


@pytest.fixture(scope="module")
def workflow_uninterrupted(tmp_path_factory, repo_root):
    workdir = snakemake_workdir(tmp_path_factory.mktemp("uninterrupted_workflow"), repo_root)
    run_workflow(workdir)
    return workdir


@pytest.mark.slow
def test_killed_pretrain_job_resumes_to_the_weights_of_an_uninterrupted_run(workflow_uninterrupted, repo_root,
                                                                             tmp_path):
    workdir = snakemake_workdir(tmp_path, repo_root)
    killed_at = kill_after_second_checkpoint(workdir)
    run_workflow(workdir, "--unlock")
    run_workflow(workdir, "--rerun-incomplete")
    resumed = load_checkpoint(workdir / "model" / "checkpoint.pt")
    expected = load_checkpoint(workflow_uninterrupted / "model" / "checkpoint.pt")
    assert resumed["step"] == KILL_TEST_STEPS
    assert_same_parameters(resumed["student"], expected["student"], atol=0)
    assert_same_parameters(resumed["teacher"], expected["teacher"], atol=0)
    assert f"state/checkpoint.pt at step {killed_at}" in (workdir / "model" / "pretrain.log").read_text()
    steps = read_log(workdir / "model" / "log.csv")["step"].tolist()
    assert steps == read_log(workflow_uninterrupted / "model" / "log.csv")["step"].tolist() == list(range(5, 41, 5))


@pytest.mark.slow
def test_pretrain_after_a_data_change_never_continues_the_old_model(workflow_uninterrupted, repo_root, tmp_path):
    workdir = snakemake_workdir(tmp_path, repo_root)
    killed_at = kill_after_second_checkpoint(workdir)
    raw, _ = simulate_scans(12, 2, n_frames=130)
    scrubbed = {**STRATEGY, "fd_threshold": 0.5}
    write_dataset(workdir / "data", "A", raw[:8], strategy=scrubbed)
    write_dataset(workdir / "data", "B", raw[8:], strategy=scrubbed)
    run_workflow(workdir, "--unlock")
    run_workflow(workdir, "--rerun-incomplete")
    log_text = (workdir / "model" / "pretrain.log").read_text()
    assert "starting fresh: the training state was made with different settings (data strategy)" in log_text
    assert "resuming from" not in log_text
    assert "step 5/40 | loss total" in log_text
    final = load_checkpoint(workdir / "model" / "checkpoint.pt")
    assert final["data_identity"]["strategy"] == scrubbed and final["step"] == KILL_TEST_STEPS
    old = load_checkpoint(workdir / "model" / "state.replaced" / "checkpoint.pt")
    assert old["data_identity"]["strategy"] == STRATEGY and old["step"] == killed_at


@pytest.mark.slow
def test_forcerun_pretrain_publishes_an_unchanged_finished_run_and_resume_never_retrains(workflow_uninterrupted,
                                                                                          repo_root, tmp_path):
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(workflow_uninterrupted, workdir, symlinks=True)
    before = load_checkpoint(workdir / "model" / "checkpoint.pt")
    run_workflow(workdir, "--forcerun", "pretrain")
    log_text = (workdir / "model" / "pretrain.log").read_text()
    assert "publishing it again without training" in log_text and "step 5/40 | loss total" not in log_text
    assert_same_parameters(load_checkpoint(workdir / "model" / "checkpoint.pt")["teacher"], before["teacher"], atol=0)
    # resume: never is operational (reruns nothing by itself); with --forcerun it retrains from scratch
    import yaml

    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["pretrain"]["resume"] = "never"
    (workdir / "config.yaml").write_text(yaml_dump(config))
    run_workflow(workdir, "--forcerun", "pretrain")
    log_text = (workdir / "model" / "pretrain.log").read_text()
    assert "starting fresh: pretrain resume is never" in log_text and "step 5/40 | loss total" in log_text
    after = load_checkpoint(workdir / "model" / "checkpoint.pt")
    assert after["step"] == KILL_TEST_STEPS
    assert_same_parameters(after["teacher"], before["teacher"], atol=0)


@pytest.mark.slow
def test_a_job_that_finished_after_its_snakemake_was_lost_is_not_retrained(workflow_uninterrupted, repo_root,
                                                                           tmp_path):
    # a lost login node: Snakemake dies, its pretrain job runs on and publishes; --unlock and a rerun retrained it
    import os
    import signal
    import subprocess
    import time

    from semantoks.model.state_lock import LOCK_NAME

    workdir = snakemake_workdir(tmp_path, repo_root)
    process = subprocess.Popen(snakemake_command(workdir), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = workdir / "model" / "state"
    deadline = time.monotonic() + 300
    while not (state / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    while (state / LOCK_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (workdir / "model" / "checkpoint.pt").is_file(), "the orphaned job did not finish"
    run_workflow(workdir, "--unlock")
    run_workflow(workdir, "--rerun-incomplete")
    log_text = (workdir / "model" / "pretrain.log").read_text()
    assert "publishing it again without training" in log_text and "starting fresh" not in log_text
    expected = load_checkpoint(workflow_uninterrupted / "model" / "checkpoint.pt")
    assert_same_parameters(load_checkpoint(workdir / "model" / "checkpoint.pt")["teacher"], expected["teacher"],
                           atol=0)


def test_online_phenotype_scores_find_what_the_features_encode():
    import pandas as pd

    from semantoks.model.online_eval import phenotype_scores, reidentification_top1

    rng = np.random.default_rng(0)
    n = 30
    subjects = [("A", f"s{i}") for i in range(n)]
    age = rng.uniform(20, 60, n)
    group = np.where(np.arange(n) % 2, "x", "y")
    base = rng.standard_normal((n, 16))
    base[:, 0] = (age - 40) / 5
    base[:, 1] = np.where(group == "x", 6.0, -6.0)
    crops = torch.from_numpy(np.concatenate([base, base + 0.01 * rng.standard_normal((n, 16))]))
    phenotypes = pd.DataFrame({"cohort": "A", "subject": [s for _, s in subjects], "age": age, "group": group})
    phenotypes.attrs["phenotype_types"] = {"age": "continuous", "group": "binary"}
    scores = phenotype_scores(crops, subjects, phenotypes, ["age", "group"])
    assert scores["eval_age_ridge_r"] > 0.8 and scores["eval_group_knn_acc"] == 1.0
    assert scores["eval_group_chance"] == 0.5
    shuffled = phenotypes.assign(age=rng.permutation(age), group=rng.permutation(group))
    null = phenotype_scores(crops, subjects, shuffled, ["age", "group"])
    assert null["eval_age_ridge_r"] < 0.5 and null["eval_group_knn_acc"] < 0.8
    assert reidentification_top1(crops) == 1.0
    assert reidentification_top1(torch.cat([crops[:n], crops[n:][rng.permutation(n)]])) < 0.2


def _openmp_settings(env):
    """The settings libgomp reports when a fresh process imports the pretraining code (as the rule script does)."""
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}, **env, "OMP_DISPLAY_ENV": "VERBOSE"}
    result = subprocess.run([sys.executable, "-c", "import semantoks.model.train"], env=env, capture_output=True,
                            text=True, timeout=120, check=True)
    settings = dict(re.findall(r"^\s*(\w+) = '([^']*)'", result.stderr, re.MULTILINE))
    if "GOMP_SPINCOUNT" not in settings:
        pytest.skip("torch here does not use GNU OpenMP (libgomp)")
    return settings


def test_openmp_workers_sleep_instead_of_spinning():
    # spinning workers (libgomp's default 300000 spins after each parallel region) made pretraining 5-10x slower
    # whenever anything else ran on the cores: the demo's 11-16 scans/s early steps
    assert _openmp_settings({})["GOMP_SPINCOUNT"] == "0"
    assert _openmp_settings({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


def test_hold_out_sites_are_never_trained_on_and_recorded_in_the_checkpoint(toy_dataset, tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    from semantoks.model import train as train_module
    from semantoks.phenotypes import phenotype_table_path, write_phenotypes

    root = tmp_path / "data"
    shutil.copytree(toy_dataset, root)
    for cohort, n in (("A", 8), ("B", 4)):
        frame = pd.DataFrame({"subject": [f"{cohort}{i:03d}" for i in range(n)],
                              "site": pd.Categorical([f"{cohort}{i % 2}" for i in range(n)])})
        write_phenotypes(frame, phenotype_table_path(root, cohort), {"site": "categorical"})
    trained = []
    opened = train_module.open_pretraining_data

    def spy(*args, **kwargs):
        data = opened(*args, **kwargs)
        trained.extend((s.meta["cohort"], s.meta["subject"]) for s in data.scans)
        return data

    monkeypatch.setattr(train_module, "open_pretraining_data", spy)
    config = tiny_config(steps=2, checkpoint_every=2, hold_out={"column": "site", "values": ["A1", "B0"]})
    checkpoint = pretrain(config, root, ATLAS, ["A", "B"], tmp_path / "model")
    expected = {("A", f"A{i:03d}") for i in (1, 3, 5, 7)} | {("B", "B000"), ("B", "B002")}
    assert {tuple(pair) for pair in load_checkpoint(checkpoint)["hold_out_subjects"]} == expected
    assert len(trained) == 6 and not set(trained) & expected


@pytest.mark.slow
@pytest.mark.parametrize("edit", [{"log_every": 7}, {"runtime": 60}, {"extra": {"log_every": 7, "num_workers": 1}},
                                  {"health_every": 0, "max_minutes": 30}])
def test_operational_edits_never_rerun_a_finished_pretrain_job(workflow_uninterrupted, edit):
    import subprocess

    import yaml

    config_path = workflow_uninterrupted / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["pretrain"] = {**config["pretrain"], **edit}
    config_path.write_text(yaml_dump(config))
    try:
        result = subprocess.run(snakemake_command(workflow_uninterrupted, "-n"), capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Nothing to be done" in result.stdout + result.stderr
    finally:
        config_path.write_text(original)
