"""Speech/silence gate over a window's 10 ms frame levels. Pure functions.

A frame is *active* when its level is above an absolute threshold (dBFS) and
above the window's quiet floor (its 10th-percentile frame level) by a margin:
speech rises and falls, while steady noise (a fan, a hum, a held tone) sits at
its own floor and stays inactive. A window is speech when it holds at least
``min_active_seconds`` of active frames.
"""

from __future__ import annotations

import numpy as np

FLOOR_PERCENTILE = 10.0


def active_frames(level_db: np.ndarray, *, threshold_dbfs: float, noise_margin_db: float) -> np.ndarray:
    """Active-frame mask.

    ``level_db``: (T,) frame levels in dBFS. Returns (T,) bool.
    """
    level_db = np.asarray(level_db, dtype=np.float64)
    if level_db.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(percentiles(level_db, (FLOOR_PERCENTILE,))[0])
    return (level_db > threshold_dbfs) & (level_db > floor + noise_margin_db)


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
