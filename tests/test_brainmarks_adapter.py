"""The Brainmarks adapter: the shipped 17->7 reorder, fixed-shape samples, refusals, and the plugin in Brainmarks."""

import importlib.util
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import simulate_scans, tiny_config, write_dataset

import semantoks
from semantoks.brainmarks.adapter import SemantoksTransform, SemantoksWrapper, column_positions, schaefer400_17_to_7
from semantoks.brainmarks.derive_reorder import TABLE, VOLUME
from semantoks.errors import SemantoksError
from semantoks.model.train import pretrain

torch.set_num_threads(1)
HAS_BRAINMARKS = importlib.util.find_spec("brainmarks.models.registry") is not None


def test_shipped_reorder_is_a_bijection_matching_the_volumes(templateflow_home):
    order = schaefer400_17_to_7()
    assert sorted(order) == list(range(400))
    labels17 = np.asarray(nib.load(templateflow_home / VOLUME.format(k=17)).dataobj).astype(int)
    labels7 = np.asarray(nib.load(templateflow_home / VOLUME.format(k=7)).dataobj).astype(int)
    for index17 in (1, 57, 200, 333, 400):
        a, b = labels17 == index17, labels7 == order[index17 - 1] + 1
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95
    names17 = pd.read_csv(templateflow_home / TABLE.format(k=17), sep="\t")["name"]
    names7 = pd.read_csv(templateflow_home / TABLE.format(k=7), sep="\t")["name"]
    # hemisphere agrees for every matched pair
    assert all(n17.split("_")[1] == names7[order[i]].split("_")[1] for i, n17 in enumerate(names17))


@pytest.fixture(scope="module")
def schaefer400_model(tmp_path_factory, templateflow_home):
    root = tmp_path_factory.mktemp("brainmarks")
    names = pd.read_csv(templateflow_home / TABLE.format(k=7), sep="\t")["name"].tolist()
    labels = [{"index": i + 1, "name": n, "network": n.split("_")[2], "hemisphere": n.split("_")[1][0]}
              for i, n in enumerate(names)]
    scans, _ = simulate_scans(6, seed=2, n_frames=160, n_per_network=100)
    write_dataset(root / "data", "A", scans, labels=labels, atlas_id="Schaefer400x7")
    checkpoint = pretrain(tiny_config(steps=2, checkpoint_every=2), root / "data", "Schaefer400x7", ["A"],
                          root / "model")
    return checkpoint


def _sample(n_frames, columns, seed=0):
    bold = torch.randn(n_frames, columns, generator=torch.Generator().manual_seed(seed)).half()
    return {"bold": bold, "tr": 1.0, "mean": torch.zeros(1, columns), "std": torch.ones(1, columns), "target": 1}


def test_transform_reorders_17_network_columns_into_the_models_order(schaefer400_model):
    model = semantoks.load_model(schaefer400_model)
    transform = SemantoksTransform(model, "schaefer400", n_crops=3)
    sample = _sample(160, 400)
    out = transform(sample)
    assert out["x"].shape == (3, 400, 100) and out["patch_valid"].shape == (3, 5) and out["target"] == 1
    # the model's parcel order, rebuilt by hand from the shipped table, gives the same input
    in_model_order = sample["bold"].float().numpy()[:, np.argsort(schaefer400_17_to_7())]
    direct = SemantoksTransform(model, "schaefer400_tians3_buckner7", n_crops=3)
    padded = np.concatenate([in_model_order, np.zeros((160, 57))], axis=1)
    expected = direct({**sample, "bold": torch.from_numpy(padded)})
    torch.testing.assert_close(out["x"], expected["x"], atol=2e-3, rtol=0)


def test_samples_collate_and_the_wrapper_returns_cls_and_tokens(schaefer400_model):
    from torch.utils.data import default_collate

    model = semantoks.load_model(schaefer400_model)
    transform, wrapper = SemantoksTransform(model, "schaefer400", 4), SemantoksWrapper(model, "schaefer400")
    batch = default_collate([transform(_sample(n, 400, seed=n)) for n in (160, 300)])
    cls, registers, patches = wrapper(batch)
    assert cls.shape == (2, 1, 2 * model.encoder.dim) and registers is None
    assert patches.shape == (2, 7 * 5, model.encoder.dim) and torch.isfinite(cls).all()


