"""Checks across config keys that JSON-Schema cannot express, run at parse time: one line naming the key."""

import difflib
import re
from pathlib import Path

from semantoks.errors import SemantoksError

# probe names become file names and the {phenotype} wildcard (constrained to this in workflow/rules/common.smk)
PHENOTYPE_NAME_CHARS = "[A-Za-z0-9_]+"
PHENOTYPE_NAME = re.compile(f"^{PHENOTYPE_NAME_CHARS}$")
PINNED_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# cohort keys whose folder is the cohort's data; one folder under two cohorts puts a subject on both sides of a split
DATA_PATH_KEYS = ("derivatives", "bids", "roi.files")


def check_config(config, source):
    """Raise SemantoksError for the first cross-key problem of a schema-valid `config` with defaults filled."""
    for check in (_denoise_overrides, _pretrain_window, _pretrain_settings, _cohort_lists, _probe_phenotypes,
                  _probe_split, _probe_confounds, _pretrain_hold_out, _phenotype_classes, _label_transfer_phenotypes,
                  _fmriprep_version, _shared_data_paths, _text_encoder_installed):
        problem = check(config)
        if problem:
            raise SemantoksError(f"{source}: {problem}")


def _text_encoder_installed(config):
    # a missing encoder package failed only in the text_embed job, after pretraining
    language = config.get("language") or {}
    if not language.get("enabled"):
        return None
    from semantoks.language.text_encoders import missing_text_encoder

    problem = missing_text_encoder(language.get("text_encoder"))
    return f"'language.text_encoder' is {language['text_encoder']!r} but {problem}." if problem else None


def _hint(key, known):
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"


def _denoise_overrides(config):
    from semantoks.confounds import PRESETS, resolve_strategy

    strategy, overrides = config["denoise"]["strategy"], config["denoise"]["overrides"]
    known = list(PRESETS[strategy]) if strategy in PRESETS else sorted({k for p in PRESETS.values() for k in p})
    for key in overrides:
        if key not in known:
            return f"'denoise.overrides.{key}' is not a denoising setting; {_hint(key, known)}"
    try:
        resolve_strategy(strategy, overrides, source="denoise.overrides")
    except SemantoksError as error:
        return str(error)
    return None


def _pretrain_window(config):
    window, patch_len = config["pretrain"]["window"], config["pretrain"]["patch_len"]
    if patch_len < 1 or window < patch_len or window % patch_len:
        return (f"'pretrain.window' ({window}) must be a whole number of 'pretrain.patch_len' ({patch_len}) TRs; "
                f"set window to {max(1, round(window / max(patch_len, 1))) * max(patch_len, 1)} or change patch_len.")
    return None


def _pretrain_settings(config):
    # the trainer's own resolver knows its keys; asking it now beats failing hours later in the pretrain job
    from semantoks.model.config import resolve_pretrain_config

    try:
        resolve_pretrain_config(config["pretrain"])
    except SemantoksError as error:
        return f"pretrain: {str(error).removeprefix('config.yaml: ')}"
    return None


def _cohort_lists(config):
    cohorts = list(config["cohorts"])
    for section in ("pretrain", "probe"):
        for name in config[section]["cohorts"] or []:
            if name not in cohorts:
                return f"'{section}.cohorts' names '{name}', which is not under cohorts; use one of {', '.join(cohorts)}."
    return None


def _declared_types(config):
    """{phenotype column: {declared types}} over the probed cohorts."""
    types = {}
    for cohort in config["probe"]["cohorts"] or list(config["cohorts"]):
        columns = config["cohorts"][cohort].get("phenotypes", {}).get("columns") or {}
        for column, declared in columns.items():
            kind = declared if isinstance(declared, str) else (declared or {}).get("type")
            types.setdefault(column, set()).add(kind)
    return types


