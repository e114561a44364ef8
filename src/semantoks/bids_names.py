"""BIDS entities of fMRIPrep file names, and the names of our per-run outputs built from them."""

import re
from pathlib import Path

from semantoks.errors import SemantoksError

NAMED_ENTITIES = ("sub", "ses", "task", "acq", "run", "space", "res", "desc")
# entities that tell runs of one subject apart, in BIDS order; space/res/cohort/desc describe derivatives
SCAN_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "part")
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]+)+$")


def parse_entities(path):
    """Entities of a BIDS file name as a dict; the named ones (sub, ses, ..., suffix, extension) default to None."""
    name = Path(path).name
    extension_match = _EXTENSION.search(name)
    extension = extension_match.group(0) if extension_match else None
    stem = name[: extension_match.start()] if extension_match else name
    *pairs, suffix = stem.split("_")
    entities = dict.fromkeys(NAMED_ENTITIES)
    for pair in pairs:
        key, sep, label = pair.partition("-")
        if not sep or not _LABEL.match(key):
            raise SemantoksError(f"{path}: '{pair}' is not a BIDS key-label pair; rename the file the BIDS way.")
        entities[key] = check_label(label, key, path)
    if "-" in suffix or not _LABEL.match(suffix) or not pairs:
        raise SemantoksError(f"{path}: not a BIDS file name (sub-<label>_..._<suffix>); rename the file the BIDS way.")
    if entities["sub"] is None:
        raise SemantoksError(f"{path}: the name has no sub-<label> entity; rename the file the BIDS way.")
    entities["suffix"] = suffix
    entities["extension"] = extension
    return entities


def check_label(label, key, source):
    """A BIDS label must be alphanumeric: '_' and '-' would break the file names built from it."""
    if not isinstance(label, str) or not _LABEL.match(label):
        raise SemantoksError(
            f"{source}: the {key} label '{label}' is not alphanumeric as BIDS requires; rename it with letters and digits only.")
    return label


def scan_id(entities):
    """`sub-X[_ses-Y]_task-Z[_acq-A][_run-N]`: the BIDS stem without space, res, desc and suffix."""
    if not entities.get("sub") or not entities.get("task"):
        raise SemantoksError(f"{_describe(entities)}: a run needs sub- and task- entities; rename the file the BIDS way.")
    return "_".join(f"{key}-{entities[key]}" for key in SCAN_ENTITIES if entities.get(key) is not None)


def timeseries_name(entities, atlas_id, strategy):
    """`<scan_id>_space-<space>_atlas-<atlas>_desc-<strategy>_timeseries.parquet`."""
    return f"{_output_stem(entities, atlas_id, strategy)}_timeseries.parquet"


def qc_name(entities, atlas_id, strategy):
    """`<scan_id>_space-<space>_atlas-<atlas>_desc-<strategy>_qc.json`, beside the time series."""
    return f"{_output_stem(entities, atlas_id, strategy)}_qc.json"


# XCP-D's per-run outputs, written beside the Parquet when `outputs.tsv` is on
XCPD_SUFFIXES = {"mean": "_stat-mean_timeseries.tsv", "coverage": "_stat-coverage_bold.tsv",
                 "correlation": "_stat-pearsoncorrelation_relmat.tsv"}


def xcpd_paths(timeseries_path):
    """{'mean', 'coverage', 'correlation'}: XCP-D-named TSVs beside a run's `..._timeseries.parquet` (or its pattern)."""
    stem = str(timeseries_path)[: -len("_timeseries.parquet")]
    return {kind: stem + suffix for kind, suffix in XCPD_SUFFIXES.items()}


def subject_dir(entities):
    """`sub-<s>[/ses-<t>]`: where a run's outputs go under the cohort folder."""
    parts = [f"sub-{entities['sub']}"]
    if entities.get("ses") is not None:
        parts.append(f"ses-{entities['ses']}")
    return Path(*parts)


def _output_stem(entities, atlas_id, strategy):
    source = _describe(entities)
    if not entities.get("space"):
        raise SemantoksError(f"{source}: the BOLD name has no space- entity; use fMRIPrep outputs in a template space.")
    check_label(atlas_id, "atlas", source)
    check_label(strategy, "desc (denoising strategy)", source)
    return f"{scan_id(entities)}_space-{entities['space']}_atlas-{atlas_id}_desc-{strategy}"


def _describe(entities):
    return "_".join(f"{k}-{v}" for k, v in entities.items() if v is not None and k not in ("suffix", "extension")) or "file name"
