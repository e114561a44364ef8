"""A ROI cohort's own parcellation: its name (the atlas id of every output) and its labels table.

The labels table (TSV or CSV) has one row per parcel in file-column order: `name`, `network` and optional
`hemisphere`, `index` (label value in the NIfTI) and `column` (the parcel's column in the time-series files,
by header name or 1-based position). `roi.label_columns` renames these to the table's own headers, e.g.
{name: roi, network: yeo7_network}. Without a network column, `roi.dseg` (the parcellation's NIfTI) gives
each parcel the Yeo 2011 network holding most of its voxels (semantoks.atlas.custom).
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.atlas.names import UNASSIGNED
from semantoks.errors import SemantoksError

LABEL_FIELDS = ("name", "network", "hemisphere", "index", "column")
_HEMISPHERE = {"lh": "L", "left": "L", "l": "L", "rh": "R", "right": "R", "r": "R"}
# a midline parcel (vermis, a bilateral ROI): the value the project's own labels.tsv writes for it
_NO_SIDE = ("unknown", "midline", "m", "both", "bilateral", "")
_ID = re.compile(r"^[A-Za-z0-9]+$")
UNKNOWN_HEMISPHERE = "unknown"
# where the Yeo 2011 volume is looked up when roi.space is not given
YEO_SPACE = "MNI152NLin2009cAsym"


def parcellation_id(config):
    """The atlas id of the run: the ROI cohorts' `roi.parcellation`, else None (the `atlas:` section's).

    Cohorts whose parcellations differ cannot share a dataset partition or a model: that is an error
    naming them, raised when the config is read.
    """
    roi = {name: cohort.get("roi") or {} for name, cohort in config["cohorts"].items() if cohort["source"] == "roi"}
    if not roi:
        return None
    names = {}
    for cohort, settings in roi.items():
        name = settings.get("parcellation")
        if not name:
            raise SemantoksError(f"cohorts.{cohort}.roi.parcellation: not set; name the atlas the time series were "
                                 "extracted with (letters and digits, e.g. CC200).")
        if not _ID.match(str(name)):
            raise SemantoksError(f"cohorts.{cohort}.roi.parcellation: {name!r} is not alphanumeric; use letters and "
                                 "digits only (it names the output files).")
        labels = settings.get("labels")
        if not labels:
            raise SemantoksError(f"cohorts.{cohort}.roi.labels: not set; give the parcellation's labels table "
                                 "(columns name, network; one row per file column).")
        if not Path(labels).is_file():
            raise SemantoksError(f"{labels}: labels table not found; fix cohorts.{cohort}.roi.labels.")
        check_labels_table(settings, f"cohorts.{cohort}.roi")
        names.setdefault(str(name), []).append(cohort)
    if len(names) > 1:
        listing = "; ".join(f"{name}: {', '.join(cohorts)}" for name, cohorts in sorted(names.items()))
        raise SemantoksError(f"cohorts: ROI cohorts use different parcellations ({listing}); one run of the workflow "
                             "takes one parcellation, so run each parcellation with its own config.")
    return next(iter(names))


def check_labels_table(roi, key, n_parcels=None):
    """The checks the import job applies to a labels table, when the config is read (check-config, Snakefile parse,
    onboard --labels): readable, named parcels, a network column (or roi.dseg) that is not blank for every parcel,
    and, given the files' parcel count `n_parcels` (else read from the first matched file), one row per file column.
    Returns the table."""
    table, path = read_roi_labels(roi["labels"], roi.get("label_columns") or {}, key)
    if "network" not in table.columns and not roi.get("dseg"):
        raise SemantoksError(
            f"{path}: no network column; add one (or map yours with {key}.label_columns.network), "
            f"or set {key}.dseg to the parcellation's NIfTI to assign networks by Yeo 2011 overlap.")
    if "network" in table.columns and (table["network"] == UNASSIGNED).all():
        raise SemantoksError(
            f"{path}: the network column is blank for every parcel, so the model would see one network; fill it "
            f"in, map another column with {key}.label_columns.network, or remove it and set {key}.dseg.")
    selected = "column" in table.columns and table["column"].notna().any()
    if n_parcels is None and roi.get("files") and roi.get("pattern") and not selected:
        n_parcels = _first_file_parcels(roi, len(table))
    if n_parcels is not None and not selected and len(table) != n_parcels:
        raise SemantoksError(f"{path}: {len(table)} rows but the time-series files have {n_parcels} parcels; use the "
                             "labels table of the parcellation the files were extracted with (one row per file column).")
    return table


def _first_file_parcels(roi, n_labels):
    """The parcel count of the first matched file: its axis of n_labels if it has one, else its column count."""
    from semantoks.cohorts.roi_files import roi_array_shape
    from semantoks.cohorts.roi_scans import find_roi_scans

    try:
        first = find_roi_scans(roi["files"], roi["pattern"], roi.get("task") or "rest")[0]
    except SemantoksError:
        # a folder or pattern problem is reported by its own check, with its own fix
        return None
    shape = roi_array_shape(first.source, roi.get("mat_variable"))
    if n_labels in shape:
        return n_labels
    return shape[0] if roi.get("orientation") == "parcels_by_frames" else shape[1]


def check_mixed_sources(config, roi_atlas_id, atlas_id):
    """ROI cohorts next to BOLD cohorts must name the BOLD cohorts' atlas as their parcellation."""
    bold = sorted(name for name, cohort in config["cohorts"].items() if cohort["source"] != "roi")
    if roi_atlas_id is None or not bold or roi_atlas_id == atlas_id:
        return
    roi = sorted(name for name, cohort in config["cohorts"].items() if cohort["source"] == "roi")
    raise SemantoksError(
        f"cohorts: ROI cohort(s) {', '.join(roi)} use parcellation {roi_atlas_id} but cohort(s) {', '.join(bold)} are "
        f"parcellated with the atlas section's {atlas_id}; run them with separate configs.")


