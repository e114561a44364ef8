"""A scan's content fingerprint: one hash of its values, so the same scan under two names or cohorts is found."""

import hashlib

import numpy as np

from semantoks.errors import SemantoksError


def scan_fingerprint(data):
    """sha256 of a [n_frames, n_parcels] scan's float32 values (every NaN alike) and shape; equal values, equal hash."""
    values = np.ascontiguousarray(data, dtype=np.float32)
    values = np.where(np.isnan(values), np.float32(np.nan), values)
    digest = hashlib.sha256(np.asarray(values.shape, dtype=np.int64).tobytes())
    digest.update(values.tobytes())
    return digest.hexdigest()


def refuse_duplicate_scans(scans):
    """`scans`: (fingerprint, where, source) per scan; two with one fingerprint stop the build naming both files.

    Refused, not merged: the same person listed twice (overlapping releases, a copied folder) would put one
    subject on both sides of a train/test split, and only the user knows which copy to keep.
    """
    seen = {}
    for fingerprint, where, source in scans:
        if fingerprint is None:
            continue
        if fingerprint in seen:
            first_where, first_source = seen[fingerprint]
            raise SemantoksError(
                f"{source} ({where}) and {first_source} ({first_where}) hold exactly the same values: one scan listed "
                "twice would sit on both sides of a train/test split; remove one of the two files (or cohorts).")
        seen[fingerprint] = (where, source)
