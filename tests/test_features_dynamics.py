"""Network dynamics against signals with known answers: a slow sinusoid, 1/f noise, white noise."""

import numpy as np
import pytest

from semantoks.features import dynamics
from semantoks.language import measures


def _power_law_noise(n, exponent, seed=0):
    """Noise whose power falls as 1/f**exponent (amplitude shaped in the Fourier domain)."""
    rng = np.random.default_rng(seed)
    frequencies = np.fft.rfftfreq(n)
    spectrum = rng.normal(size=len(frequencies)) + 1j * rng.normal(size=len(frequencies))
    spectrum[1:] /= frequencies[1:] ** (exponent / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def test_sinusoid_autocorrelation_falff_and_alff():
    tr, f = 2.0, 0.05
    series = np.sin(2 * np.pi * f * tr * np.arange(200))
    found = dynamics.series_dynamics(series, tr)
    assert found["autocorr"] == pytest.approx(np.cos(2 * np.pi * f * tr), abs=0.01)
    assert found["falff"] > 0.8
    # a unit sinusoid on an FFT bin: |X(f)| = n/2 at its frequency; ALFF is the band mean
    frequencies = np.fft.rfftfreq(200, d=tr)
    in_band = ((frequencies >= 0.01) & (frequencies <= 0.08)).sum()
    assert found["alff"] == pytest.approx(100 / in_band, rel=0.01)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_spectral_slope_recovers_the_power_law(exponent):
    slopes = [dynamics.series_dynamics(_power_law_noise(1200, exponent, seed), 0.72)["slope"] for seed in range(5)]
    assert np.mean(slopes) == pytest.approx(-exponent, abs=0.25)


def test_log_psd_bins_of_white_noise_are_flat_and_empty_bins_interpolate():
    found = dynamics.series_dynamics(np.random.default_rng(0).normal(size=2000), 2.0)
    bins = [found[f"logpsd{i}"] for i in range(1, 5)]
    assert np.ptp(bins) < 0.3
    frequencies, power = np.array([0.005, 0.03, 0.2]), np.array([100.0, 10.0, 1.0])
    # no frequency between 0.01 and 0.0197 Hz: the log-log line between 0.005 and 0.03 Hz at the bin's centre
    first = dynamics.log_psd_bins(frequencies, power)[0]
    centre = np.log10(np.sqrt(dynamics.PSD_EDGES[0] * dynamics.PSD_EDGES[1]))
    assert first == pytest.approx(np.interp(centre, np.log10([0.005, 0.03, 0.2]), [2.0, 1.0, 0.0]))


def test_network_rows_follow_the_names_and_a_network_without_signal_is_nan():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(150, 4))
    data[:, 3] = np.nan
    row = dynamics.network_dynamics(data, 2.0, ["A", "A", "B", "B"], ["A", "B"])
    names = dynamics.network_dynamics_names(["A", "B"])
    assert len(row) == len(names) == 2 * len(dynamics.MEASURES)
    expected = dynamics.series_dynamics(data[:, :2].mean(axis=1), 2.0)
    np.testing.assert_allclose(row[: len(dynamics.MEASURES)], [expected[m] for m in dynamics.MEASURES])
    assert np.isfinite(row[len(dynamics.MEASURES):]).all()  # B keeps its one usable parcel
    data[:, 2] = np.nan
    row = dynamics.network_dynamics(data, 2.0, ["A", "A", "B", "B"], ["A", "B"])
    assert np.isnan(row[len(dynamics.MEASURES):]).all()


def test_language_descriptors_use_the_same_falff_and_autocorrelation():
    series = _power_law_noise(300, 1.0, seed=3)
    shared, language = dynamics.series_dynamics(series, 2.0), measures.dynamics(series, 2.0)
    assert language["falff"] == shared["falff"] and language["autocorr"] == shared["autocorr"]