def roi_parcel_table(roi, cohort, templateflow_home=None, allow_download=False, with_networks=True):
    """[index, name, network, hemisphere, column] of the cohort's parcellation, in file-column order."""
    key = f"cohorts.{cohort}.roi"
    if not roi.get("labels"):
        raise SemantoksError(f"{key}.labels: not set; give the parcellation's labels table (columns name, network).")
    table, path = read_roi_labels(roi["labels"], roi.get("label_columns") or {}, key)
    image = _dseg(roi, key) if roi.get("dseg") else None
    if image is not None:
        from semantoks.atlas.images import check_labels_match

        check_labels_match(image, table, roi["dseg"], path, require_all=True)
    if "hemisphere" not in table.columns:
        if image is not None:
            from semantoks.atlas.custom import hemispheres_from_centroids

            table["hemisphere"] = hemispheres_from_centroids(image, table["index"])
        else:
            table["hemisphere"] = table["name"].map(hemisphere_of_name)
    check_labels_table(roi, key, n_parcels=len(table))
    if "network" not in table.columns:
        if with_networks:
            from semantoks.atlas.custom import load_yeo_networks, majority_networks

            yeo, yeo_networks = load_yeo_networks(roi.get("space") or YEO_SPACE, roi.get("n_networks") or 7,
                                                  templateflow_home, allow_download)
            table["network"], table["network_overlap"] = majority_networks(image, table["index"], yeo, yeo_networks)
        else:
            table["network"] = UNASSIGNED
    extra = [c for c in ("network_overlap",) if c in table.columns]
    return table[["index", "name", "network", "hemisphere", "column", *extra]].reset_index(drop=True)


def read_roi_labels(path, label_columns, key="roi"):
    """(table with the LABEL_FIELDS present, path); `label_columns` maps a field to the table's header."""
    path = Path(path)
    unknown = sorted(set(label_columns) - set(LABEL_FIELDS))
    if unknown:
        raise SemantoksError(f"{key}.label_columns: unknown field {unknown[0]!r}; map only {', '.join(LABEL_FIELDS)}.")
    if not path.is_file():
        raise SemantoksError(f"{path}: labels table not found; fix {key}.labels.")
    separator = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        raw = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SemantoksError(f"{path}: cannot be read as a labels table ({error}); save it as TSV or CSV.") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    table = pd.DataFrame(index=raw.index)
    for field in LABEL_FIELDS:
        header = label_columns.get(field, field)
        if header in raw.columns:
            table[field] = raw[header].str.strip()
        elif field in label_columns:
            raise SemantoksError(f"{path}: no column {header!r} (has {', '.join(raw.columns)}); fix "
                                 f"{key}.label_columns.{field}.")
    if "name" not in table.columns:
        raise SemantoksError(f"{path}: no name column (has {', '.join(raw.columns)}); add one or map yours with "
                             f"{key}.label_columns.name.")
    if (table["name"] == "").any():
        row = int(np.flatnonzero((table["name"] == "").to_numpy())[0]) + 2
        raise SemantoksError(f"{path}: row {row} has an empty name; fill in every parcel's name.")
    if "network" in table.columns:
        # a parcel outside every network (e.g. cerebellum) may be left blank
        table["network"] = table["network"].replace("", UNASSIGNED)
    repeated = table["name"][table["name"].duplicated()]
    if len(repeated):
        raise SemantoksError(f"{path}: parcel name {repeated.iloc[0]!r} appears twice; make the names unique.")
    table["index"] = _whole_numbers(table["index"], path, "index") if "index" in table.columns else np.arange(1, len(table) + 1)
    if "hemisphere" in table.columns:
        table["hemisphere"] = table["hemisphere"].map(
            lambda side: UNKNOWN_HEMISPHERE if side.lower() in _NO_SIDE else _HEMISPHERE.get(side.lower(), side.upper()))
        bad = sorted(set(table["hemisphere"]) - {"L", "R", UNKNOWN_HEMISPHERE})
        if bad:
            raise SemantoksError(f"{path}: hemisphere {bad[0]!r} is not L or R; write L, R, left or right (or unknown, "
                                 "midline or blank for a parcel on the midline).")
    table["column"] = table["column"].map(_column_ref) if "column" in table.columns else None
    return table, path


def _column_ref(value):
    """A header name, or a 1-based position when the cell is a whole number."""
    return int(value) if value.isdigit() else value


def _whole_numbers(values, path, field):
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or (numbers != numbers.round()).any():
        raise SemantoksError(f"{path}: the {field} column must hold whole numbers (label values); fix the table.")
    return numbers.astype("int64")


def _dseg(roi, key):
    from semantoks.atlas.images import read_label_image

    path = Path(roi["dseg"])
    if not path.is_file():
        raise SemantoksError(f"{path}: parcellation NIfTI not found; fix {key}.dseg or remove it.")
    return read_label_image(path)


def hemisphere_of_name(name):
    tokens = re.split(r"[_\-\s.]+", str(name).lower())
    sides = {_HEMISPHERE[t] for t in tokens if t in _HEMISPHERE}
    return sides.pop() if len(sides) == 1 else UNKNOWN_HEMISPHERE
