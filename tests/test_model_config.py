"""The one typed pretraining config: presets as diffs, flat and nested keys, round trip, user errors."""

import dataclasses

import pytest

from semantoks.errors import SemantoksError
from semantoks.model.config import PRESETS, EncoderConfig, PretrainConfig, known_keys, resolve
from semantoks.model.train import resolve_pretrain_config


def test_presets_are_small_diffs_of_the_tiny_defaults():
    tiny, small = resolve({"preset": "tiny"}), resolve({"preset": "small"})
    assert tiny.model == EncoderConfig()
    differing = {f.name for f in dataclasses.fields(EncoderConfig)
                 if getattr(tiny.model, f.name) != getattr(small.model, f.name)}
    assert differing == set(PRESETS["small"]) == {"dim", "depth", "heads", "drop_path"}
    # the training diffs (the CPU sweeps' lr, clip and EMA start) are the only other differences
    assert (tiny.schedule.base_lr, tiny.grad_clip, tiny.schedule.momentum) == (8e-3, 3.0, 0.9)
    assert (small.schedule.base_lr, small.grad_clip, small.schedule.momentum) == (2.4e-3, 3.0, 0.9)
    base = resolve({"preset": "base"})
    assert (base.schedule.base_lr, base.grad_clip, base.schedule.momentum) == (7e-4, 1.0, 0.99)
    # every preset keeps DINOv2's 2048-wide projection head (a 256-wide one lost a planted effect on the demo)
    assert (tiny.loss.head_hidden, small.loss.head_hidden) == (2048, 2048)
    aligned = dataclasses.replace(small, model=tiny.model, preset="tiny", grad_clip=tiny.grad_clip,
                                  schedule=tiny.schedule, loss=tiny.loss)
    assert aligned == tiny


def test_a_users_own_training_values_win_over_the_presets_diff():
    config = resolve({"preset": "tiny", "extra": {"base_lr": 1e-4, "grad_clip": 1.0}})
    assert (config.schedule.base_lr, config.grad_clip, config.schedule.momentum) == (1e-4, 1.0, 0.9)
    narrow = resolve({"preset": "tiny", "loss": {"out_dim": 64}, "extra": {"loss": {"head_hidden": 256}}})
    assert (narrow.loss.head_hidden, narrow.loss.out_dim) == (256, 64)


def test_section_keys_land_in_their_groups_and_extra_is_merged():
    config = resolve_pretrain_config({
        "enabled": True, "cohorts": None, "gpus": 0, "runtime": 60, "preset": "small", "steps": 50,
        "band_pass": [0.01, 0.1], "model": {"depth": 3}, "loss": {"out_dim": 16},
        "extra": {"base_lr": 1e-3, "ttr": "off", "augment": {"noise_std": 0.0}},
    })
    assert config.steps == 50 and config.model.depth == 3 and config.model.dim == 384
    assert config.data.band_pass == (0.01, 0.1) and config.schedule.base_lr == 1e-3
    assert config.schedule.ttr == "off" and config.loss.out_dim == 16 and config.augment.noise_std == 0.0


def test_defaults_leave_band_passing_to_denoising():
    assert resolve({}).data.band_pass is None


def test_saved_config_rebuilds_the_same_config():
    config = resolve({"preset": "base", "band_pass": [0.01, 0.08], "extra": {"augment": {"scale_range": [0.9, 1.1]}}})
    saved = config.to_dict()
    assert saved["data"]["band_pass"] == [0.01, 0.08] and saved["model"]["long_kernels"] == [5, 9, 15]
    assert PretrainConfig.from_dict(saved) == config


@pytest.mark.parametrize("section, message", [
    ({"extra": {"bse_lr": 1.0}}, "unknown pretrain setting(s) bse_lr"),
    ({"model": {"dimm": 8}}, "unknown pretrain model setting(s) dimm"),
    ({"loss": {"outdim": 8}}, "unknown pretrain loss setting(s) outdim"),
    ({"augment": {"noise": 0.1}}, "unknown pretrain augment setting(s) noise"),
    ({"extra": {"schedule": {}}}, "unknown pretrain setting(s) schedule"),
    ({"preset": "huge"}, "unknown model preset 'huge'"),
    ({"model": {"dim": 30, "heads": 4}}, "dim 30 is not divisible by heads 4"),
    ({"window": 90}, "window 90 is not a multiple of patch_len 20"),
    ({"extra": {"mask_mode": "often"}}, "mask_mode 'often'"),
    ({"ttr": "sometimes"}, "ttr 'sometimes'"),
    ({"resume": "maybe"}, "resume 'maybe'"),
    ({"eval_every": 10}, "need held-out subjects and a cadence"),
    ({"eval_subjects": 8, "eval_phenotypes": ["age"]}, "need held-out subjects and a cadence"),
])
def test_bad_settings_are_one_line_user_errors(section, message):
    with pytest.raises(SemantoksError) as error:
        resolve_pretrain_config(section)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_schema_key_is_known_to_the_trainer():
    from semantoks.config import load_schema

    schema = load_schema("config")
    assert set(schema["properties"]["pretrain"]["properties"]) <= known_keys()


