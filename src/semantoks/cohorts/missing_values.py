"""The one missing-value vocabulary: which cells of a phenotype table or ROI file mean "no value".

Used by the phenotype reader, `semantoks onboard` and ROI import. Text codes compare case-insensitively
after stripping blanks; numeric codes compare as numbers, so `-9999`, `-9999.0` and `-9999.00` all match.
A cohort replaces the default list with `phenotypes.missing_values:` in its config.
"""

import math

import numpy as np
import pandas as pd

# ABIDE and other INDI tables write -9999 (sometimes -999) for a missing value
DEFAULT_MISSING_VALUES = ("", "n/a", "NA", "N/A", "nan", "NaN", "-9999", "-999")


class MissingValues:
    """A missing-value vocabulary: `is_missing(cells)` on a Series of text cells."""

    def __init__(self, codes=None):
        self.codes = tuple(str(code).strip() for code in (DEFAULT_MISSING_VALUES if codes is None else codes))
        self.text = frozenset(code.lower() for code in self.codes)
        self.numbers = frozenset(number for number in map(_number, self.codes) if number is not None)

    def is_missing(self, cells):
        """Boolean Series: True where a cell (text or number) is one of the codes, or is NaN/None."""
        series = pd.Series(cells)
        text = series.astype("string").str.strip()
        missing = series.isna().to_numpy() | text.str.lower().isin(self.text).fillna(True).to_numpy(dtype=bool)
        if self.numbers:
            numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            missing |= np.isin(numbers, list(self.numbers))
        return pd.Series(missing, index=series.index)

    def pandas_na_values(self):
        """The codes as `pd.read_csv(na_values=...)` takes them (both text forms of every numeric code)."""
        forms = set(self.codes)
        for number in self.numbers:
            forms |= {f"{number:g}", repr(float(number))}
        return sorted(forms)

    def text_codes(self):
        """Only the non-numeric codes (for numeric files, where -9999 can be a real value)."""
        return [code for code in self.codes if _number(code) is None]


def missing_values(codes=None):
    """The vocabulary for a cohort: its `phenotypes.missing_values` list, or the default when None."""
    return MissingValues(codes)


def _number(code):
    try:
        number = float(code)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
