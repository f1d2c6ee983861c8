"""Speech/silence gate over a window's 10 ms frame levels. Pure functions.

A frame is *active* when its level is above an absolute threshold (dBFS) and
above the window's quiet floor (its 10th-percentile frame level) by a margin:
speech rises and falls, while steady noise (a fan, a hum, a held tone) sits at
its own floor and stays inactive. The margin is measured on the frames' level
in the speech band (``vad.band_hz``, 300-3400 Hz by default) when one is given:
rumble (brown noise: a fan, traffic, wind) swings a 10 ms frame's wideband
level by more than 10 dB and passed the wideband margin as speech, and across a
room, in noise, a voice rises above the floor in its own band more than over
the whole spectrum (measured: models/README.md). A window is speech when it
holds at least ``min_active_seconds`` of active frames.
"""

from __future__ import annotations

import numpy as np

FLOOR_PERCENTILE = 10.0


def active_frames(level_db: np.ndarray, *, threshold_dbfs: float, noise_margin_db: float,
                  band_db: np.ndarray | None = None) -> np.ndarray:
    """Active-frame mask.

    ``level_db``: (T,) frame levels in dBFS; ``band_db``: (T,) the frames' level in the speech band
    (dB, any reference), on which the margin over the floor is measured when given. Returns (T,) bool.
    """
    level_db = np.asarray(level_db, dtype=np.float64)
    if level_db.size == 0:
        return np.zeros(0, dtype=bool)
    margin_of = level_db if band_db is None else np.asarray(band_db, dtype=np.float64)
    floor = float(percentiles(margin_of, (FLOOR_PERCENTILE,))[0])
    return (level_db > threshold_dbfs) & (margin_of > floor + noise_margin_db)


def is_speech(active: np.ndarray, *, frame_seconds: float, min_active_seconds: float) -> bool:
    """True when the active frames add up to at least ``min_active_seconds``."""
    return bool(np.count_nonzero(active) * frame_seconds >= min_active_seconds) and bool(np.any(active))


def percentiles(x: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(x, qs)`` (linear interpolation) with one partial sort; ``x`` (n,) non-empty."""
    pos = [(x.size - 1) * q / 100.0 for q in qs]
    lo = [int(p) for p in pos]
    hi = [min(i + 1, x.size - 1) for i in lo]
    part = np.partition(x, sorted(set(lo + hi)))
    return np.array([part[a] + (p - a) * (part[b] - part[a]) for p, a, b in zip(pos, lo, hi)])
