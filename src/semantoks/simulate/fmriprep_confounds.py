"""An fMRIPrep (>= 21) confounds table computed from the simulated voxels, with its CompCor JSON sidecar."""

import numpy as np
import pandas as pd

from semantoks.simulate.motion import MOTION_COLUMNS, relative_rms

HIGH_PASS_PERIOD_S = 128.0
COMPCOR_VARIANCE = 0.5
TCOMPCOR_FRACTION = 0.02
N_TCOMPCOR = 6
FD_SPIKE_MM = 0.5
DVARS_SPIKE = 1.5
DVARS_SCALE = 1000.0
COMPCOR_MASKS = (("c", "CSF"), ("w", "WM"), ("a", "combined"))
# fMRIPrep's own suffix order for tissue signals and for motion parameters
SIGNAL_SUFFIXES = ("derivative1", "derivative1_power2", "power2")
MOTION_SUFFIXES = ("derivative1", "power2", "derivative1_power2")


def confounds_table(run_data, grid, run):
    """(table, sidecar): the columns fMRIPrep writes for one run, computed from the voxels, first row n/a."""
    voxels = run_data.data.astype(np.float64)
    n_dummy = run.n_dummy
    cosines = cosine_basis(run.n_volumes - n_dummy, run.tr)
    roi = {"CSF": grid.csf_signal, "WM": grid.wm_signal, "combined": grid.csf_signal | grid.wm_signal}
    columns, sidecar = {}, {}
    for name, selection in (("global_signal", slice(None)), ("csf", roi["CSF"]), ("white_matter", roi["WM"])):
        columns.update(_expanded(name, voxels[:, selection].mean(axis=1), SIGNAL_SUFFIXES))
    columns["csf_wm"] = voxels[:, roi["combined"]].mean(axis=1)
    steady = _high_passed(voxels[n_dummy:], cosines)
    top_variance = _top_variance_voxels(steady)
    columns["tcompcor"] = voxels[:, top_variance].mean(axis=1)
    dvars, std_dvars = standardized_dvars(voxels)
    columns["std_dvars"], columns["dvars"] = std_dvars, dvars
    columns["framewise_displacement"] = run_data.framewise_displacement
    columns["rmsd"] = relative_rms(run_data.motion)
    _add_compcor(columns, sidecar, steady, top_variance, roi, n_dummy)
    for k in range(cosines.shape[1]):
        columns[f"cosine{k:02d}"] = _pad(cosines[:, k], n_dummy)
    for k in range(n_dummy):
        columns[f"non_steady_state_outlier{k:02d}"] = _one_hot(run.n_volumes, k)
    for index, name in enumerate(MOTION_COLUMNS):
        columns.update(_expanded(name, run_data.motion[:, index], MOTION_SUFFIXES))
    fd = np.nan_to_num(run_data.framewise_displacement)
    spikes = np.flatnonzero((fd > FD_SPIKE_MM) | (np.nan_to_num(std_dvars) > DVARS_SPIKE))
    for k, frame in enumerate(spikes):
        columns[f"motion_outlier{k:02d}"] = _one_hot(run.n_volumes, frame)
    return pd.DataFrame(columns), sidecar


def _add_compcor(columns, sidecar, steady, top_variance, roi, n_dummy):
    """tCompCor (6 components) and aCompCor per mask (50 % of the variance), JSON entries for all."""
    components, singular, explained = _components(steady[:, top_variance])
    for k in range(min(N_TCOMPCOR, components.shape[1])):
        name = f"t_comp_cor_{k:02d}"
        columns[name] = _pad(components[:, k], n_dummy)
        sidecar[name] = _component_entry("tCompCor", None, singular, explained, k, True)
    dropped = 0
    for prefix, mask_name in COMPCOR_MASKS:
        components, singular, explained = _components(steady[:, roi[mask_name]])
        n_retained = int(np.searchsorted(np.cumsum(explained), COMPCOR_VARIANCE) + 1)
        for k in range(components.shape[1]):
            retained = k < n_retained
            name = f"{prefix}_comp_cor_{k:02d}" if retained else f"dropped_{dropped}"
            dropped += not retained
            if retained:
                columns[name] = _pad(components[:, k], n_dummy)
            sidecar[name] = _component_entry("aCompCor", mask_name, singular, explained, k, retained)


