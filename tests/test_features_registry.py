"""The feature-set registry is the one list: schema enum, docs table, rule wildcards and paired baselines follow it."""

import re

import yaml

from semantoks.features.registry import (
    DEFAULT_FEATURE_SETS,
    FEATURE_SETS,
    baseline_names,
    docs_table,
    rule_feature_sets,
    wildcard_constraint,
)
from semantoks.probes.paired import BASELINES


def _feature_sets_schema(repo_root):
    schema = yaml.safe_load((repo_root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema["properties"]["probe"]["properties"]["feature_sets"]


def test_schema_enum_and_default_are_the_registry(repo_root):
    schema = _feature_sets_schema(repo_root)
    assert schema["items"]["enum"] == list(FEATURE_SETS)
    assert schema["default"] == list(DEFAULT_FEATURE_SETS)
    config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    assert config["probe"]["feature_sets"] == list(DEFAULT_FEATURE_SETS)


def test_docs_table_is_the_registry(repo_root):
    assert docs_table() in (repo_root / "docs" / "probes.md").read_text()


def test_rules_wildcards_and_baselines_come_from_the_registry(repo_root):
    rules = (repo_root / "workflow" / "rules" / "features.smk").read_text()
    for rule in ("embed", "connectivity_features", "dynamics_features"):
        assert f'wildcard_constraint("{rule}")' in rules
        assert re.fullmatch(wildcard_constraint(rule), rule_feature_sets(rule)[0])
    assert rule_feature_sets("connectivity_features") == ["fc", "network_fc", "tangent_fc"]
    assert BASELINES == baseline_names() and {"dynamics", "tangent_fc", "fc+dynamics"} <= set(BASELINES)
    # every set is written by a rule or fused from sets that are; the model-derived ones are made per seed
    for entry in FEATURE_SETS.values():
        assert entry.rule or all(FEATURE_SETS[part].rule for part in entry.parts)
        assert not entry.per_seed or entry.needs_model
    assert all("/" not in name and " " not in name for name in FEATURE_SETS)


def test_the_documented_table_command_prints_the_table(repo_root):
    import subprocess
    import sys

    text = (repo_root / "docs" / "probes.md").read_text()
    command = re.search(r'`(python -c "from semantoks.features.registry import docs_table; [^`]*)`', text).group(1)
    # as typed, with this interpreter for `python`
    done = subprocess.run(command.replace("python", sys.executable, 1), shell=True, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == docs_table()