def test_short_samples_and_wrong_atlases_are_refused_clearly(schaefer400_model, tmp_path):
    model = semantoks.load_model(schaefer400_model)
    with pytest.raises(SemantoksError, match="shorter than one 20-TR patch.*at least 40 s"):
        SemantoksTransform(model, "schaefer400")(_sample(16, 400))
    with pytest.raises(SemantoksError, match="space schaefer400 has 400 columns"):
        SemantoksTransform(model, "schaefer400")(_sample(160, 457))
    with pytest.raises(SemantoksError, match="need a model trained on Schaefer400x7"):
        column_positions("schaefer400", ["a"] * 100, "Schaefer100x7")


@pytest.mark.skipif(not HAS_BRAINMARKS, reason="the brainmarks extra is not installed (pip install -e '.[brainmarks]')")
def test_brainmarks_smoke_test_passes_for_semantoks(schaefer400_model, monkeypatch):
    from brainmarks.models import test_models
    from brainmarks.models.registry import list_models

    monkeypatch.setenv("SEMANTOKS_MODEL", str(schaefer400_model))
    assert "semantoks" in list_models()
    test_models.test_model("semantoks", 160)
    # 16 frames at TR 1 s: refused with our one-line reason, not an obscure crash
    with pytest.raises(SemantoksError, match="shorter than one 20-TR patch"):
        test_models.test_model("semantoks", 16)


def _write_abide_like_fixture(root, n_per_split=(12, 6, 6), n_frames=160):
    """A local stand-in for Brainmarks' ABIDE bucket: Arrow splits in schaefer400 space + a dx target map."""
    import json

    import datasets

    rng = np.random.default_rng(0)
    pattern = rng.standard_normal(400)
    target_map, subject = {}, 0
    for split, n in zip(("train", "validation", "test"), n_per_split):
        rows = {"sub": [], "tr": [], "bold": [], "mean": [], "std": []}
        for i in range(n):
            label = i % 2
            shared = rng.standard_normal(n_frames)
            bold = rng.standard_normal((n_frames, 400)) + (1.5 * label) * shared[:, None] * pattern
            bold = (bold - bold.mean(0)) / bold.std(0)
            rows["sub"].append(f"s{subject:03d}")
            rows["tr"].append(2.0)
            rows["bold"].append(bold.astype(np.float16))
            rows["mean"].append(np.zeros((1, 400), np.float32))
            rows["std"].append(np.ones((1, 400), np.float32))
            target_map[f"s{subject:03d}"] = int(label)
            subject += 1
        datasets.Dataset.from_dict(rows).save_to_disk(str(root / "abide.schaefer400.arrow" / split))
    (root / "targets").mkdir(parents=True)
    (root / "targets/abide_target_map_dx.json").write_text(json.dumps(target_map))


@pytest.mark.skipif(not HAS_BRAINMARKS, reason="the brainmarks extra is not installed (pip install -e '.[brainmarks]')")
def test_brainmarks_logistic_probe_runs_offline(schaefer400_model, tmp_path):
    _write_abide_like_fixture(tmp_path / "abide")
    env = {**os.environ, "ABIDE_ROOT": str(tmp_path / "abide"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "hf_cache")}
    command = [sys.executable, "-m", "brainmarks.main_logistic", "semantoks", "cls", "abide_dx", "--overrides",
               "device=cpu", "num_workers=1", "n_trials=3", "amp=false", "batch_size=8",
               f"model_kwargs.checkpoint={schaefer400_model}", f"output_root={tmp_path / 'out'}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(next((tmp_path / "out").rglob("eval_table.csv")))
    assert set(table["split"]) == {"train", "test"} and (table["model"] == "semantoks").all()
    assert table["bacc"].between(0, 1).all() and len(table) == 2 + 2 * 3
