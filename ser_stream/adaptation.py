"""Per-stream adaptation: window vectors z-scored with the statistics of the voices
and microphone the stream hears, shrunk toward the training population's.

A home hears the same few voices through the same microphone all day, and
emotion is easier to tell as a departure from how *these* voices usually sound.
The statistics are a mean and variance per vector dimension over speech windows,
estimated with ``prior_windows`` pseudo-windows of the training population's
statistics: with no audio heard the normalisation is the population's, and it
moves toward the household's as speech comes in. Training normalises every
training speaker with the same estimator (from that speaker's neutral and calm
clips), so the model sees what the daemon feeds it.

Pure numpy; :class:`RunningStats` is owned by the pipeline thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIOR_WINDOWS = 20.0  # pseudo-windows of population statistics (20 s of speech)
MAX_WINDOWS = 1000  # beyond this the statistics forget exponentially (about 17 minutes of speech)
STD_FLOOR = 1e-6


@dataclass(frozen=True)
class Prior:
    """Population statistics: ``mean`` and ``var`` (D,) and their weight in windows."""

    mean: np.ndarray
    var: np.ndarray
    windows: float


def shrunk_mean_std(*, n: float, s1: np.ndarray, s2: np.ndarray, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (D,) from ``n`` windows (sums ``s1`` = sum x, ``s2`` = sum x**2)
    pooled with ``prior.windows`` pseudo-windows drawn from the prior."""
    n0 = prior.windows
    m = (n0 * prior.mean + s1) / (n0 + n)
    spread = s2 - 2.0 * m * s1 + n * m * m  # sum of (x - m)**2
    var = (n0 * (prior.var + (prior.mean - m) ** 2) + spread) / (n0 + n)
    return m, np.sqrt(np.maximum(var, 0.0)) + STD_FLOOR


def batch_mean_std(x: np.ndarray, *, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shrunk_mean_std` of the rows of ``x`` (n, D): a speaker's statistics in training and evaluation."""
    x = np.asarray(x, dtype=np.float64)
    return shrunk_mean_std(n=float(x.shape[0]), s1=x.sum(axis=0), s2=(x * x).sum(axis=0), prior=prior)


class RunningStats:
    """The stream's statistics, updated with each speech window's vector.

    After ``max_windows`` windows, old windows are forgotten exponentially
    (each update first scales the sums by ``1 - 1/max_windows``), so the
    statistics follow a household that changes. Owned by the pipeline thread.
    """

    def __init__(self, *, prior: Prior, max_windows: int = MAX_WINDOWS) -> None:
        self.prior = prior
        self.max_windows = max_windows
        self.reset()

    def reset(self) -> None:
        """Back to the population statistics."""
        d = self.prior.mean.shape[0]
        self.n = 0.0
        self.s1 = np.zeros(d)
        self.s2 = np.zeros(d)
        self._mean, self._std = shrunk_mean_std(n=0.0, s1=self.s1, s2=self.s2, prior=self.prior)

    def normalise(self, vectors: np.ndarray) -> np.ndarray:
        """(n, D) or (D,) vectors z-scored with the current statistics."""
        return (vectors - self._mean) / self._std

    def update(self, vector: np.ndarray) -> None:
        """Add one speech window's vector (D,)."""
        if self.n + 1.0 > self.max_windows:
            keep = 1.0 - 1.0 / self.max_windows
            self.n *= keep
            self.s1 *= keep
            self.s2 *= keep
        v = np.asarray(vector, dtype=np.float64)
        self.n += 1.0
        self.s1 += v
        self.s2 += v * v
        self._mean, self._std = shrunk_mean_std(n=self.n, s1=self.s1, s2=self.s2, prior=self.prior)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.array(self.n), "s1": self.s1, "s2": self.s2}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`to_arrays`; raises ValueError when they do not fit this prior."""
        n, s1, s2 = float(arrays["n"]), np.asarray(arrays["s1"], dtype=np.float64), np.asarray(arrays["s2"], dtype=np.float64)
        d = self.prior.mean.shape[0]
        if s1.shape != (d,) or s2.shape != (d,) or not n >= 0.0:
            raise ValueError(f"statistics of shape {s1.shape}/{s2.shape} over {n} windows do not fit {d} dimensions")
        if not (np.all(np.isfinite(s1)) and np.all(np.isfinite(s2))):
            raise ValueError("statistics hold non-finite values")
        if n > self.max_windows:  # saved under a larger max_windows: keep the same mean and spread
            scale = self.max_windows / n
            n, s1, s2 = float(self.max_windows), s1 * scale, s2 * scale
        self.n, self.s1, self.s2 = n, s1, s2
        self._mean, self._std = shrunk_mean_std(n=self.n, s1=self.s1, s2=self.s2, prior=self.prior)
