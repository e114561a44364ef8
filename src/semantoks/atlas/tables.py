"""Reading label tables (TemplateFlow dseg.tsv, users' tables, our labels.tsv) with errors that name the file."""

import numpy as np
import pandas as pd

from semantoks.atlas.names import LABEL_COLUMNS
from semantoks.errors import SemantoksError


def read_tsv(path, required, what):
    """A TSV with the `required` columns, as strings except where pandas finds numbers."""
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False)
    except FileNotFoundError:
        raise SemantoksError(f"{path}: {what} not found; fix the path in the atlas section of config.yaml.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SemantoksError(f"{path}: cannot be read as a tab-separated {what} ({error}); save it as TSV.") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise SemantoksError(
            f"{path}: {what} lacks column(s) {', '.join(missing)} (has {', '.join(map(str, table.columns))}); "
            f"give a tab-separated header with {', '.join(required)}.")
    for column in required:
        if table[column].isna().any():
            row = int(np.flatnonzero(table[column].isna().to_numpy())[0]) + 2
            raise SemantoksError(f"{path}: line {row} has an empty {column}; fill it in or drop the line.")
    return table


def read_index_name_table(path, what="atlas label table"):
    """Rows [index, name, ...] sorted by label value; a background row (index 0) is dropped."""
    table = read_tsv(path, ("index", "name"), what)
    index = pd.to_numeric(table["index"], errors="coerce")
    if index.isna().any() or (index != index.round()).any():
        raise SemantoksError(f"{path}: the index column must hold whole numbers (label values); fix the table.")
    table = table.assign(index=index.astype("int64"), name=table["name"].astype(str))
    table = table[table["index"] != 0].sort_values("index", kind="stable").reset_index(drop=True)
    _require_unique(table, "index", path)
    _require_unique(table, "name", path)
    return table


def read_labels_tsv(path):
    """Our labels.tsv: [index, name, network, hemisphere] (+ any extra columns), in label order."""
    table = read_tsv(path, LABEL_COLUMNS, "atlas labels.tsv")
    try:
        table["index"] = table["index"].astype("int64")
    except (TypeError, ValueError):
        raise SemantoksError(f"{path}: the index column must hold whole numbers; rebuild the atlas step.") from None
    for column in ("name", "network", "hemisphere"):
        table[column] = table[column].astype(str)
    if not set(table["hemisphere"]) <= {"L", "R", "unknown"}:
        raise SemantoksError(f"{path}: hemisphere must be L, R or unknown on every line; rebuild the atlas step.")
    return table


def _require_unique(table, column, path):
    repeated = table[column][table[column].duplicated()]
    if len(repeated):
        raise SemantoksError(f"{path}: {column} {repeated.iloc[0]!r} appears more than once; make each {column} unique.")
