"""Space and grid checks between a BOLD run and the atlas."""

import numpy as np

from semantoks.atlas.images import label_image, xform_code
from semantoks.errors import SemantoksError


def check_space(bold_space, atlas_space, bold_path):
    """Refuse a BOLD run whose template space differs from the atlas's: resampling cannot fix that."""
    if bold_space != atlas_space:
        raise SemantoksError(
            f"{bold_path} is in space {bold_space} but the atlas is in {atlas_space}; set atlas.space: "
            f"{bold_space} in config.yaml, or run fMRIPrep with --output-spaces {atlas_space}.")


def same_grid(image, reference):
    """True when both volumes share shape (first three axes) and affine."""
    return image.shape[:3] == reference.shape[:3] and np.allclose(image.affine, reference.affine, atol=1e-4)


def resample_to_grid(atlas_img, reference_img):
    """The atlas on the reference's voxel grid (same space), nearest neighbour so labels stay labels."""
    if same_grid(atlas_img, reference_img):
        return atlas_img
    # imported here: nilearn.image takes about a second to import, and jobs that only read atlases never resample
    from nilearn.image import resample_to_img

    resampled = resample_to_img(
        atlas_img, reference_img, interpolation="nearest", force_resample=True, copy_header=True)
    return label_image(np.rint(np.asarray(resampled.dataobj)), resampled.affine, xform_code(atlas_img))
