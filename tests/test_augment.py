"""Augmentation and degradation do what their names say."""

import numpy as np
import pytest

from ser_stream import augment


@pytest.fixture
def speechlike():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)  # bursts and pauses
    return (0.2 * env * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(t.size) * env).astype(np.float32)


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_noise_is_added_at_the_requested_snr(speechlike, color):
    noisy = augment.add_noise(speechlike, snr_db=10.0, color=color, rng=np.random.default_rng(1))
    noise = noisy - speechlike
    snr = 10 * np.log10(augment.speech_power(speechlike) / np.mean(noise.astype(np.float64) ** 2))
    assert abs(snr - 10.0) < 0.2


def test_noise_colors_have_their_slopes():
    rng = np.random.default_rng(2)
    for color, expected in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        x = augment.colored_noise(1 << 16, color=color, rng=rng)
        f = np.fft.rfftfreq(x.size)[1:]
        p = np.abs(np.fft.rfft(x))[1:] ** 2
        slope = np.polyfit(np.log10(f), np.log10(p), 1)[0]
        assert abs(slope - expected) < 0.15


def test_reverb_keeps_level_and_spreads_energy(speechlike):
    wet = augment.reverberate(speechlike, rt60=0.6, sr=16000, rng=np.random.default_rng(3))
    assert wet.shape == speechlike.shape
    assert abs(10 * np.log10(augment.speech_power(wet) / augment.speech_power(speechlike))) < 0.5
    assert not np.allclose(wet, speechlike)


def test_speed_band_limit_and_degrade_are_deterministic(speechlike):
    assert abs(len(augment.change_speed(speechlike, factor=1.05, sr=16000)) - len(speechlike) / 1.05) < 3
    lim = augment.band_limit(speechlike, low_hz=300, high_hz=3400, sr=16000)
    spec = np.abs(np.fft.rfft(lim))
    f = np.fft.rfftfreq(lim.size, 1 / 16000)
    assert spec[(f < 250) | (f > 3500)].max() < 1e-3 * spec.max()
    a = augment.degrade(speechlike, kind="noise10", sr=16000, seed=5)
    b = augment.degrade(speechlike, kind="noise10", sr=16000, seed=5)
    assert np.array_equal(a, b) and np.abs(a).max() <= 1.0
    with pytest.raises(ValueError, match="unknown degradation"):
        augment.degrade(speechlike, kind="bogus", sr=16000, seed=5)
    y = augment.random_augment(speechlike, sr=16000, rng=np.random.default_rng(9))
    assert y.dtype == np.float32 and np.abs(y).max() <= 1.0
