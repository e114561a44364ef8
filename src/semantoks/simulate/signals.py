"""Time series of one run: band-limited network latents, parcel signals and physiological sources."""

import numpy as np


def band_limited(rng, n_time, n_series, tr, low=None, high=None, order=2):
    """(n_time, n_series) unit-variance Gaussian noise shaped by a zero-phase Butterworth band-pass."""
    n_fft = 2 * n_time
    spectrum = np.fft.rfft(rng.standard_normal((n_fft, n_series)), axis=0)
    freqs = np.fft.rfftfreq(n_fft, d=tr)
    gain = np.ones_like(freqs)
    if low:
        with np.errstate(divide="ignore"):
            gain *= 1.0 / np.sqrt(1.0 + (low / freqs) ** (2 * order))
    if high and high < freqs[-1]:
        gain *= 1.0 / np.sqrt(1.0 + (freqs / high) ** (2 * order))
    series = np.fft.irfft(spectrum * gain[:, None], n=n_fft, axis=0)[:n_time]
    series -= series.mean(axis=0)
    return series / series.std(axis=0)


def network_latents(rng, n_time, tr, coupling, amplitude, band_hz):
    """(n_time, K) latent network series with correlation `coupling` and standard deviation `amplitude`."""
    independent = band_limited(rng, n_time, len(amplitude), tr, *band_hz)
    cholesky = np.linalg.cholesky(np.asarray(coupling))
    return (independent @ cholesky.T) * np.asarray(amplitude)


def parcel_signals(rng, latents, loadings, parcel_latent, tr, params):
    """(n_time, P): each parcel's network latent times its loading, plus parcel-specific band-limited noise."""
    n_time = latents.shape[0]
    own = band_limited(rng, n_time, len(loadings), tr, *params.band_hz)
    shared = np.where(parcel_latent >= 0, loadings, 0.0) * latents[:, np.clip(parcel_latent, 0, None)]
    return shared + params.parcel_noise * own


def physiological_sources(rng, n_time, tr, params):
    """(n_time, 2): slow systemic (respiration/CO2) and aliased cardiac/CSF pulsation, unit variance."""
    systemic = band_limited(rng, n_time, 1, tr, *params.systemic_band_hz)
    pulsation = band_limited(rng, n_time, 1, tr, params.pulsation_high_pass_hz, None)
    return np.hstack([systemic, pulsation])


def drift_basis(n_time):
    """(n_time, 2): linear and quadratic scanner drift, each spanning about +-1 over the run."""
    t = np.linspace(-1.0, 1.0, n_time)
    return np.stack([t, 1.5 * (t**2 - 1.0 / 3.0)], axis=1)
