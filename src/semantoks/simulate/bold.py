"""Voxel time series of one simulated run: neural signal, physiology, drift, motion artifacts, thermal noise."""

import dataclasses

import numpy as np

from semantoks.simulate import signals
from semantoks.simulate.grid import CORTEX
from semantoks.simulate.motion import framewise_displacement, simulate_motion
from semantoks.simulate.plan import ANATOMY_STREAM, RUN_STREAM, STATE_STREAM, rng_for
from semantoks.simulate.states import state_couplings, state_sequence

INT16_MAX = np.iinfo(np.int16).max


@dataclasses.dataclass(frozen=True, eq=False)
class SubjectAnatomy:
    """What stays fixed across a subject's runs: loadings, per-voxel gains, bias field."""

    loadings: np.ndarray
    neural_gain: np.ndarray
    physio_gain: np.ndarray
    spin_history: np.ndarray
    baseline: np.ndarray
    motion_gain: np.ndarray
    motion_scale: float


@dataclasses.dataclass(frozen=True, eq=False)
class RunData:
    """A simulated run: int16 voxel data (T, V) of the mask, and its true motion."""

    data: np.ndarray
    motion: np.ndarray
    framewise_displacement: np.ndarray


def subject_anatomy(plan, subject, grid):
    params = plan.params
    rng = rng_for(plan.seed, ANATOMY_STREAM, subject.number)
    n_parcels, n_voxels = grid.parcel_latent.size, grid.n_voxels
    loadings = rng.uniform(*params.loading_range, size=n_parcels)
    neural_gain = np.clip(1.0 + rng.normal(0.0, params.voxel_gain_sd, size=n_voxels), 0.2, None)
    tissue_levels = np.array([params.systemic_percent, params.pulsation_percent]).T
    physio_gain = tissue_levels[grid.tissue] * np.exp(rng.normal(0.0, params.physio_gain_sd, size=(n_voxels, 2)))
    spin_history = rng.uniform(0.5, 1.5, size=n_voxels) * (1.0 + grid.edge)
    unit_coords = (grid.coords - grid.coords.mean(axis=0)) / 80.0
    bias_terms = np.c_[np.ones(n_voxels), unit_coords, unit_coords**2]
    bias = np.exp(bias_terms @ rng.normal(0.0, params.bias_field_sd, size=bias_terms.shape[1]))
    baseline = grid.baseline * bias
    # moving the head by d changes a voxel's intensity by -grad(B).d; rotations move voxels by w x r
    gradient = grid.gradient * bias[:, None]
    arm = grid.coords - grid.coords.mean(axis=0)
    motion_gain = -np.hstack([gradient, np.cross(arm, gradient)]).T * params.motion_residual
    motion_scale = float(np.exp(rng.normal(0.0, params.subject_motion_sd)))
    return SubjectAnatomy(loadings, neural_gain, physio_gain, spin_history, baseline, motion_gain, motion_scale)


def simulate_run_data(plan, subject, run, grid, anatomy):
    """The int16 voxel data of `run` (deterministic per seed, subject and run)."""
    params = plan.params
    rng = rng_for(plan.seed, RUN_STREAM, subject.number, run.order)
    n_time, tr = run.n_volumes, run.tr
    scale = max(1.0, anatomy.motion_scale) if run.heavy_motion else anatomy.motion_scale
    motion = simulate_motion(rng, n_time, tr, run.heavy_motion, params, scale)
    fd = framewise_displacement(motion)
    latents = run_latents(plan, subject, run, rng)
    parcels = signals.parcel_signals(rng, latents, anatomy.loadings, grid.parcel_latent, tr, params)
    physio = signals.physiological_sources(rng, n_time, tr, params)
    drift_weights = _drift_weights(rng, grid, params.drift_percent)

    percent = (physio @ anatomy.physio_gain.T).astype(np.float32)
    percent += (signals.drift_basis(n_time) @ drift_weights).astype(np.float32)
    cortex = np.flatnonzero(grid.tissue == CORTEX)
    neural = params.neural_percent * parcels[:, grid.parcel[cortex]] * anatomy.neural_gain[cortex]
    percent[:, cortex] += neural.astype(np.float32)

    baseline = anatomy.baseline.astype(np.float32)
    data = baseline * (1.0 + percent / 100.0)
    data += (motion @ anatomy.motion_gain).astype(np.float32)
    recovery = np.nan_to_num(fd) + 0.5 * np.r_[0.0, np.nan_to_num(fd)[:-1]]
    spin = params.spin_history_percent_per_mm / 100.0 * baseline * anatomy.spin_history.astype(np.float32)
    data -= recovery.astype(np.float32)[:, None] * spin
    steady = 1.0 + params.dummy_brightening * 0.35 ** np.arange(run.n_dummy)
    data[: run.n_dummy] *= steady.astype(np.float32)[:, None]
    thermal_sd = params.thermal_percent / 100.0 * baseline
    if subject.site == "B":
        thermal_sd = thermal_sd * params.site_b_thermal_factor
    data += rng.standard_normal((n_time, grid.n_voxels), dtype=np.float32) * thermal_sd
    quantised = np.clip(np.rint(data), 0, INT16_MAX).astype(np.int16)
    return RunData(quantised, motion, fd)


def run_latents(plan, subject, run, rng):
    """(T, K) network latents of one run: coupling, amplitudes, spectral exponents and coupling states planted."""
    params = plan.params
    # the state sequence has its own stream, so the run's other draws are what they were before it existed
    states = state_sequence(rng_for(plan.seed, STATE_STREAM, subject.number, run.order), run.n_volumes, run.tr,
                            params.state_dwell_s, subject.state_order)
    return signals.network_latents(
        rng, run.n_volumes, run.tr, subject.coupling, subject.amplitude, params.band_hz, subject.exponent,
        states=states, couplings=state_couplings(subject.coupling, plan.networks, params))


def _drift_weights(rng, grid, drift_percent):
    """(2, V) smooth spatial weights of the linear and quadratic drift, in percent."""
    unit_coords = (grid.coords - grid.coords.mean(axis=0)) / 80.0
    terms = np.c_[np.ones(grid.n_voxels), unit_coords]
    coefficients = rng.normal(0.0, 1.0, size=(terms.shape[1], 2)) * np.array([[1.0], [0.5], [0.5], [0.5]])
    return drift_percent * (terms @ coefficients).T

