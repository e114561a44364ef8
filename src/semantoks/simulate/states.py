"""Coupling states that only the order of time can reveal: the planted `state_order` effect.

Two networks' coupling cycles through three states (delta +d, 0, -d on their correlation) with the same
dwell-time law for everyone; the phenotype sets the cycle's direction. The stationary forward process
read backwards is the reverse process, so any statistic that is the same for a series and its time reversal
(time-averaged FC, power spectra, ALFF, fALFF, autocorrelation, 1/f slope) has the same distribution in both
groups by construction; only what depends on the direction of time (which state follows which) differs.
"""

import numpy as np

N_STATES = 3
# smallest eigenvalue a state's coupling may have (the planned couplings are floored at 0.05)
MIN_EIGENVALUE = 0.02
ORDERS = ("forward", "reverse")


def state_couplings(coupling, networks, params):
    """The three (K, K) correlation matrices of the states: `coupling` with each delta added to the state pair.

    For the few subjects whose jittered coupling leaves less room, the deltas shrink (by the same factor in
    every state, independently of `state_order`) until each state's smallest eigenvalue is MIN_EIGENVALUE.
    """
    i, j = (networks.index(name) for name in params.state_networks)
    base = np.array(coupling, dtype=np.float64)

    def matrices(scale):
        shifted = []
        for delta in params.state_coupling_deltas:
            matrix = base.copy()
            matrix[i, j] += scale * delta
            matrix[j, i] += scale * delta
            shifted.append(matrix)
        return shifted

    def valid(scale):
        return min(np.linalg.eigvalsh(m).min() for m in matrices(scale)) >= MIN_EIGENVALUE

    low, high = 0.0, 1.0
    if not valid(high):
        for _ in range(30):
            middle = (low + high) / 2
            low, high = (middle, high) if valid(middle) else (low, middle)
        high = low
    return matrices(high)


def state_sequence(rng, n_time, tr, dwell_s, order):
    """(n_time,) state index per frame: a stationary cycle 0->1->2 (`forward`) or 0->2->1 (`reverse`).

    Dwell times are uniform whole frames in `dwell_s`; the first dwell is length-biased with a uniform offset,
    which makes the sequence stationary, so reversing a forward sequence gives a reverse one in law.
    """
    low, high = (max(1, int(round(seconds / tr))) for seconds in dwell_s)
    lengths = np.arange(low, high + 1)
    step = 1 if order == "forward" else -1
    first = int(rng.choice(lengths, p=lengths / lengths.sum()))
    remaining = first - int(rng.integers(first))
    state = int(rng.integers(N_STATES))
    states = []
    while len(states) < n_time:
        states.extend([state] * remaining)
        state = (state + step) % N_STATES
        remaining = int(rng.integers(low, high + 1))
    return np.asarray(states[:n_time])


def switch_states(latents, coupling, couplings, states):
    """Unit-variance latents (T, K) re-coupled frame by frame to `couplings[states[t]]`.

    Only the networks whose coupling differs between states change: each is rebuilt from the unchanged
    networks (same regression weights in every state) plus its own innovation mixed by the state's
    conditional covariance, so every other network's series is exactly what it was.
    """
    coupling = np.asarray(coupling, dtype=np.float64)
    differs = np.any([np.abs(np.asarray(c) - coupling) > 0 for c in couplings], axis=(0, 1))
    moved, kept = np.flatnonzero(differs), np.flatnonzero(~differs)
    weights = np.linalg.solve(coupling[np.ix_(kept, kept)], coupling[np.ix_(kept, moved)]).T
    predicted = latents[:, kept] @ weights.T
    base = np.linalg.cholesky(_conditional(coupling, weights, moved, kept))
    innovation = np.linalg.solve(base, (latents[:, moved] - predicted).T).T
    switched = latents.copy()
    for k, matrix in enumerate(couplings):
        frames = states == k
        mixing = np.linalg.cholesky(_conditional(np.asarray(matrix), weights, moved, kept))
        switched[np.ix_(frames, moved)] = predicted[frames] + innovation[frames] @ mixing.T
    return switched


def _conditional(matrix, weights, moved, kept):
    return matrix[np.ix_(moved, moved)] - weights @ matrix[np.ix_(kept, moved)]