def _probe_phenotypes(config):
    types = _declared_types(config)
    for name, spec in config["probe"]["phenotypes"].items():
        key = f"probe.phenotypes.{name}"
        if not PHENOTYPE_NAME.match(name):
            return (f"'{key}': {name!r} cannot be a file name; use letters, digits and _ only "
                    f"(pattern {PHENOTYPE_NAME.pattern}) and name the column so.")
        if name not in types:
            base = name.removesuffix("_binned")
            if base != name and base in types:
                return f"'{key}' is not a column; probe '{base}' with bins: K to get '{name}'."
            declared = ", ".join(sorted(types)) or "none"
            return (f"'{key}' is not declared in any probed cohort's phenotypes.columns (declared: {declared}); "
                    "declare it there or remove it.")
        bins = (spec or {}).get("bins")
        if bins and types[name] != {"continuous"}:
            kinds = "/".join(sorted(str(kind) for kind in types[name]))
            return f"'{key}.bins' is set but {name} is declared {kinds}; bins apply to continuous phenotypes only, remove it."
    return None


def _probe_split(config):
    probe = config["probe"]
    if probe["split"] == "random":
        return None
    column = probe["site_column"]
    if not column:
        return (f"'probe.split' is {probe['split']} but 'probe.site_column' is not set; name the phenotype column "
                "holding each subject's site (e.g. SITE_ID).")
    if column not in _declared_types(config):
        return (f"'probe.site_column' {column!r} is not declared in every probed cohort's phenotypes.columns; "
                "declare it (categorical) there.")
    if column in config["probe"]["phenotypes"]:
        return (f"'probe.phenotypes.{column}' cannot be probed with probe.split {probe['split']}: its test sites "
                "are never in training; remove it or use probe.split: random.")
    return None


def _probe_confounds(config):
    types = _declared_types(config)
    for column in config["probe"]["confounds"]:
        if types.get(column) != {"continuous"}:
            return (f"'probe.confounds' names {column!r}, which is not declared continuous in every probed cohort's "
                    "phenotypes.columns; declare it so or remove it.")
    return None


def _pretrain_hold_out(config):
    hold_out = config["pretrain"]["hold_out"]
    if config["probe"]["only_held_out"] and not hold_out:
        return "'probe.only_held_out' is true but 'pretrain.hold_out' is not set; name the held-out subjects there."
    if not hold_out:
        return None
    for cohort in config["pretrain"]["cohorts"] or list(config["cohorts"]):
        columns = config["cohorts"][cohort].get("phenotypes", {}).get("columns") or {}
        if hold_out["column"] not in columns:
            return (f"'pretrain.hold_out.column' {hold_out['column']!r} is not declared in cohorts.{cohort}.phenotypes."
                    "columns; declare it there.")
    return None


def _phenotype_classes(config):
    from semantoks.phenotypes import class_names

    for cohort, settings in config["cohorts"].items():
        phenotypes = settings.get("phenotypes") or {}
        try:
            class_names(None, phenotypes.get("columns") or {}, phenotypes.get("classes"))
        except SemantoksError as error:
            return f"cohorts.{cohort}.{str(error).removeprefix('config.yaml: ')}"
    return None


def _label_transfer_phenotypes(config):
    language = config.get("language") or {}
    if not language.get("enabled"):
        return None
    types = _declared_types(config)
    for name in language.get("label_transfer") or []:
        if not types.get(name, set()) or types[name] - {"binary", "categorical"}:
            declared = "/".join(sorted(str(kind) for kind in types.get(name, set()))) or "not declared"
            return (f"'language.label_transfer' names {name!r} ({declared} in the probed cohorts' phenotypes.columns); "
                    "name a binary or categorical phenotype declared there.")
    return None


def _fmriprep_version(config):
    version = str(config["fmriprep"]["version"])
    if not PINNED_VERSION.match(version):
        return (f"'fmriprep.version' is {version!r}; pin a release as X.Y.Z (e.g. 25.2.3) so every subject "
                "of a cohort is preprocessed by the same fMRIPrep.")
    return None


def _data_path(cohort, key):
    value = cohort
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return Path(value).expanduser().resolve() if isinstance(value, str) and value else None


def _shared_data_paths(config):
    seen = {}
    for name, cohort in config["cohorts"].items():
        for key in DATA_PATH_KEYS:
            path = _data_path(cohort, key)
            if path is None:
                continue
            if path in seen and seen[path][0] != name:
                other, other_key = seen[path]
                return (f"'cohorts.{name}.{key}' and 'cohorts.{other}.{other_key}' are the same folder ({path}), so its "
                        "subjects would count as two cohorts and could sit on both sides of a split; list it once.")
            seen.setdefault(path, (name, key))
    return None
