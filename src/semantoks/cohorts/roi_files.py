"""Read one ROI time-series file (.1D/.txt, .csv/.tsv, .npy, .mat) as a 2-D float array, as stored."""

from pathlib import Path

import numpy as np
import pandas as pd

from semantoks.cohorts.missing_values import missing_values
from semantoks.errors import SemantoksError

TEXT_SEPARATORS = {".csv": ",", ".tsv": "\t", ".1d": r"\s+", ".txt": r"\s+", ".dat": r"\s+"}
FORMATS = (*TEXT_SEPARATORS, ".npy", ".mat")
# in a time series only the text codes mean missing: a numeric -9999 would be a (broken) value, not a gap
_MISSING = missing_values().text_codes()


def read_roi_array(path, mat_variable=None):
    """The file's numbers as a 2-D float array, in the file's own orientation."""
    return read_roi_table(path, mat_variable)[0]


def read_roi_table(path, mat_variable=None):
    """(2-D float array as stored, column names from the file's header or None).

    A header is a first line of '#'-prefixed names (AFNI .1D, e.g. '#1 #2 ... #200', given without the '#')
    or a non-numeric first line of a CSV/TSV.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    header = None
    if suffix in TEXT_SEPARATORS:
        array, header = _read_text(path, TEXT_SEPARATORS[suffix])
    elif suffix == ".npy":
        array = _read_npy(path)
    elif suffix == ".mat":
        array = _read_mat(path, mat_variable)
    else:
        raise SemantoksError(f"{path}: unsupported time-series format '{suffix}'; use one of {', '.join(FORMATS)}.")
    if array.ndim != 2 or min(array.shape) < 1:
        raise SemantoksError(f"{path}: expected a 2-D table of frames x parcels, found shape {array.shape}; "
                             "save one scan per file as a 2-D table.")
    return array, header


def roi_array_shape(path, mat_variable=None):
    """(rows, columns) without parsing the numbers (a memory map for .npy, a line count for text)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _read_npy(path, mmap=True).shape
    if suffix in TEXT_SEPARATORS:
        return _text_shape(path, TEXT_SEPARATORS[suffix])
    return read_roi_array(path, mat_variable).shape


def _text_shape(path, separator):
    header = _has_header(path, separator)
    rows, columns = 0, None
    with open(path, errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            rows += 1
            if columns is None:
                columns = len(line.split() if separator == r"\s+" else line.split(separator))
    return (rows - 1 if header else rows), (columns or 0)


def _read_text(path, separator):
    header = _has_header(path, separator)
    try:
        table = pd.read_csv(path, sep=separator, header=0 if header else None, comment="#", engine="c",
                            na_values=_MISSING, skip_blank_lines=True)
        names = [str(c).strip().strip('"') for c in table.columns] if header else _comment_header(path)
        array = table.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
        return array, names or None
    except (ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise SemantoksError(f"{path}: could not read a numeric table ({str(error).splitlines()[0]}); "
                             "fix or remove the file (rows = frames, columns = parcels, one header line at most).") from None


def _has_header(path, separator):
    """A first non-comment line that is not all numbers is a header (CSV/TSV written with column names)."""
    try:
        with open(path, errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens = line.split() if separator == r"\s+" else line.split(separator)
                    return not all(_is_number(token) for token in tokens)
    except OSError as error:
        raise SemantoksError(f"{path}: cannot read the file ({error.strerror}); check its permissions.") from None
    raise SemantoksError(f"{path}: the file has no data rows; remove it or re-export the time series.")


def _comment_header(path):
    """Names from a first line like '#1\t#2\t...' (every token '#'-prefixed), else None."""
    with open(path, errors="replace") as handle:
        first = handle.readline().strip()
    tokens = first.split()
    if tokens and all(token.startswith("#") and len(token) > 1 for token in tokens):
        return [token[1:] for token in tokens]
    return None


def _is_number(token):
    token = token.strip().strip('"')
    if token in _MISSING:
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_npy(path, mmap=False):
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as error:
        raise SemantoksError(f"{path}: not a readable .npy array ({error}); re-save it with numpy.save.") from None
    if not np.issubdtype(array.dtype, np.number):
        raise SemantoksError(f"{path}: the array holds {array.dtype}, not numbers; save the time series as floats.")
    return array if mmap else np.asarray(array, dtype=np.float64)


def _read_mat(path, variable):
    from scipy.io import loadmat, whosmat

    try:
        names = [name for name, _, _ in whosmat(path)]
        if variable is None:
            if len(names) != 1:
                raise SemantoksError(
                    f"{path}: holds variables {', '.join(names)}; set roi.mat_variable to the one holding the time series.")
            variable = names[0]
        if variable not in names:
            raise SemantoksError(
                f"{path}: no variable '{variable}' (found: {', '.join(names)}); set roi.mat_variable to one of them.")
        array = loadmat(path, variable_names=[variable])[variable]
    except NotImplementedError:
        raise SemantoksError(
            f"{path}: a MATLAB v7.3 file, which scipy cannot read; re-save it with save(..., '-v7') or as .npy.") from None
    except (OSError, ValueError, TypeError) as error:
        raise SemantoksError(f"{path}: not a readable MATLAB file ({error}); re-save it with save(..., '-v7').") from None
    if not np.issubdtype(array.dtype, np.number):
        raise SemantoksError(
            f"{path}: variable '{variable}' holds {array.dtype}, not numbers; store the time series as a numeric matrix.")
    return np.asarray(array, dtype=np.float64)
