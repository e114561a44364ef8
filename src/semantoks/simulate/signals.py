"""Time series of one run: band-limited network latents, parcel signals and physiological sources."""

import numpy as np

from semantoks.simulate.states import switch_states


def band_limited(rng, n_time, n_series, tr, low=None, high=None, order=2, exponent=None):
    """(n_time, n_series) unit-variance Gaussian noise shaped by a zero-phase Butterworth band-pass.

    `exponent` (one per series) tilts each power spectrum inside the band by (f / f_c)^-exponent,
    f_c the band's geometric centre, f clipped to the band so nothing leaks past its edges: 0 keeps
    the flat band, > 0 puts power into slow fluctuations (higher autocorrelation), < 0 into fast ones.
    """
    n_fft = 2 * n_time
    spectrum = np.fft.rfft(rng.standard_normal((n_fft, n_series)), axis=0)
    freqs = np.fft.rfftfreq(n_fft, d=tr)
    gain = np.ones_like(freqs)
    if low:
        with np.errstate(divide="ignore"):
            gain *= 1.0 / np.sqrt(1.0 + (low / freqs) ** (2 * order))
    if high and high < freqs[-1]:
        gain *= 1.0 / np.sqrt(1.0 + (freqs / high) ** (2 * order))
    gain = np.repeat(gain[:, None], n_series, axis=1)
    if exponent is not None:
        edges = (low or freqs[1], high or freqs[-1])
        relative = np.clip(freqs, *edges) / np.sqrt(edges[0] * edges[1])
        gain *= relative[:, None] ** (-0.5 * np.asarray(exponent, dtype=np.float64)[None, :])
    series = np.fft.irfft(spectrum * gain, n=n_fft, axis=0)[:n_time]
    series -= series.mean(axis=0)
    return series / series.std(axis=0)


def network_latents(rng, n_time, tr, coupling, amplitude, band_hz, exponent=None, states=None, couplings=None):
    """(n_time, K) latent network series with correlation `coupling` and standard deviation `amplitude`.

    Each network's own source has the spectral `exponent` (see `band_limited`); mixing by the Cholesky
    factor keeps the zero-lag correlation at `coupling` whatever the spectra. With `states` (one index per
    frame into `couplings`), frame t is re-coupled to `couplings[states[t]]` (see `states.switch_states`).
    """
    independent = band_limited(rng, n_time, len(amplitude), tr, *band_hz, exponent=exponent)
    cholesky = np.linalg.cholesky(np.asarray(coupling))
    mixed = independent @ cholesky.T
    if states is not None:
        mixed = switch_states(mixed, coupling, couplings, states)
    return mixed * np.asarray(amplitude)


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