def cosine_basis(n_frames, tr, period=HIGH_PASS_PERIOD_S):
    """(n_frames, K) discrete cosine regressors for a `period`-second high-pass, as fMRIPrep's cosineXX."""
    order = int(np.floor(2.0 * n_frames * tr / period))
    frames = np.arange(n_frames)
    columns = [np.sqrt(2.0 / n_frames) * np.cos(np.pi / n_frames * (frames + 0.5) * k) for k in range(1, order)]
    return np.stack(columns, axis=1) if columns else np.zeros((n_frames, 0))


def standardized_dvars(voxels):
    """(dvars, std_dvars) after scaling the median voxel mean to 1000; std_dvars divides by the AR(1) null."""
    scaled = voxels * (DVARS_SCALE / np.median(voxels.mean(axis=0)))
    dvars = np.sqrt((np.diff(scaled, axis=0) ** 2).mean(axis=1))
    quartiles = np.percentile(scaled, [25, 75], axis=0)
    robust_sd = (quartiles[1] - quartiles[0]) / 1.349
    centred = scaled - scaled.mean(axis=0)
    denominator = np.maximum((centred**2).sum(axis=0), 1e-12)
    lag_one = np.clip((centred[1:] * centred[:-1]).sum(axis=0) / denominator, -1.0, 1.0)
    expected = np.mean(robust_sd * np.sqrt(2.0 * (1.0 - lag_one)))
    return np.r_[np.nan, dvars], np.r_[np.nan, dvars / expected]


def format_table(table):
    """Strings as fMRIPrep writes them: six significant digits, `n/a` for missing."""
    text = {}
    for name, values in table.items():
        values = values.to_numpy(dtype=np.float64)
        formatted = np.char.mod("%.6g", values).astype(object)
        formatted[np.isnan(values)] = "n/a"
        text[name] = formatted
    return pd.DataFrame(text)


def _expanded(name, values, suffixes):
    derivative = np.r_[np.nan, np.diff(values)]
    options = {"derivative1": derivative, "power2": values**2, "derivative1_power2": derivative**2}
    return {name: values, **{f"{name}_{suffix}": options[suffix] for suffix in suffixes}}


def _high_passed(voxels, cosines):
    # the cosines are orthonormal and orthogonal to the constant, so projecting them out is the regression
    basis = np.c_[np.full(len(voxels), 1.0 / np.sqrt(len(voxels))), cosines]
    return voxels - basis @ (basis.T @ voxels)


def _top_variance_voxels(steady):
    variance = steady.var(axis=0)
    n_top = max(10, int(round(TCOMPCOR_FRACTION * variance.size)))
    return np.sort(np.argsort(variance, kind="stable")[-n_top:])


def _components(steady):
    """Left singular vectors of the variance-normalised noise-ROI series, signs fixed, with variance shares."""
    sd = steady.std(axis=0)
    normalised = steady[:, sd > 0] / sd[sd > 0]
    # eigenvectors of the small time-by-time Gram matrix are the left singular vectors, far cheaper than an SVD
    eigenvalues, vectors = np.linalg.eigh(normalised @ normalised.T)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
    keep = eigenvalues > eigenvalues[0] * 1e-10
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])])
    return vectors * np.where(signs == 0, 1.0, signs), np.sqrt(eigenvalues), eigenvalues / eigenvalues.sum()


def _component_entry(method, mask, singular, explained, k, retained):
    entry = {
        "CumulativeVarianceExplained": float(np.cumsum(explained)[k]),
        "Method": method,
        "Retained": bool(retained),
        "SingularValue": float(singular[k]),
        "VarianceExplained": float(explained[k]),
    }
    if mask is not None:
        entry["Mask"] = mask
    return dict(sorted(entry.items()))


def _pad(values, n_dummy):
    # fMRIPrep leaves non-steady-state volumes out of CompCor and cosines and writes 0 there
    return np.r_[np.zeros(n_dummy), values]


def _one_hot(n_volumes, frame):
    column = np.zeros(n_volumes)
    column[frame] = 1.0
    return column
