"""Per-network dynamics of parcel time series: what the planted spectral-exponent effects change.

Both measures are scale-free, so they survive per-parcel z-scoring: the lag-1 autocorrelation of
each network's mean series (pairs of consecutive kept frames only, so censoring gaps are not
bridged) and the share of its 0.01-0.1 Hz periodogram power below the band's geometric centre.
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
