"""Dynamics of one network-mean series: ALFF, fALFF, lag-1 autocorrelation, log-PSD bins and the 1/f slope.

One implementation for the `dynamics` probe baseline and the language descriptors (language/measures.py).
Bands are in Hz, so scans of different TRs share the same columns.
"""

import numpy as np
from scipy.signal import welch

from semantoks.features.connectivity import network_membership, usable_parcels

MIN_FRAMES = 20
ALFF_BAND = (0.01, 0.08)  # the classic fALFF band (Zou et al. 2008)
PSD_EDGES = tuple(np.geomspace(0.01, 0.15, 5))  # four log-spaced bins below the Nyquist of a 3 s TR
SLOPE_BAND = (PSD_EDGES[0], PSD_EDGES[-1])
MEASURES = ("alff", "falff", "autocorr", *(f"logpsd{i + 1}" for i in range(len(PSD_EDGES) - 1)), "slope")


def welch_psd(series, tr):
    """(frequencies in Hz, power) of a centred series by Welch's method with half-length segments."""
    x = np.asarray(series, dtype=np.float64)
    return welch(x - x.mean(), fs=1.0 / tr, nperseg=max(MIN_FRAMES, len(x) // 2))


def amplitude_spectrum(series, tr):
    """(frequencies in Hz, |FFT|) of a centred series."""
    x = np.asarray(series, dtype=np.float64)
    return np.fft.rfftfreq(len(x), d=tr), np.abs(np.fft.rfft(x - x.mean()))


def alff(series, tr, band=ALFF_BAND):
    """Mean FFT amplitude in `band` (amplitude of low-frequency fluctuations)."""
    frequencies, amplitude = amplitude_spectrum(series, tr)
    inside = (frequencies >= band[0]) & (frequencies <= band[1])
    return float(amplitude[inside].mean()) if inside.any() else np.nan


def falff(series, tr, band=ALFF_BAND):
    """Share of the FFT amplitude (above 0 Hz) that lies in `band`."""
    frequencies, amplitude = amplitude_spectrum(series, tr)
    total = amplitude[frequencies > 0].sum()
    inside = (frequencies >= band[0]) & (frequencies <= band[1])
    return float(amplitude[inside].sum() / total) if total > 0 else np.nan


def lag1_autocorrelation(series):
    """Pearson correlation of the series with itself one frame later (NaN for a constant series)."""
    x = np.asarray(series, dtype=np.float64)
    return float(np.corrcoef(x[:-1], x[1:])[0, 1]) if x.std() > 0 else np.nan


def log_psd_bins(frequencies, power, edges=PSD_EDGES):
    """log10 of the mean Welch power in each [edges[i], edges[i+1]) bin; a bin holding no frequency
    takes the log-log interpolated power at its geometric centre."""
    values = []
    positive = (frequencies > 0) & (power > 0)
    for low, high in zip(edges[:-1], edges[1:]):
        inside = positive & (frequencies >= low) & (frequencies < high)
        if inside.any():
            values.append(np.log10(power[inside].mean()))
        elif positive.sum() >= 2:
            values.append(np.interp(np.log10(np.sqrt(low * high)), np.log10(frequencies[positive]),
                                    np.log10(power[positive])))
        else:
            values.append(np.nan)
    return values


def spectral_slope(frequencies, power, band=SLOPE_BAND):
    """Slope of log10 power against log10 frequency within `band` (about -1 for 1/f noise)."""
    inside = (frequencies >= band[0]) & (frequencies <= band[1]) & (power > 0)
    if inside.sum() < 2:
        return np.nan
    return float(np.polyfit(np.log10(frequencies[inside]), np.log10(power[inside]), 1)[0])


def series_dynamics(series, tr):
    """{measure: value} of MEASURES for one series."""
    frequencies, power = welch_psd(series, tr)
    values = [alff(series, tr), falff(series, tr), lag1_autocorrelation(series), *log_psd_bins(frequencies, power),
              spectral_slope(frequencies, power)]
    return dict(zip(MEASURES, map(float, values)))


def network_series(data, parcel_network, networks):
    """{network: mean series over its usable parcels, or None when it has none}."""
    data = np.asarray(data, dtype=np.float64)
    member = network_membership(parcel_network, networks) > 0
    usable = usable_parcels(data)
    return {name: data[:, row & usable].mean(axis=1) if (row & usable).any() else None
            for name, row in zip(networks, member)}


def network_dynamics(data, tr, parcel_network, networks):
    """Feature row of one scan: every measure of every network-mean series (NaN for a network without signal)."""
    row = []
    for series in network_series(data, parcel_network, networks).values():
        found = series_dynamics(series, tr) if series is not None else dict.fromkeys(MEASURES, np.nan)
        row += [found[name] for name in MEASURES]
    return np.asarray(row, dtype=np.float64)


def network_dynamics_names(networks):
    """Column names `<measure>.<network>` of `network_dynamics`, in feature order."""
    return [f"{name}.{network}" for network in networks for name in MEASURES]
