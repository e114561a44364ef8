"""semantoks.load_model(...).encode(...): name-matched parcels, stored preprocessing, refusals; the README example."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import ATLAS, trained_toy_model

import semantoks
from semantoks.features.table import read_feature_table
from semantoks.errors import SemantoksError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    checkpoint, scans = trained_toy_model(root, seed=5, n_frames=220)
    return root, checkpoint, scans


def test_model_exposes_identity_and_encodes_a_dataframe(trained):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    assert model.data_identity["atlas_id"] == ATLAS and len(model.parcel_names) == scans[0][0].shape[1]
    assert model.networks == ["Vis", "SomMot", "DorsAttn", "Default"] and model.tr == 2.0
    frame = pd.DataFrame(scans[0][0], columns=model.parcel_names)
    features = model.encode(frame, tr=2.0)
    assert features.shape == (model.feature_dim,) and features.dtype == np.float32 and np.isfinite(features).all()


def test_shuffled_columns_give_the_same_embedding(trained):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    frame = pd.DataFrame(scans[1][0], columns=model.parcel_names)
    shuffled = frame[list(np.random.default_rng(0).permutation(frame.columns))]
    np.testing.assert_array_equal(model.encode(frame, 2.0), model.encode(shuffled, 2.0))
    named = model.encode(shuffled.to_numpy(), 2.0, parcel_names=list(shuffled.columns))
    np.testing.assert_array_equal(model.encode(frame, 2.0), named)
    # the same shuffled array trusted in the model's order is a different scan: the check matters
    assert not np.allclose(model.encode(shuffled.to_numpy(), 2.0, assume_order=True), named)


def test_array_without_names_needs_assume_order(trained):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    with pytest.raises(SemantoksError, match="assume_order=True"):
        model.encode(scans[0][0], 2.0)
    with pytest.raises(SemantoksError, match="has 24 parcels"):
        model.encode(scans[0][0][:, :20], 2.0, assume_order=True)
    assert model.encode(scans[0][0], 2.0, assume_order=True).shape == (model.feature_dim,)


def test_missing_parcels_are_invalid_and_unknown_ones_refused(trained, caplog):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    frame = pd.DataFrame(scans[2][0], columns=model.parcel_names)
    partial = frame.drop(columns=model.parcel_names[:3])
    with caplog.at_level("WARNING"):
        features = model.encode(partial, 2.0)
    assert "3 of the model's 24 parcels are missing" in caplog.text and np.isfinite(features).all()
    with pytest.raises(SemantoksError, match="not parcels of the model's atlas.*'Cerebellum_1'"):
        model.encode(frame.rename(columns={model.parcel_names[0]: "Cerebellum_1"}), 2.0)


def test_tr_and_short_scans_are_refused_in_one_line(trained):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    frame = pd.DataFrame(scans[0][0], columns=model.parcel_names)
    with pytest.raises(SemantoksError, match="positive number"):
        model.encode(frame, tr=None)
    with pytest.raises(SemantoksError, match="shorter than one 20-TR patch"):
        model.encode(frame.iloc[:15], 2.0)


def test_tokens_are_per_crop_network_and_patch(trained):
    _, checkpoint, scans = trained
    model = semantoks.load_model(checkpoint)
    frame = pd.DataFrame(scans[0][0], columns=model.parcel_names)
    tokens, valid = model.encode_tokens(frame, 2.0, n_crops=3)
    assert tokens.shape == (3, 4, 5, model.encoder.dim) and valid.shape == (3, 4, 5) and valid.all()


def _readme_block(language, contains):
    text = (semantoks_repo() / "README.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    return next(block for block in blocks if contains in block)


def semantoks_repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def _user_folder(tmp_path, trained):
    """A folder laid out like a finished run: the README's example paths exist there."""
    root, checkpoint, scans = trained
    model_dir = tmp_path / "results/models/tiny_Schaefer100x7/seed-0"
    model_dir.mkdir(parents=True)
    shutil.copy(checkpoint, model_dir / "checkpoint.pt")
    shutil.copytree(root / "dataset", tmp_path / "results/dataset")
    names = semantoks.load_model(checkpoint).parcel_names
    frame = pd.DataFrame(scans[3][0], columns=names)
    frame[list(reversed(names))].to_csv(tmp_path / "my_scan_timeseries.tsv", sep="\t", index=False)
    return frame


def test_readme_python_example_runs_as_written(trained, tmp_path, monkeypatch):
    frame = _user_folder(tmp_path, trained)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(_readme_block("python", "semantoks.load_model"), namespace)
    reference = semantoks.load_model(trained[1]).encode(frame, 2.0)
    # the TSV holds the values as decimal text: equal up to float32 rounding
    np.testing.assert_allclose(namespace["features"], reference, rtol=1e-4, atol=1e-5)
    assert namespace["tokens"].shape[1:3] == (4, 5)


def test_readme_embed_commands_run_as_written(trained, tmp_path):
    _user_folder(tmp_path, trained)
    commands = [line for line in _readme_block("bash", "semantoks embed").splitlines()
                if line.startswith("semantoks ")]
    assert any("--dataset" in c for c in commands) and any("--timeseries" in c for c in commands)
    for command in commands:
        command = command.split("  #")[0]
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True,
                              env={**__import__("os").environ, "PATH": f"{sys.prefix}/bin:" + __import__("os").environ["PATH"]})
        assert done.returncode == 0, done.stderr
    dataset, _, _ = read_feature_table(tmp_path / "features.parquet")
    single, _, record = read_feature_table(tmp_path / "my_features.parquet")
    assert len(dataset) == 8 and len(single) == 1 and single["scan_id"][0] == "my_scan_timeseries"
    assert record["atlas_id"] == ATLAS


def test_embed_cli_refuses_a_file_without_tr_in_one_line(trained, tmp_path):
    _user_folder(tmp_path, trained)
    done = subprocess.run([sys.executable, "-m", "semantoks", "embed", "--model",
                           "results/models/tiny_Schaefer100x7/seed-0/checkpoint.pt", "--timeseries",
                           "my_scan_timeseries.tsv", "--out", "x.parquet"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "pass --tr SECONDS" in done.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_a_transposed_tsv_is_one_line_not_a_traceback(trained, tmp_path):
    frame = _user_folder(tmp_path, trained)
    frame.T.to_csv(tmp_path / "transposed.tsv", sep="\t", index_label="parcel")
    done = subprocess.run([sys.executable, "-m", "semantoks", "embed", "--model",
                           "results/models/tiny_Schaefer100x7/seed-0/checkpoint.pt", "--timeseries", "transposed.tsv",
                           "--tr", "2", "--out", "x.parquet"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert "transposed.tsv: column 'parcel' holds text" in done.stderr and "(is it transposed?)" in done.stderr
    assert not (tmp_path / "x.parquet").exists()
