"""`semantoks export`: safetensors + config.json + model card, loaded back bit-identically by load_model."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from test_pretrain import ATLAS, trained_toy_model

import semantoks
from semantoks.embed import embed_dataset
from semantoks.errors import SemantoksError
from semantoks.model.export import export_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    checkpoint, scans = trained_toy_model(root, seed=6)
    summary = root / "summary.tsv"
    pd.DataFrame([{"feature_set": "model", "phenotype": "age", "metric": "r2", "mean": 0.21, "sd": 0.05,
                   "n_subjects": 8, "n_repeats": 2, "p_value": 0.03, "shuffled_mean": -0.1, "status": "ok",
                   "reason": ""}]).to_csv(summary, sep="\t", index=False)
    folder = export_model(checkpoint, root / "exported", probes_summary=summary,
                          training_log=checkpoint.parent / "log.csv")
    return root, checkpoint, folder, scans


def test_the_card_carries_the_reports_verdict_table_when_paired_tsv_is_beside_the_summary(exported, tmp_path):
    from semantoks.model.export import model_card

    root, _, folder, _ = exported
    config = json.loads((folder / "config.json").read_text())
    base = {"phenotype": "age", "metric": "r2", "sd": 0.05, "n_subjects": 8, "n_repeats": 2, "p_value": 0.03,
            "shuffled_mean": -0.1, "status": "ok", "reason": ""}
    pd.DataFrame([{**base, "feature_set": "model", "mean": 0.21, "n_seeds": 3, "seed_min": 0.15, "seed_max": 0.26},
                  {**base, "feature_set": "model@0", "mean": 0.15},
                  {**base, "feature_set": "fc", "mean": 0.30},
                  {**base, "feature_set": "random_init", "mean": 0.02, "n_seeds": 3, "seed_min": -0.1, "seed_max": 0.1},
                  ]).to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    test = {"phenotype": "age", "metric": "r2", "a": "model", "seed": None, "mean_a": 0.21}
    pd.DataFrame([{**test, "b": "fc", "mean_b": 0.30, "mean_diff": -0.09, "p_corrected": 0.01, "p_holm": 0.02},
                  {**test, "b": "random_init", "mean_b": 0.02, "mean_diff": 0.19, "p_corrected": 0.04, "p_holm": 0.04}
                  ]).to_csv(tmp_path / "paired.tsv", sep="\t", index=False)
    card = model_card(config, tmp_path / "summary.tsv")
    lead = card.split("## What pretraining bought")[1].split("## Probe results")[0]
    assert "| age | r2 | 0.210 [0.150, 0.260] | fc 0.300 | -0.090 | 0.01 | 0.02 | worse |" in lead
    assert "beats baselines after Holm's correction (p < 0.05) on age: 1 of 2 (random_init)" in lead
    assert "| model@0 |" not in card
    # without paired.tsv the card has no verdict table, as before
    (tmp_path / "paired.tsv").unlink()
    assert "What pretraining bought" not in model_card(config, tmp_path / "summary.tsv")


def test_export_writes_weights_config_and_card(exported):
    _, checkpoint, folder, _ = exported
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["data_identity"]["atlas_id"] == ATLAS and config["step"] == 2
    assert config["data_identity"]["preprocessing"]["patch_len"] == 20
    card = (folder / "README.md").read_text()
    for expected in (ATLAS, "optimiser steps: 2", "| age | r2 | model | 0.210 |", "Intended use", "band-pass"):
        assert expected in card


def test_exported_folder_round_trips_bit_identically(exported):
    root, checkpoint, folder, scans = exported
    from_checkpoint, from_folder = semantoks.load_model(checkpoint), semantoks.load_model(folder)
    for key, value in from_checkpoint.encoder.state_dict().items():
        assert torch.equal(value, from_folder.encoder.state_dict()[key]), key
    frame = pd.DataFrame(scans[0][0], columns=from_checkpoint.parcel_names)
    np.testing.assert_array_equal(from_checkpoint.encode(frame, 2.0), from_folder.encode(frame, 2.0))
    a = embed_dataset(checkpoint, root / "dataset", ATLAS, ["A"], root / "a.parquet")
    b = embed_dataset(folder, root / "dataset", ATLAS, ["A"], root / "b.parquet")
    np.testing.assert_array_equal(np.stack(a["embedding"]), np.stack(b["embedding"]))


def test_a_mismatched_config_is_refused_in_one_line(exported, tmp_path):
    _, _, folder, _ = exported
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    config = json.loads((broken / "config.json").read_text())
    config["pretrain_config"]["model"]["dim"] = 16
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(SemantoksError, match="config.json does not describe model.safetensors"):
        semantoks.load_model(broken)
    (broken / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SemantoksError, match="not a semantoks export"):
        semantoks.load_model(broken)
    (broken / "config.json").unlink()
    with pytest.raises(SemantoksError, match="no config.json"):
        semantoks.load_model(broken)


def test_tampered_weights_are_refused(exported, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    _, _, folder, _ = exported
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    weights = load_file(str(tampered / "model.safetensors"))
    key = sorted(weights)[0]
    weights[key] = weights[key] + 1
    save_file(weights, str(tampered / "model.safetensors"))
    with pytest.raises(SemantoksError, match="weights differ"):
        semantoks.load_model(tampered)


def test_export_cli_writes_the_folder_and_refuses_a_missing_checkpoint(exported, tmp_path):
    _, checkpoint, _, _ = exported
    done = subprocess.run([sys.executable, "-m", "semantoks", "export", "--model", str(checkpoint), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/model.safetensors").is_file()
    missing = subprocess.run([sys.executable, "-m", "semantoks", "export", "--model", str(tmp_path / "nope.pt"),
                              "--out", str(tmp_path / "out2")], capture_output=True, text=True)
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "out2").exists()


def test_readme_export_command_runs_as_written(exported, tmp_path):
    import re
    import shutil

    root, checkpoint, _, _ = exported
    model_dir = tmp_path / "results/models/tiny_Schaefer100x7/seed-0"
    model_dir.mkdir(parents=True)
    shutil.copy(checkpoint, model_dir / "checkpoint.pt")
    shutil.copy(checkpoint.parent / "log.csv", model_dir / "log.csv")
    (tmp_path / "results/probes").mkdir(parents=True)
    shutil.copy(root / "summary.tsv", tmp_path / "results/probes/summary.tsv")
    readme = (__import__("pathlib").Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "semantoks export" in b)
    command = next(line for line in block.splitlines() if line.startswith("semantoks export")).split("  #")[0]
    done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "| age | r2 | model |" in (tmp_path / "exported/README.md").read_text()


def test_every_file_of_the_folder_is_in_the_integrity_digest(exported, tmp_path):
    # only the weights were hashed: swapped parcel names or another model_tr loaded and changed every embedding
    import shutil

    _, _, folder, _ = exported
    edits = {
        "parcels": lambda c: c["data_identity"]["parcel_names"].insert(0, c["data_identity"]["parcel_names"].pop(1)),
        "model_tr": lambda c: c["data_identity"]["preprocessing"].update(model_tr=1.0),
        "zscore": lambda c: c["data_identity"]["preprocessing"].update(zscore=False),
    }
    for name, edit in edits.items():
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        config = json.loads((copy / "config.json").read_text())
        edit(config)
        (copy / "config.json").write_text(json.dumps(config, indent=2))
        with pytest.raises(SemantoksError, match=r"config.json: differs from the file exported with model.safetensors"):
            semantoks.load_model(copy)
    card = tmp_path / "card"
    shutil.copytree(folder, card)
    (card / "README.md").write_text((card / "README.md").read_text().replace("optimiser steps: 2", "optimiser steps: 9"))
    with pytest.raises(SemantoksError, match=r"README.md: differs from the file exported"):
        semantoks.load_model(card)
    # reformatting config.json without changing a value is not an edit
    same = tmp_path / "same"
    shutil.copytree(folder, same)
    (same / "config.json").write_text(json.dumps(json.loads((same / "config.json").read_text())))
    assert semantoks.load_model(same).parcel_names == semantoks.load_model(folder).parcel_names


def test_a_model_stopped_early_says_so_in_its_card(exported, tmp_path):
    from semantoks.model.checkpoint import load_checkpoint, save_checkpoint

    _, checkpoint, _, _ = exported
    state = load_checkpoint(checkpoint)
    state["stopped_early"] = "the max_minutes budget of 225 minutes was spent"
    save_checkpoint(tmp_path / "stopped.pt", state)
    folder = export_model(tmp_path / "stopped.pt", tmp_path / "exported")
    steps = state["config"]["steps"]
    assert (f"optimiser steps: 2 of {steps} planned: training stopped early (the max_minutes budget of 225 minutes "
            "was spent)") in (folder / "README.md").read_text()
    assert json.loads((folder / "config.json").read_text())["stopped_early"].startswith("the max_minutes")
