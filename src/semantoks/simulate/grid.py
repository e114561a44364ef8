"""The simulated BOLD grid: brain mask, parcels, tissue classes and baseline intensity from the atlas."""

import dataclasses

import numpy as np
from scipy import ndimage

from semantoks.errors import SemantoksError
from semantoks.simulate.params import NETWORKS, SimulationParams

CORTEX, WM, CSF, OUTSIDE = 0, 1, 2, -1
TISSUES = ("cortex", "wm", "csf")
# lateral ventricles as ellipsoids in MNI mm (centre, radii), filled with CSF inside the brain
VENTRICLES = (((-12.0, -10.0, 16.0), (7.0, 26.0, 10.0)), ((12.0, -10.0, 16.0), (7.0, 26.0, 10.0)))
# Yeo-17 (and a few spellings) onto the latent networks; anything else has no latent (parcel noise only)
NETWORK_FAMILIES = {"VisCent": "Vis", "VisPeri": "Vis", "TempPar": "Default"}


@dataclasses.dataclass(frozen=True, eq=False)
class SimulationGrid:
    """Voxels of the brain mask in C order, each with its parcel, tissue and position."""

    affine: np.ndarray
    shape: tuple
    mask: np.ndarray
    parcel: np.ndarray
    tissue: np.ndarray
    coords: np.ndarray
    baseline: np.ndarray
    gradient: np.ndarray
    edge: np.ndarray
    wm_signal: np.ndarray
    csf_signal: np.ndarray
    parcel_latent: np.ndarray

    @property
    def n_voxels(self):
        return int(self.parcel.size)

    def volume(self, values, fill=0):
        """Scatter per-voxel values (..., V) into a (X, Y, Z, ...) array."""
        values = np.asarray(values)
        out = np.full(self.shape + values.shape[:-1], fill, dtype=values.dtype)
        out[self.mask] = np.moveaxis(values, -1, 0)
        return out


def latent_network(name):
    """The latent network index of an atlas network name, or -1 for none."""
    name = str(name)
    name = NETWORK_FAMILIES.get(name, name)
    if name not in NETWORKS and name[-1:] in ("A", "B", "C"):
        name = name[:-1]
    return NETWORKS.index(name) if name in NETWORKS else -1


