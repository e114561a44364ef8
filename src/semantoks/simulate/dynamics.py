"""Per-network dynamics of parcel time series: what the planted spectral-exponent effects change.

Both measures are scale-free, so they survive per-parcel z-scoring: the lag-1 autocorrelation of
each network's mean series (pairs of consecutive kept frames only, so censoring gaps are not
bridged) and the share of its 0.01-0.1 Hz periodogram power below the band's geometric centre.
The sliding-window coupling measures read the planted `state_order` effect (simulate/states.py).
"""

import numpy as np

from semantoks.simulate.params import SimulationParams

BAND_HZ = SimulationParams().band_hz


def network_dynamics(series, parcel_network, tr, frames=None, networks=None):
    """{network: (lag-1 autocorrelation, slow-power fraction)} of a [frames, parcels] series.

    `frames` are the kept frames' indices in the original run (default: consecutive);
    NaN parcels (outside the mask) are left out of their network's mean.
    """
    series = np.asarray(series, dtype=np.float64)
    parcel_network = np.asarray(parcel_network)
    frames = np.arange(len(series)) if frames is None else np.asarray(frames)
    consecutive = np.flatnonzero(np.diff(frames) == 1)
    result = {}
    for network in networks or list(dict.fromkeys(parcel_network)):
        members = series[:, parcel_network == network]
        members = members[:, np.isfinite(members).all(axis=0)]
        if members.shape[1] == 0:
            result[network] = (np.nan, np.nan)
            continue
        mean = members.mean(axis=1)
        mean = mean - mean.mean()
        lag1 = np.corrcoef(mean[consecutive], mean[consecutive + 1])[0, 1]
        result[network] = (float(lag1), slow_fraction(mean, tr))
    return result


def slow_fraction(x, tr, band_hz=BAND_HZ):
    """Share of the band's periodogram power below its geometric centre (censoring gaps closed, as the model sees them)."""
    freqs = np.fft.rfftfreq(len(x), d=tr)
    power = np.abs(np.fft.rfft(x - x.mean())) ** 2
    in_band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    slow = in_band & (freqs < np.sqrt(band_hz[0] * band_hz[1]))
    total = power[in_band].sum()
    return float(power[slow].sum() / total) if total > 0 else float("nan")


def windowed_correlation(first, second, window):
    """Correlation of two series in every window of `window` consecutive frames (length T - window + 1)."""
    pairs = np.lib.stride_tricks.sliding_window_view(np.c_[first, second], window, axis=0)
    centred = pairs - pairs.mean(axis=2, keepdims=True)
    cross = (centred[:, 0] * centred[:, 1]).sum(axis=1)
    return cross / np.sqrt((centred[:, 0] ** 2).sum(axis=1) * (centred[:, 1] ** 2).sum(axis=1))


def coupling_order_asymmetry(first, second, tr, window_s=30.0, lag_s=40.0):
    """Skewness of the change of the sliding-window coupling over `lag_s`: the planted `state_order` statistic.

    A forward cycle (strong -> none -> negative -> strong) falls in two steps and rises in one jump (> 0);
    a reverse cycle rises in two steps and falls in one (< 0). Reversing time flips its sign, which no
    time-averaged FC or spectral measure can do.
    """
    window, lag = max(3, int(round(window_s / tr))), max(1, int(round(lag_s / tr)))
    correlation = windowed_correlation(first, second, window)
    change = correlation[lag:] - correlation[:-lag]
    if len(change) < 3:
        return float("nan")
    return float(np.mean(change**3) / np.mean(change**2) ** 1.5)


def coupling_states(first, second, window):
    """Sliding-window coupling state per window: 0 / 1 / 2 for the run's lowest / middle / highest third."""
    correlation = windowed_correlation(first, second, window)
    return np.searchsorted(np.quantile(correlation, [1 / 3, 2 / 3]), correlation)


def state_transitions(states, min_dwell=1):
    """(forward, reverse, mean dwell) of a state sequence, forward being high -> middle -> low -> high.

    Visits shorter than `min_dwell` windows are dropped first: a noisy trace flickers across a threshold,
    which adds as many reverse as forward steps and hides the order of the real visits.
    """
    starts = np.r_[0, np.flatnonzero(np.diff(states) != 0) + 1]
    lengths = np.diff(np.r_[starts, len(states)])
    visits = states[starts][lengths >= min_dwell]
    visits = visits[np.r_[True, np.diff(visits) != 0]] if len(visits) else visits
    steps = np.diff(visits) % 3
    return int((steps == 2).sum()), int((steps == 1).sum()), len(states) / max(1, len(visits))
