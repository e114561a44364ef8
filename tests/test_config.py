import subprocess
import sys

import pytest
import yaml

from semantoks.config import config_hash, load_config, validate_config
from semantoks.errors import SemantoksError

MINIMAL = {"cohorts": {"demo": {"source": "simulated"}}}


def test_repository_config_is_valid_and_fills_defaults(repo_root):
    config = load_config(repo_root / "config.yaml")
    assert config["cohorts"]["demo"]["source"] == "simulated"
    assert config["pretrain"]["window"] == 100 and config["pretrain"]["patch_len"] == 20
    assert config["cohorts"]["demo"]["phenotypes"]["participant_column"] == "participant_id"


def test_defaults_fill_nested_cohort_entries():
    config = validate_config(MINIMAL)
    assert config["cohorts"]["demo"]["simulate"] == {"n_subjects": 48, "seed": 0, "resolution_mm": 6}
    assert config["atlas"]["n_parcels"] == 100
    assert config["probe"]["feature_sets"] == ["model", "random_init", "fc", "network_fc"]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"atlas": {"n_parcel": 200}}, "'atlas.n_parcel' is not a known setting; did you mean 'n_parcels'?"),
        ({"atlas": {"n_parcels": "200"}}, "'atlas.n_parcels' must be of type integer"),
        ({"atlas": {"n_parcels": 150}}, "'atlas.n_parcels' is 150 but must be one of"),
        ({"denoise": {"strategy": "aroma"}}, "'denoise.strategy' is 'aroma' but must be one of"),
        ({"pretrian": {}}, "'pretrian' is not a known setting; did you mean 'pretrain'?"),
        ({"cohorts": {"demo": {"source": "simulated", "phenotypes": {"columns": {"age": "numeric"}}}}},
         "'cohorts.demo.phenotypes.columns.age' is 'numeric'"),
    ],
)
def test_schema_errors_name_the_key(change, expected):
    config = {**MINIMAL, **change}
    with pytest.raises(SemantoksError) as error:
        validate_config(config, source="my.yaml")
    message = str(error.value)
    assert message.startswith("my.yaml: ") and expected in message
    assert "\n" not in message


def test_config_hash_tracks_content():
    first = validate_config(MINIMAL)
    second = validate_config({**MINIMAL, "atlas": {"n_parcels": 200}})
    assert config_hash(first) == config_hash(validate_config(MINIMAL))
    assert config_hash(first) != config_hash(second)


def test_cli_reports_bad_config_in_one_line_without_traceback(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "atlas": {"n_networks": 12}}))
    result = subprocess.run([sys.executable, "-m", "semantoks", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"semantoks: error: {path}: 'atlas.n_networks' is 12 but must be one of: 7, 17."
    ]


def test_cli_reports_invalid_yaml_with_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cohorts:\n  demo: {source: simulated\n")
    result = subprocess.run([sys.executable, "-m", "semantoks", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path} line" in result.stderr and "not valid YAML" in result.stderr