def bold_grid(atlas_img, resolution_mm):
    """Affine and shape of a `resolution_mm` grid over the atlas field of view, sharing its first voxel centre."""
    affine = np.asarray(atlas_img.affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    target = affine.copy()
    target[:3, :3] = affine[:3, :3] / spacing * float(resolution_mm)
    extent = (np.asarray(atlas_img.shape[:3]) - 1) * spacing
    shape = tuple(int(n) for n in np.floor(extent / float(resolution_mm) + 1e-6).astype(int) + 1)
    return target, shape


def build_grid(atlas_img, labels, resolution_mm, params=None):
    """Mask, parcels and tissues of the simulated BOLD grid (nearest neighbour from the atlas)."""
    params = params or SimulationParams()
    atlas = np.asarray(atlas_img.dataobj)
    if atlas.ndim == 4 and atlas.shape[3] == 1:
        atlas = atlas[..., 0]
    if atlas.ndim != 3:
        raise SemantoksError(f"atlas image has shape {atlas.shape}; give the simulator a 3D label volume.")
    positions = _label_positions(atlas, labels)
    brain = _fill_brain(positions >= 0)
    affine, shape = bold_grid(atlas_img, resolution_mm)
    ijk = np.indices(shape).reshape(3, -1).T
    source = _nearest_voxels(affine, np.linalg.inv(atlas_img.affine), ijk, atlas.shape)
    parcel_volume = positions[tuple(source.T)].reshape(shape)
    inside = brain[tuple(source.T)].reshape(shape)
    mask = ndimage.binary_dilation(inside, structure=ndimage.generate_binary_structure(3, 1))
    if not mask.any():
        raise SemantoksError("atlas image has no labelled voxels that match its label table; check the atlas files.")
    tissue_volume, ventricles = _tissues(mask, parcel_volume >= 0, affine)
    baseline_volume, edge_volume = _baseline(mask, tissue_volume, dict(params.baseline))
    gradient_volume = _world_gradient(baseline_volume, affine)
    coords = (affine @ np.c_[np.argwhere(mask), np.ones(int(mask.sum()))].T)[:3].T
    tissue = tissue_volume[mask]
    # fMRIPrep averages eroded tissue masks: deep white matter and the ventricles, away from partial volume
    wm_core = (tissue_volume == WM) & ~ndimage.binary_dilation(tissue_volume != WM, structure=np.ones((3, 3, 3)))
    csf_core = ventricles & ~edge_volume
    wm_signal = wm_core[mask] if wm_core[mask].sum() >= 20 else tissue == WM
    csf_signal = csf_core[mask] if csf_core[mask].sum() >= 10 else tissue == CSF
    return SimulationGrid(
        affine=affine,
        shape=shape,
        mask=mask,
        parcel=parcel_volume[mask].astype(np.int64),
        tissue=tissue,
        coords=coords,
        baseline=baseline_volume[mask],
        gradient=gradient_volume[mask],
        edge=edge_volume[mask],
        wm_signal=wm_signal,
        csf_signal=csf_signal,
        parcel_latent=np.array([latent_network(name) for name in labels["network"]], dtype=np.int64),
    )


def _label_positions(atlas, labels):
    values = np.asarray(labels["index"], dtype=np.int64)
    lookup = np.full(int(max(values.max(), atlas.max())) + 1, -1, dtype=np.int64)
    lookup[values] = np.arange(values.size)
    integer = np.rint(atlas).astype(np.int64)
    return np.where(integer > 0, lookup[np.clip(integer, 0, None)], -1)


def _fill_brain(labelled):
    """Close the cortical ribbon and fill it slice by slice, so white matter and ventricles are inside."""
    brain = ndimage.binary_closing(labelled, structure=ndimage.generate_binary_structure(3, 1), iterations=3)
    brain = ndimage.binary_fill_holes(brain | labelled)
    for axis in range(3):
        for index in range(brain.shape[axis]):
            plane = [slice(None)] * 3
            plane[axis] = index
            brain[tuple(plane)] = ndimage.binary_fill_holes(brain[tuple(plane)])
    return brain


def _nearest_voxels(affine, inverse_source, ijk, source_shape):
    world = ijk.astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]
    source = np.rint(world @ inverse_source[:3, :3].T + inverse_source[:3, 3]).astype(np.int64)
    return np.clip(source, 0, np.asarray(source_shape) - 1)


def _tissues(mask, labelled, affine):
    tissue = np.where(mask, WM, OUTSIDE).astype(np.int8)
    tissue[labelled & mask] = CORTEX
    shell = mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))
    world = (affine @ np.c_[np.indices(mask.shape).reshape(3, -1).T, np.ones(mask.size)].T)[:3].T
    ventricles = np.zeros(mask.size, dtype=bool)
    for centre, radii in VENTRICLES:
        ventricles |= (((world - centre) / radii) ** 2).sum(axis=1) <= 1.0
    ventricles = ventricles.reshape(mask.shape) & mask & ~labelled
    tissue[(shell & ~labelled) | ventricles] = CSF
    return tissue, ventricles


def _baseline(mask, tissue, levels):
    """Tissue intensities smoothed within the mask; the outermost layer dimmed by partial volume."""
    raw = np.zeros(mask.shape)
    for code, name in enumerate(TISSUES):
        raw[(tissue == code) & mask] = levels[name]
    weight = ndimage.gaussian_filter(mask.astype(float), 0.6)
    smooth = ndimage.gaussian_filter(raw, 0.6) / np.maximum(weight, 1e-6)
    edge = mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3, 3)))
    smooth = np.where(edge, 0.8 * smooth, smooth)
    return np.where(mask, smooth, 0.0), edge


def _world_gradient(volume, affine):
    """Spatial gradient (intensity per mm, world axes) of a volume; zero outside is a sharp brain edge."""
    by_index = np.stack(np.gradient(volume), axis=-1)
    return by_index @ np.linalg.inv(affine[:3, :3])
