"""Head motion: six rigid-body parameters as random walks with spikes, and the summaries fMRIPrep reports."""

import numpy as np

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
POWER_RADIUS_MM = 50.0
JENKINSON_RADIUS_MM = 80.0


def simulate_motion(rng, n_volumes, tr, heavy, params, scale=1.0):
    """(n_volumes, 6): trans_x/y/z in mm, rot_x/y/z in rad, relative to a reference volume."""
    prefix = "heavy_" if heavy else ""
    step_trans, step_rot = (getattr(params, prefix + name) for name in ("step_trans_mm", "step_rot_rad"))
    spike_rate, spike_trans, spike_rot = (
        getattr(params, prefix + name) for name in ("spike_rate", "spike_trans_mm", "spike_rot_rad"))
    step_sd = scale * np.array([step_trans] * 3 + [step_rot] * 3)
    steps = rng.normal(0.0, 1.0, size=(n_volumes, 6)) * step_sd
    steps[0] = 0.0
    motion = np.cumsum(steps, axis=0)
    # slow sinking and nodding over the run
    ramp = np.linspace(0.0, 1.0, n_volumes)
    motion[:, 2] += rng.normal(0.0, 8 * scale * step_trans) * ramp
    motion[:, 3] += rng.normal(0.0, 8 * scale * step_rot) * ramp
    spike_sd = scale * np.array([spike_trans] * 3 + [spike_rot] * 3)
    for start in np.flatnonzero(rng.random(n_volumes) < spike_rate):
        jump = rng.normal(0.0, 1.0, size=6) * spike_sd
        stay = int(rng.integers(1, 4))
        back = rng.uniform(0.5, 1.0)
        motion[max(start, 1):] += jump
        motion[max(start, 1) + stay:] -= back * jump
    # breathing moves the image along the phase-encoding axis at an aliased frequency
    breathing = rng.uniform(0.25, 0.35)
    aliased = abs(breathing - round(breathing * tr) / tr)
    phase = rng.uniform(0.0, 2 * np.pi)
    motion[:, 1] += params.respiration_trans_y_mm * np.sin(2 * np.pi * aliased * tr * np.arange(n_volumes) + phase)
    return motion - np.median(motion, axis=0)


def framewise_displacement(motion, radius=POWER_RADIUS_MM):
    """Power et al. 2012: sum of absolute frame-to-frame changes, rotations as arc length on a sphere; first NaN."""
    delta = np.abs(np.diff(motion, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius * delta[:, 3:].sum(axis=1)
    return np.r_[np.nan, fd]


def rigid_matrices(motion):
    """(T, 4, 4) rigid transforms from the six parameters (rotation about x, then y, then z)."""
    cx, cy, cz = np.cos(motion[:, 3:]).T
    sx, sy, sz = np.sin(motion[:, 3:]).T
    n = len(motion)
    rx, ry, rz = (np.tile(np.eye(3), (n, 1, 1)) for _ in range(3))
    rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = cx, -sx, sx, cx
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 2, 0], ry[:, 2, 2] = cy, sy, -sy, cy
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = cz, -sz, sz, cz
    matrices = np.tile(np.eye(4), (n, 1, 1))
    matrices[:, :3, :3] = rz @ ry @ rx
    matrices[:, :3, 3] = motion[:, :3]
    return matrices


def relative_rms(motion, radius=JENKINSON_RADIUS_MM):
    """Jenkinson 1999 RMS deviation between consecutive volumes over a sphere of `radius` mm; first NaN."""
    matrices = rigid_matrices(motion)
    relative = matrices[1:] @ np.linalg.inv(matrices[:-1])
    a = relative[:, :3, :3] - np.eye(3)
    t = relative[:, :3, 3]
    squared = radius**2 / 5.0 * np.einsum("nij,nij->n", a, a) + (t**2).sum(axis=1)
    return np.r_[np.nan, np.sqrt(squared)]