def test_pretrain_examples_in_docs_are_valid_configs(repo_root):
    import re

    import yaml

    from semantoks.config import validate_config

    text = (repo_root / "docs" / "model.md").read_text()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    assert len(blocks) == 3
    for block in blocks:
        config = validate_config({**block, "cohorts": {"demo": {"source": "simulated"}}})
        resolved = resolve_pretrain_config(config["pretrain"]).to_dict()
        flat = {**resolved, **resolved["schedule"], **resolved["data"]}
        for key, value in block["pretrain"].items():
            if isinstance(value, dict):
                assert {k: resolved[key][k] for k in value} == value
            else:
                assert (config["pretrain"] if key == "runtime" else flat)[key] == value


def test_a_checkpoint_config_of_another_version_is_a_user_error(tmp_path):
    import torch

    from semantoks.model.checkpoint import load_encoder

    path = tmp_path / "checkpoint.pt"
    old_style = {"preset": "tiny", "model": {"preset": "tiny", "dim": 64, "window": 100}, "band_pass": [0.01, 0.1]}
    torch.save({"student": {}, "teacher": {}, "step": 1, "config": old_style, "data_identity": {
        "networks": ["A"], "parcel_networks": ["A"], "preprocessing": {"window": 100, "patch_len": 20}}}, path)
    with pytest.raises(SemantoksError, match=f"{path}: the saved pretraining config does not match this version"):
        load_encoder(path)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_schema_defaults_resolve_to_the_dataclass_defaults(repo_root, preset):
    # the schema fills defaults into config.yaml's pretrain section; they must not differ from the dataclass's own
    from semantoks.config import load_config, validate_config

    demo = load_config(repo_root / "config" / "config.yaml")
    filled = validate_config({"cohorts": demo["cohorts"], "pretrain": {"preset": preset}})["pretrain"]
    assert len(filled) > 10
    assert resolve(filled) == resolve({"preset": preset})


def test_the_narrow_head_setting_in_docs_validates_and_narrows_the_head(repo_root):
    import re

    import yaml

    from semantoks.config import validate_config

    text = (repo_root / "docs" / "model.md").read_text()
    inline = re.search(r"`(pretrain: \{extra: \{loss: \{head_hidden: 256\}\}\})`", text).group(1)
    config = validate_config({**yaml.safe_load(inline), "cohorts": {"demo": {"source": "simulated"}}})
    assert resolve_pretrain_config(config["pretrain"]).loss.head_hidden == 256


def test_every_trainer_setting_has_its_own_schema_key():
    from semantoks.config import load_schema
    from semantoks.model.config import GROUPS

    properties = load_schema("config")["properties"]["pretrain"]["properties"]
    assert known_keys() - {"model", "loss", "augment"} <= set(properties)
    for group in ("model", "loss", "augment"):
        assert {f.name for f in dataclasses.fields(GROUPS[group])} <= set(properties[group]["properties"])


def test_recipe_settings_default_to_the_reference_and_keep_the_first_recipe_as_flags():
    config = resolve({})
    assert (config.model.long_branch, config.model.tokenizer_norm) == ("structured", "per_network")
    assert (config.loss.expansion, config.loss.ttr_expansion, config.loss.masker) == ("reference", True, "exclusive")
    assert (config.schedule.warmup_fraction, config.schedule.mtm_weight) == (0.03, 0.5)
    first = resolve({"warmup_fraction": 0.1, "mtm_weight": 1.0,
                     "model": {"long_branch": "depthwise", "tokenizer_norm": "shared"},
                     "loss": {"expansion": "student", "ttr_expansion": False, "masker": "mixed"}})
    assert first.loss.masker == "mixed" and first.model.long_branch == "depthwise"
    with pytest.raises(SemantoksError, match="pretrain loss masker 'random'"):
        resolve({"loss": {"masker": "random"}})


def test_a_checkpoint_config_saved_before_the_recipe_settings_rebuilds_the_first_recipe():
    saved = resolve({}).to_dict()
    for group, keys in (("model", ("long_branch", "tokenizer_norm")), ("loss", ("expansion", "ttr_expansion", "masker")),
                        ("schedule", ("warmup_fraction", "mtm_weight"))):
        for key in keys:
            saved[group].pop(key)
    old = PretrainConfig.from_dict(saved)
    assert (old.model.long_branch, old.model.tokenizer_norm, old.loss.expansion, old.loss.masker) == (
        "depthwise", "shared", "student", "mixed")
    assert PretrainConfig.from_dict(resolve({}).to_dict()) == resolve({})


def test_execution_keys_leave_the_rerun_params_flat_or_under_extra():
    from semantoks.model.config import execution_settings, rerun_settings

    section = {"steps": 10, "log_every": 5, "runtime": 60, "extra": {"num_workers": 2, "base_lr": 1e-3}}
    assert rerun_settings(section) == {"steps": 10, "extra": {"base_lr": 1e-3}}
    assert execution_settings(section) == {"log_every": 5, "num_workers": 2}
    assert resolve_pretrain_config({**rerun_settings(section), **execution_settings(section)}) == \
        resolve_pretrain_config({k: v for k, v in section.items() if k != "runtime"})
