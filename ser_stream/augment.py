"""Audio augmentation and degradation for training and robustness evaluation.

Training copies are made to sound like a living room: additive noise at 5-20 dB
SNR (white, pink or brown), a synthetic room reverberation, gain changes, a
small speed change (pitch and tempo together) and microphone-like band limits.
``degrade`` applies one fixed condition to test audio (``--degrade``).
Pure functions of (samples, parameters, random generator); 16 kHz mono float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEGRADATIONS = ("noise10", "reverb")


def colored_noise(n: int, *, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise with a 1/f^k power spectrum: white k=0, pink k=1, brown k=2."""
    k = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-k / 2.0)
    spec[0] = 0.0  # no DC offset
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def speech_power(y: np.ndarray, *, frame: int = 400) -> float:
    """Mean power of the louder half of 25 ms frames: the speech, not the silence around it."""
    n = len(y) // frame
    if n == 0:
        return float(np.mean(y.astype(np.float64) ** 2))
    p = np.mean(y[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    return float(np.mean(np.sort(p)[n // 2 :]))


def add_noise(y: np.ndarray, *, snr_db: float, color: str, rng: np.random.Generator) -> np.ndarray:
    noise = colored_noise(len(y), color=color, rng=rng)
    scale = np.sqrt(speech_power(y) / 10.0 ** (snr_db / 10.0))
    return (y + scale * noise).astype(np.float32)


def room_impulse(*, rt60: float, sr: int, rng: np.random.Generator, tail_level: float = 0.3) -> np.ndarray:
    """A synthetic room: direct path, then exponentially decaying noise (60 dB down at ``rt60`` s) with
    ``tail_level`` times the direct path's energy (more for a talker farther from the microphone)."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(0.003 * sr)] = 0.0  # first reflections after ~3 ms
    h = tail_level * tail / np.sqrt(np.sum(tail**2) + 1e-12)
    h[0] = 1.0
    return h.astype(np.float32)


def reverberate(y: np.ndarray, *, rt60: float, sr: int, rng: np.random.Generator, tail_level: float = 0.3) -> np.ndarray:
    h = room_impulse(rt60=rt60, sr=sr, rng=rng, tail_level=tail_level)
    n = len(y) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(y, size) * np.fft.rfft(h, size), size)[: len(y)]
    return (out * np.sqrt(speech_power(y) / (speech_power(out) + 1e-20))).astype(np.float32)


def band_limit(y: np.ndarray, *, low_hz: float, high_hz: float, sr: int) -> np.ndarray:
    """Zero the spectrum outside [low_hz, high_hz] (a cheap, phone-like microphone)."""
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    spec[(f < low_hz) | (f > high_hz)] = 0.0
    return np.fft.irfft(spec, len(y)).astype(np.float32)


def change_speed(y: np.ndarray, *, factor: float, sr: int) -> np.ndarray:
    """Play ``factor`` times faster: tempo and pitch move together (a resampling)."""
    import soxr

    return soxr.resample(y, sr * factor, sr).astype(np.float32)


@dataclass(frozen=True)
class Room:
    """One living room and microphone: what :func:`apply_room` does to a clip (None: not applied)."""

    speed: float | None
    rt60: float | None
    band_hz: tuple[float, float] | None
    snr_db: float | None
    color: str
    gain_db: float
    seed: int  # the room's impulse response
    tail_level: float = 0.3  # the reverberation's energy against the direct path's (distance)


def draw_room(rng: np.random.Generator) -> Room:
    """A random room: speed change 30 %, reverberation 40 %, band limit 30 %, noise at 5-20 dB SNR 80 %, gain -20..+6 dB."""
    speed = float(rng.uniform(0.94, 1.06)) if rng.random() < 0.3 else None
    rt60 = float(rng.uniform(0.2, 0.8)) if rng.random() < 0.4 else None
    band = (float(rng.uniform(80, 300)), float(rng.uniform(3400, 7500))) if rng.random() < 0.3 else None
    snr = float(rng.uniform(5, 20)) if rng.random() < 0.8 else None
    return Room(speed=speed, rt60=rt60, band_hz=band, snr_db=snr, color=str(rng.choice(["white", "pink", "brown"])),
                gain_db=float(rng.uniform(-20, 6)), seed=int(rng.integers(2**63)))


def apply_room(y: np.ndarray, room: Room, *, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``y`` as heard in ``room``; ``rng`` draws this clip's noise."""
    if room.speed is not None:
        y = change_speed(y, factor=room.speed, sr=sr)
    if room.rt60 is not None:
        y = reverberate(y, rt60=room.rt60, sr=sr, rng=np.random.default_rng(room.seed), tail_level=room.tail_level)
    if room.band_hz is not None:
        y = band_limit(y, low_hz=room.band_hz[0], high_hz=room.band_hz[1], sr=sr)
    if room.snr_db is not None:
        y = add_noise(y, snr_db=room.snr_db, color=room.color, rng=rng)
    y = y * np.float32(10.0 ** (room.gain_db / 20.0))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


HOME_ACOUSTICS = ("dry", "near", "far")  # how the household protocol hears a home's voices
ROOM_NOISE_SNR_DB = {"near": (20.0, 30.0), "far": (5.0, 15.0)}  # the room's steady noise against its speech


def draw_voice_room(rng: np.random.Generator, *, far: bool) -> Room:
    """Where one voice of a home talks from: near the microphone (a desk, a kitchen counter: RT60
    0.2-0.5 s, little reverberation, gain -12..+3 dB) or across the room (1.5-3 m: RT60 0.4-0.8 s,
    reverberation as strong as the direct path or more, gain -20..-8 dB). Noise belongs to the room,
    not the voice: :func:`room_noise`."""
    if far:
        rt60, tail, gain = rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.5), rng.uniform(-20.0, -8.0)
    else:
        rt60, tail, gain = rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.4), rng.uniform(-12.0, 3.0)
    return Room(speed=None, rt60=float(rt60), band_hz=None, snr_db=None, color="pink", gain_db=float(gain),
                seed=int(rng.integers(2**63)), tail_level=float(tail))


def room_noise(y: np.ndarray, *, acoustics: str, rng: np.random.Generator) -> np.ndarray:
    """A whole household stream with the room's steady noise (pauses included) at a seeded SNR of
    ROOM_NOISE_SNR_DB[acoustics] against its speech; ``dry`` streams are returned as they are."""
    if acoustics == "dry":
        return y
    low, high = ROOM_NOISE_SNR_DB[acoustics]
    color = str(rng.choice(["white", "pink", "brown"]))
    return np.clip(add_noise(y, snr_db=float(rng.uniform(low, high)), color=color, rng=rng), -1.0, 1.0)


def random_augment(y: np.ndarray, *, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One random living-room version of a clip (a room of its own)."""
    return apply_room(y, draw_room(rng), sr=sr, rng=rng)


def degrade(y: np.ndarray, *, kind: str, sr: int, seed: int) -> np.ndarray:
    """A fixed test condition: ``noise10`` (pink noise at 10 dB SNR) or ``reverb`` (RT60 0.6 s)."""
    rng = np.random.default_rng(seed)
    if kind == "noise10":
        return np.clip(add_noise(y, snr_db=10.0, color="pink", rng=rng), -1.0, 1.0)
    if kind == "reverb":
        return np.clip(reverberate(y, rt60=0.6, sr=sr, rng=rng), -1.0, 1.0)
    raise ValueError(f"unknown degradation {kind!r} (choose from {', '.join(DEGRADATIONS)})")
