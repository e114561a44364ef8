"""Labelled volumes: read any dseg into a clean int32 image, and per-label voxel counts and centroids."""

import nibabel as nib
import numpy as np

from semantoks.errors import SemantoksError

LABEL_DTYPE = np.int32


def read_label_image(path):
    """A dseg as an int32 Nifti1Image with the affine nibabel trusts (sform, else qform); errors name the file."""
    try:
        source = nib.load(path)
        # nibabel reads only the header here; a truncated .nii.gz fails when the voxels are read below
        data = np.asanyarray(source.dataobj)
    except FileNotFoundError:
        raise SemantoksError(f"{path}: atlas volume not found; fix the path in the atlas section of config.yaml.") from None
    except Exception as error:
        raise SemantoksError(
            f"{path}: cannot be read as a NIfTI volume ({error}); if it is a truncated download, delete it so it is "
            "fetched again (or copy a complete file there), otherwise give a .nii or .nii.gz dseg.") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise SemantoksError(f"{path}: an atlas must be one 3D volume but this has shape {data.shape}; give a 3D dseg.")
    affine, code = _world_affine(source.header, path)
    return label_image(_integer_labels(data, path), affine, code)


def _world_affine(header, path):
    # real files (e.g. the Yeo 2011 volume) keep their affine only in the qform, sform code 0
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    if sform_code > 0:
        return header.get_sform(), sform_code
    if qform_code > 0:
        return header.get_qform(), qform_code
    raise SemantoksError(
        f"{path}: neither sform nor qform is set, so voxel positions in the template are unknown; "
        "save the volume with its template affine.")


def _integer_labels(data, path):
    if np.issubdtype(data.dtype, np.integer):
        labels = data
    else:
        # float dsegs are common (Tian, Yeo); their values must still be whole numbers
        rounded = np.rint(data)
        if not np.all(np.isfinite(data)) or np.any(np.abs(data - rounded) > 1e-3):
            raise SemantoksError(f"{path}: holds non-integer values, so it is not a label volume; give a dseg.")
        labels = rounded
    if labels.min() < 0:
        raise SemantoksError(f"{path}: holds negative labels; a dseg uses 0 for background and 1..N for parcels.")
    return labels.astype(LABEL_DTYPE)


def label_image(data, affine, code=2):
    """A fresh int32 NIfTI with the same affine in sform and qform, so every reader agrees on positions."""
    image = nib.Nifti1Image(np.asarray(data, dtype=LABEL_DTYPE), np.asarray(affine, dtype=float))
    image.header.set_data_dtype(LABEL_DTYPE)
    image.set_sform(affine, code=int(code))
    image.set_qform(affine, code=int(code))
    image.header.set_xyzt_units("mm")
    return image


def label_data(image):
    return np.asarray(image.dataobj, dtype=LABEL_DTYPE)


def xform_code(image):
    header = image.header
    return int(header["sform_code"]) or int(header["qform_code"]) or 2


def present_labels(image):
    """Sorted non-zero label values found in the volume."""
    values = np.unique(label_data(image))
    return values[values != 0]


def check_labels_match(image, table, dseg_path, table_path, require_all):
    """Every label in the volume must be in the table (and, if `require_all`, every table row in the volume)."""
    present = set(present_labels(image).tolist())
    listed = set(table["index"].tolist())
    unlisted = sorted(present - listed)
    if unlisted:
        raise SemantoksError(
            f"{dseg_path}: label value(s) {unlisted[:5]} have no row in {table_path}; add them to the table "
            "or use the matching label table.")
    empty = sorted(listed - present)
    if require_all and empty:
        raise SemantoksError(
            f"{table_path}: label value(s) {empty[:5]} have no voxel in {dseg_path}; drop those rows or "
            "use the matching volume.")


def label_centroids(image, indices):
    """World (mm) centroid of each label in `indices`; NaN rows for labels with no voxels."""
    data = label_data(image).ravel()
    indices = np.asarray(indices, dtype=np.int64)
    size = max(int(data.max()), int(indices.max(initial=0))) + 1
    counts = np.bincount(data, minlength=size).astype(float)
    voxel_axes = np.unravel_index(np.arange(data.size), image.shape[:3])
    sums = np.stack([np.bincount(data, weights=axis, minlength=size) for axis in voxel_axes], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        voxel_centroids = sums[indices] / counts[indices, None]
    return nib.affines.apply_affine(image.affine, voxel_centroids)
