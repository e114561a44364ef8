"""Load and validate the workflow configuration against its JSON-Schema, filling defaults.

The Snakefile and `semantoks check-config` read config files with the same strict reader
(`read_config_file`) and validate with the same `validate_config`, so the check is what runs.
"""

import copy
import difflib
from pathlib import Path

import jsonschema
import yaml

from semantoks.errors import SemantoksError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
# the demo configuration, relative to the repository (the Snakefile's folder); read only when no config is given
DEMO_CONFIG = Path("config") / "config.yaml"


def load_schema(name="config"):
    with open(SCHEMA_DIR / f"{name}.schema.yaml") as handle:
        return yaml.safe_load(handle)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_document(self, node):
        _refuse_duplicate_keys(node, ())
        return super().construct_document(node)


def _refuse_duplicate_keys(node, path):
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*path, str(i)))
    if not isinstance(node, yaml.MappingNode):
        return
    first_line = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in first_line:
            name = ".".join((*path, key))
            raise DuplicateKeyError(
                None, None, f"'{name}' is given twice (lines {first_line[key]} and {line}); keep one", key_node.start_mark)
        first_line[key] = line
        _refuse_duplicate_keys(value_node, (*path, key))


def read_config_file(path):
    """The mapping in one YAML (or JSON) config file; one clear error for a missing file, bad syntax or duplicate keys."""
    path = Path(path)
    if not path.is_file():
        raise SemantoksError(f"{path}: config file not found; pass an existing config file (e.g. {DEMO_CONFIG}).")
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.load(handle, Loader=UniqueKeyLoader) or {}
    except DuplicateKeyError as error:
        raise SemantoksError(f"{path}: {error.problem}.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SemantoksError(f"{path}{where}: not valid YAML ({error.problem if mark else error}); fix the syntax.") from None
    if not isinstance(config, dict):
        raise SemantoksError(f"{path}: holds a {type(config).__name__}, not a mapping of settings; start with 'cohorts:'.")
    return config


def load_config(*paths):
    """What `snakemake --configfile A B` runs: the files merged in order (as Snakemake merges them), validated."""
    from snakemake.utils import update_config

    config = {}
    for path in paths:
        update_config(config, read_config_file(path))
    return validate_config(config, source=", ".join(map(str, paths)))


def workflow_config(config, config_files):
    """The Snakefile's config validated: its files re-read strictly (Snakemake's reader keeps duplicate keys)."""
    for path in config_files:
        read_config_file(path)
    return validate_config(config, source=", ".join(map(str, config_files)) or "--config")


def validate_config(config, source="config.yaml"):
    """Return a validated copy of `config` with schema defaults filled in; one clear error otherwise."""
    from semantoks.config_checks import check_config

    schema = load_schema("config")
    config = copy.deepcopy(config)
    _fill_paper_space_band(config)
    _fill_defaults(config, schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise SemantoksError(f"{source}: {_describe(errors[0], schema)}")
    check_config(config, source)
    return config


# the reference's inputs were band-passed 0.01-0.1 Hz (UK Biobank preprocessing): its space gets the same band
PAPER_SPACE_BAND = [0.01, 0.1]


def _fill_paper_space_band(config):
    """On the paper's 457-ROI space a pretrain section without band_pass band-passes as the reference did."""
    atlas, pretrain = config.get("atlas"), config.get("pretrain")
    if isinstance(atlas, dict) and atlas.get("family") == "brainsemantoks457" and isinstance(pretrain, (dict, type(None))):
        config["pretrain"] = {"band_pass": list(PAPER_SPACE_BAND), **(pretrain or {})}


def _resolve(schema, root):
    ref = schema.get("$ref", "")
    if ref.startswith("#/"):
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _fill_defaults(instance, schema, root):
    schema = _resolve(schema, root)
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        for key, value in instance.items():
            if key not in properties:
                _fill_defaults(value, additional, root)


def _describe(error, schema):
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = extra[0] if extra else "?"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(allowed)}"
        prefix = f"{where}." if error.absolute_path else ""
        return f"'{prefix}{key}' is not a known setting; {hint}"
    if error.validator == "type":
        return f"'{where}' must be of type {error.validator_value}, got {error.instance!r}; fix the value."
    if error.validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return f"'{where}' is {error.instance!r} but must be one of: {choices}."
    if error.validator == "required":
        return f"'{where}' is missing a required setting ({error.message}); add it."
    return f"'{where}': {error.message}; fix the value."

