"""Distribution conventions: declared dependencies, pinned environments, licence, and hints that name real commands."""

import ast
import re
import sys
import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

# import name -> distribution name, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "torch": "torch"}
# conda-forge package name -> distribution name, where they differ
CONDA_NAMES = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]


def third_party_imports(paths):
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"semantoks", "snakemake"}


def test_every_imported_library_is_declared_in_pyproject(repo_root):
    project = pyproject(repo_root)
    declared = {Requirement(r).name.lower() for r in project["dependencies"]}
    declared |= {Requirement(r).name.lower() for extra in project["optional-dependencies"].values() for r in extra}
    sources = [*(repo_root / "src").rglob("*.py"), *(repo_root / "workflow" / "scripts").glob("*.py")]
    missing = {DISTRIBUTIONS.get(name, name) for name in third_party_imports(sources)} - declared
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_requires_python_is_what_the_installed_snakemake_needs(repo_root):
    ours = SpecifierSet(pyproject(repo_root)["requires-python"])
    snakemake_needs = SpecifierSet(metadata("snakemake")["Requires-Python"])
    assert int(version("snakemake").split(".")[0]) >= 9
    assert str(ours) == str(snakemake_needs)


def test_conda_environment_pins_equal_the_tested_versions(repo_root):
    for env_file in sorted((repo_root / "envs").glob("*.yaml")):
        for entry in yaml.safe_load(env_file.read_text())["dependencies"]:
            pins = entry["pip"] if isinstance(entry, dict) else [entry]
            for pin in pins:
                name, _, pinned = re.split(r"\s*(=+)\s*", pin) if "=" in pin else (pin, "", "")
                if name in ("python", "pip"):
                    continue
                tested = version(CONDA_NAMES.get(name, name)).split("+")[0]
                assert pinned == tested, f"{env_file.name}: {name} pinned {pinned or 'not at all'}, tested {tested}"


def test_licence_file_is_the_licence_pyproject_declares(repo_root):
    assert pyproject(repo_root)["license"] == "MIT"
    assert (repo_root / "LICENSE").read_text().startswith("MIT License")


def test_workflow_catalog_file_describes_usage(repo_root):
    catalog = yaml.safe_load((repo_root / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["mandatory-flags"]["flags"] and catalog["usage"]["software-stack-deployment"]["conda"]


def test_error_hints_name_commands_and_rules_that_exist(repo_root):
    from semantoks.cli import build_parser

    subcommands = {name for action in build_parser()._actions if isinstance(action.choices, dict) for name in action.choices}
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", "\n".join(
        path.read_text() for path in (repo_root / "workflow" / "rules").glob("*.smk")), flags=re.M))
    hints = [(path, match) for path in (repo_root / "src").rglob("*.py")
             for match in re.findall(r"`((?:semantoks|snakemake) [^`]+)`", path.read_text())]
    assert hints
    for path, hint in hints:
        words = hint.split()
        if words[0] == "semantoks" and not words[1].startswith("<"):
            assert words[1] in subcommands, f"{path.name}: hint `{hint}` names no semantoks command"
        for flag, value in zip(words, words[1:]):
            if flag in ("--forcerun", "--until", "--allowed-rules"):
                assert value in rules, f"{path.name}: hint `{hint}` names no rule {value}"
