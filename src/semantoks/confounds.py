"""Denoising strategies (named presets, overridable key by key) and confound selection from fMRIPrep tables.

Each preset is a data file in `semantoks/data/denoise/` (as XCP-D's `data/nuisance/*.yml`): its name, a
methods description with citations, and the parameters it sets over `DEFAULTS`. docs/denoising.md tables them.
Levels: basic = the raw columns, derivatives = + `_derivative1`, power2 = + `_power2`, full = all four
(6/12/12/24 motion columns, 2/4/4/8 wm_csf, 1/2/2/4 global).
"""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from semantoks.errors import SemantoksError

LEVELS = ("none", "basic", "derivatives", "power2", "full")
COMPCOR = ("none", "anat_combined", "temporal")
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
WM_CSF_COLUMNS = ("csf", "white_matter")
GLOBAL_COLUMNS = ("global_signal",)

DEFAULTS = {
    "motion": "derivatives", "wm_csf": "basic", "global_signal": "none", "compcor": "none", "n_compcor": "all",
    "cosine": True, "fd_threshold": None, "std_dvars_threshold": None, "scrub_min_segment": 5,
    "dummy_scans": "auto", "high_pass": None, "low_pass": None, "detrend": True,
    "standardize": "zscore_sample", "min_remaining_seconds": 120.0,
}
# the keys `denoise.overrides` may set
PRESET_KEYS = tuple(DEFAULTS)
PRESET_DIR = Path(__file__).parent / "data" / "denoise"


def _load_presets():
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        unknown = set(spec["parameters"]) - set(DEFAULTS)
        if spec["name"] != path.stem or unknown:
            raise SemantoksError(f"{path}: preset name must be the file name and keys among {', '.join(DEFAULTS)}; fix the file.")
        presets[spec["name"]] = {"description": spec["description"], "citations": spec["citations"],
                                 "parameters": {**DEFAULTS, **spec["parameters"]}}
    return presets


PRESET_INFO = _load_presets()
PRESETS = {name: info["parameters"] for name, info in PRESET_INFO.items()}
# nilearn's `load_confounds_strategy` names: these presets must select exactly nilearn's regressors
NILEARN_PRESETS = ("simple", "scrubbing", "compcor")

# fMRIPrep < 1.2 wrote CamelCase columns; everything later uses these snake_case names
_LEGACY_NAMES = {
    "X": "trans_x", "Y": "trans_y", "Z": "trans_z", "RotX": "rot_x", "RotY": "rot_y", "RotZ": "rot_z",
    "FramewiseDisplacement": "framewise_displacement", "stdDVARS": "std_dvars", "non-stdDVARS": "dvars",
    "WhiteMatter": "white_matter", "CSF": "csf", "GlobalSignal": "global_signal",
}
_LEGACY_PATTERNS = [
    (re.compile(r"^aCompCor(\d+)$"), "a_comp_cor_{}"), (re.compile(r"^tCompCor(\d+)$"), "t_comp_cor_{}"),
    (re.compile(r"^Cosine(\d+)$"), "cosine{}"), (re.compile(r"^NonSteadyStateOutlier(\d+)$"), "non_steady_state_outlier{}"),
]


def resolve_strategy(name, overrides=None, source="config.yaml"):
    """The full parameter dict of preset `name` with `overrides` applied key by key, validated."""
    if name not in PRESETS:
        raise SemantoksError(f"{source}: unknown denoising strategy '{name}'; use one of {', '.join(PRESETS)}.")
    strategy = {"name": name, **copy.deepcopy(PRESETS[name])}
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS:
            raise SemantoksError(
                f"{source}: unknown denoising key '{key}'; use one of {', '.join(DEFAULTS)}.")
        strategy[key] = value
    _validate(strategy, source)
    return strategy


