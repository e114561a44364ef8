"""The config example in docs/language.md validates against the schema as a user would paste it."""

import re

import yaml

from semantoks.config import validate_config


def test_docs_language_config_example_validates(repo_root):
    text = (repo_root / "docs" / "language.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        # label_transfer must name a binary/categorical phenotype declared in a probed cohort
        cohort = {"source": "simulated", "phenotypes": {"columns": {"diagnosis": "binary"}}}
        config = validate_config({**yaml.safe_load(block), "cohorts": {"demo": cohort}})
        assert config["language"]["enabled"] is True and config["language"]["few_shot_ks"] == [1, 2, 4, 8, 16]