def _validate(strategy, source):
    def refuse(key, expected):
        raise SemantoksError(f"{source}: denoising key '{key}' is {strategy[key]!r}; it must be {expected}.")

    for key in ("motion", "wm_csf", "global_signal"):
        if strategy[key] not in LEVELS:
            refuse(key, "one of " + ", ".join(LEVELS))
    if strategy["compcor"] not in COMPCOR:
        refuse("compcor", "one of " + ", ".join(COMPCOR))
    n_compcor = strategy["n_compcor"]
    if n_compcor != "all" and not (_is_int(n_compcor) and n_compcor > 0):
        refuse("n_compcor", "a positive integer or 'all'")
    for key in ("cosine", "detrend"):
        if not isinstance(strategy[key], bool):
            refuse(key, "true or false")
    for key in ("fd_threshold", "std_dvars_threshold", "high_pass", "low_pass"):
        if strategy[key] is not None and not (_is_number(strategy[key]) and strategy[key] > 0):
            refuse(key, "a positive number or null")
    if not (_is_int(strategy["scrub_min_segment"]) and strategy["scrub_min_segment"] >= 0):
        refuse("scrub_min_segment", "a whole number of volumes, 0 or more")
    dummy = strategy["dummy_scans"]
    if dummy != "auto" and not (_is_int(dummy) and dummy >= 0):
        refuse("dummy_scans", "'auto' or a whole number of volumes")
    if not (strategy["standardize"] == "zscore_sample" or strategy["standardize"] is False):
        refuse("standardize", "'zscore_sample' or false")
    if not (_is_number(strategy["min_remaining_seconds"]) and strategy["min_remaining_seconds"] >= 0):
        refuse("min_remaining_seconds", "a number of seconds, 0 or more")
    if strategy["high_pass"] and strategy["low_pass"] and strategy["high_pass"] >= strategy["low_pass"]:
        refuse("high_pass", f"below low_pass ({strategy['low_pass']})")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def load_confounds(path):
    """The confounds table (fMRIPrep `n/a` as NaN, legacy names renamed) and its JSON sidecar, or None."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except FileNotFoundError:
        raise SemantoksError(f"{path}: confounds table not found; keep fMRIPrep's desc-confounds_timeseries.tsv beside the BOLD run.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SemantoksError(f"{path}: cannot be read as a tab-separated confounds table ({error}); re-run fMRIPrep for this run.") from None
    table = table.rename(columns=_modern_name)
    sidecar = path.with_name(path.name[: -len(".tsv")] + ".json") if path.name.endswith(".tsv") else None
    metadata = None
    if sidecar is not None and sidecar.is_file():
        try:
            metadata = json.loads(sidecar.read_text())
        except json.JSONDecodeError as error:
            raise SemantoksError(f"{sidecar}: not valid JSON ({error}); restore fMRIPrep's sidecar or delete it.") from None
    return table, metadata


def _modern_name(column):
    if column in _LEGACY_NAMES:
        return _LEGACY_NAMES[column]
    for pattern, template in _LEGACY_PATTERNS:
        match = pattern.match(column)
        if match:
            return template.format(match.group(1).zfill(2))
    return column


def select_confounds(confounds, strategy, metadata=None, source="confounds table"):
    """Regressors for every volume, the indices of kept volumes, and motion QC, for a resolved strategy.

    `source` names the table in error messages; `metadata` is its JSON sidecar (aCompCor masks).
    """
    table = _with_expansions(confounds, strategy)
    columns = _regressor_columns(table, strategy, metadata, source)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise SemantoksError(
            f"{source}: strategy '{strategy['name']}' needs columns the table lacks ({', '.join(missing)}); "
            "choose a strategy these confounds support or re-run fMRIPrep with a newer version.")
    try:
        regressors = table[columns].astype(float)
    except ValueError as error:
        raise SemantoksError(f"{source}: a confound column holds text where numbers belong ({error}); re-run fMRIPrep for this run.") from None
    # the first volume has no predecessor, so its derivatives are n/a: 0 means "no change" and adds no spike
    # (that volume is a dummy scan in most runs anyway, and nilearn refuses NaN confounds)
    first_row_gaps = [c for c in columns if "derivative" in c]
    regressors.loc[regressors.index[0], first_row_gaps] = regressors.loc[regressors.index[0], first_row_gaps].fillna(0.0)
    still_missing = [column for column in columns if regressors[column].isna().any()]
    if still_missing:
        raise SemantoksError(
            f"{source}: columns {', '.join(still_missing)} hold n/a values beyond the first row; re-run fMRIPrep for this run.")
    n_volumes = len(table)
    n_dummy = _dummy_count(table, strategy, n_volumes)
    keep = np.zeros(n_volumes, dtype=bool)
    keep[n_dummy:] = True
    fd = _column_or_none(table, "framewise_displacement")
    keep &= ~_censored(table, strategy, source, fd)
    if strategy["fd_threshold"] is not None or strategy["std_dvars_threshold"] is not None:
        keep = _drop_short_segments(keep, strategy["scrub_min_segment"])
    after_dummy = n_volumes - n_dummy
    n_censored = int(after_dummy - keep.sum())
    fd_after_dummy = fd[n_dummy:] if fd is not None else None
    fd_after_dummy = fd_after_dummy[np.isfinite(fd_after_dummy)] if fd_after_dummy is not None else None
    has_fd = fd_after_dummy is not None and fd_after_dummy.size > 0
    qc = {
        "mean_fd": float(fd_after_dummy.mean()) if has_fd else None,
        "max_fd": float(fd_after_dummy.max()) if has_fd else None,
        "n_dummy": int(n_dummy),
        "n_censored": n_censored,
        "pct_censored": 100.0 * n_censored / after_dummy if after_dummy else 100.0,
    }
    return regressors.reset_index(drop=True), np.flatnonzero(keep), qc


def _with_expansions(confounds, strategy):
    # tables from fMRIPrep < 1.2 hold only the raw columns: derive the expansions as fMRIPrep defines them
    table = confounds.reset_index(drop=True)
    added = {}
    for level_key, bases in (("motion", MOTION_COLUMNS), ("wm_csf", WM_CSF_COLUMNS), ("global_signal", GLOBAL_COLUMNS)):
        for column in _expand(bases, strategy[level_key]):
            if column in table.columns or column in added:
                continue
            base = column.split("_derivative1")[0].split("_power2")[0]
            if base not in table.columns:
                continue
            values = table[base].astype(float)
            derived = values.diff() if "derivative1" in column else values
            added[column] = derived**2 if column.endswith("power2") else derived
    return pd.concat([table, pd.DataFrame(added)], axis=1) if added else table


def _expand(bases, level):
    suffixes = {"none": (), "basic": ("",), "derivatives": ("", "_derivative1"), "power2": ("", "_power2"),
                "full": ("", "_derivative1", "_power2", "_derivative1_power2")}[level]
    return [base + suffix for base in bases for suffix in suffixes]


def _regressor_columns(table, strategy, metadata, source):
    columns = _expand(MOTION_COLUMNS, strategy["motion"]) + _expand(WM_CSF_COLUMNS, strategy["wm_csf"])
    columns += _expand(GLOBAL_COLUMNS, strategy["global_signal"])
    if strategy["compcor"] != "none":
        columns += _compcor_columns(table, strategy, metadata, source)
    if strategy["cosine"]:
        cosines = sorted(c for c in table.columns if re.fullmatch(r"cosine\d+", c))
        columns += cosines or ["cosine00"]
    return columns


def _compcor_columns(table, strategy, metadata, source):
    prefix = "a_comp_cor_" if strategy["compcor"] == "anat_combined" else "t_comp_cor_"
    present = sorted((c for c in table.columns if re.fullmatch(re.escape(prefix) + r"\d+", c)), key=lambda c: int(c.rsplit("_", 1)[1]))
    if prefix == "a_comp_cor_" and present:
        present = _combined_mask_components(table, present, metadata, source)
    wanted = strategy["n_compcor"]
    if not present:
        return [f"{prefix}00"]
    if wanted == "all":
        return present
    if wanted > len(present):
        raise SemantoksError(
            f"{source}: strategy '{strategy['name']}' asks for {wanted} {prefix[:-1]} components but only {len(present)} "
            "were retained; lower n_compcor or use n_compcor: all.")
    return present[:wanted]


def _combined_mask_components(table, present, metadata, source):
    # fMRIPrep 1.4-20.x mixes combined, CSF and WM components under a_comp_cor_*; only the JSON tells them apart
    masks = {c: (metadata or {}).get(c, {}).get("Mask") for c in present}
    if any(masks.values()):
        return [c for c in present if masks[c] == "combined"]
    # fMRIPrep >= 21 moved CSF/WM components to c_/w_comp_cor_*; < 1.4 wrote combined-mask components only
    newer = any(c.startswith(("c_comp_cor_", "w_comp_cor_")) for c in table.columns)
    if newer or len(present) <= 6:
        return present
    raise SemantoksError(
        f"{source}: without its JSON sidecar the a_comp_cor columns cannot be split by mask; "
        "keep fMRIPrep's desc-confounds_timeseries.json beside the table.")


def _dummy_count(table, strategy, n_volumes):
    if strategy["dummy_scans"] == "auto":
        count = sum(1 for c in table.columns if c.startswith("non_steady_state_outlier"))
    else:
        count = int(strategy["dummy_scans"])
    return min(count, n_volumes)


def _column_or_none(table, column):
    return table[column].to_numpy(dtype=float) if column in table.columns else None


def _censored(table, strategy, source, fd):
    censored = np.zeros(len(table), dtype=bool)
    for column, threshold in (("framewise_displacement", strategy["fd_threshold"]), ("std_dvars", strategy["std_dvars_threshold"])):
        if threshold is None:
            continue
        if column not in table.columns:
            raise SemantoksError(
                f"{source}: strategy '{strategy['name']}' censors on {column} but the table lacks it; "
                f"set {'fd' if column.startswith('frame') else 'std_dvars'}_threshold: null or re-run fMRIPrep.")
        values = fd if column == "framewise_displacement" else table[column].to_numpy(dtype=float)
        # the first row is n/a (no previous volume): never a reason to censor
        censored |= np.nan_to_num(values, nan=0.0) > threshold
    return censored


def _drop_short_segments(keep, min_length):
    """Also drop runs of kept volumes shorter than `min_length` (isolated frames between censored ones)."""
    keep = keep.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < min_length:
            keep[start:stop] = False
    return keep
