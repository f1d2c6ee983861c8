"""Per-stream adaptation: window vectors centred on the mean of the voices and
microphone the stream hears, shrunk toward the training population's mean.

A home hears the same few voices through the same microphone all day, and
emotion is easier to tell as a departure from how *these* voices usually sound.
The statistic is a mean per vector dimension over speech windows, estimated
with ``prior_windows`` pseudo-windows of the training population's mean: with
no audio heard the centring is the population's, and it moves toward the
household's as speech comes in. Only the *calmer half* of the speech joins the
statistics: a window is added when its arousal (the adaptive arousal head's,
under the statistics so far) is at or below the median of the last
RECENT_WINDOWS windows. The centre then estimates how these voices sound at
rest whether the household is mostly calm (a home) or acts out every emotion
(a corpus), which is what the adaptive heads are trained against; with every
window added, an agitated evening would become the household's "normal"
(measured: models/README.md). Vectors are then divided by the population's
within-speaker spread, a constant: a spread estimated from a few minutes of one
household's mostly calm talk measured worse (see models/README.md). Training
centres every training speaker with the same estimator (on their neutral and
calm clips), so the model sees what the daemon feeds it.

The arousal head's answer is also made relative to the household
(:class:`ArousalBaseline`): its logit minus the median logit of the last
AROUSAL_WINDOWS speech windows (pooled with PRIOR_WINDOWS pseudo-windows at the
head's own boundary). Measured on held-out corpora (models/README.md), the head
ranks agitated above calm speech well within one voice and microphone (AUC
0.85-0.99) but places its boundary where its training studios had it, so a new
studio, language or room sounds agitated (or calm) as a whole; the household's
median moves the boundary to where this home's talk sits.

Pure numpy; :class:`RunningStats` (with its :class:`ArousalBaseline`) is owned by the pipeline thread.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np

PRIOR_WINDOWS = 20.0  # pseudo-windows of population statistics (20 s of speech)
AROUSAL_WINDOWS = 600  # the household's arousal baseline: the median of the last 10 minutes of speech
RECENT_WINDOWS = 60  # the arousal median that decides which windows join the statistics (1 min of speech)
MAX_WINDOWS = 1000  # beyond this the statistics forget exponentially (about 17 minutes of speech)
STD_FLOOR = 1e-6
SPREAD_FLOOR = 0.25  # of the reference: a monotone household is not amplified beyond four times
SPREAD_MIN_WINDOWS = 30  # speech windows before the household's spread is its own (half a minute of speech)


@dataclass(frozen=True)
class Prior:
    """Population statistics: ``mean`` and within-speaker ``var`` (D,), and the mean's weight in windows."""

    mean: np.ndarray
    var: np.ndarray
    windows: float

    @cached_property
    def scale(self) -> np.ndarray:
        """The population's within-speaker standard deviation (D,), floored."""
        return np.sqrt(self.var) + STD_FLOOR

    def normalise(self, vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """(n, D) or (D,) vectors centred on ``mean`` and divided by the population spread."""
        return (vectors - mean) / self.scale


def _median(values: deque[float]) -> float:
    """np.median of a short deque, without building an array (a few microseconds for 60 values)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def calmer_half(recent: deque[float], arousal: float | None) -> bool:
    """Whether a window of ``arousal`` joins statistics that keep the calmer half of the speech: at or
    below the median of ``recent`` (a bounded deque, to which it is appended first); always when
    ``arousal`` is None (a model without an arousal head)."""
    if arousal is None:
        return True
    recent.append(arousal)
    return arousal <= _median(recent)


def accumulate(n: float, s1: np.ndarray, vector: np.ndarray, *, max_windows: int) -> float:
    """Add ``vector`` (D,) to the sum ``s1`` (in place) of ``n`` windows, forgetting exponentially beyond
    ``max_windows`` (the sums are first scaled by 1 - 1/max_windows); returns the new count."""
    if n + 1.0 > max_windows:
        keep = 1.0 - 1.0 / max_windows
        n *= keep
        s1 *= keep
    s1 += np.asarray(vector, dtype=np.float64)
    return n + 1.0


def shrunk_mean(*, n: float, s1: np.ndarray, prior: Prior) -> np.ndarray:
    """The mean (D,) of ``n`` windows (``s1`` = sum x) pooled with ``prior.windows`` pseudo-windows at the prior mean."""
    return (prior.windows * prior.mean + s1) / (prior.windows + n)


def batch_mean(x: np.ndarray, *, prior: Prior) -> np.ndarray:
    """:func:`shrunk_mean` of the rows of ``x`` (n, D): a speaker's centre in training and evaluation."""
    x = np.asarray(x, dtype=np.float64)
    return shrunk_mean(n=float(x.shape[0]), s1=x.sum(axis=0), prior=prior)


def arousal_logit(arousal: float) -> float:
    """The binary head's logit from its answer 2 P(high) - 1 = tanh(logit / 2) (finite at saturation)."""
    return 2.0 * math.atanh(min(max(arousal, -1.0 + 1e-15), 1.0 - 1e-15))


class ArousalBaseline:
    """The median arousal logit of the household's last ``max_windows`` speech windows, pooled with
    ``prior_windows`` pseudo-windows at 0 (the head's own boundary). Owned by the pipeline thread."""

    def __init__(self, *, max_windows: int = AROUSAL_WINDOWS, prior_windows: int = int(PRIOR_WINDOWS),
                 spread_reference: float | None = None) -> None:
        self.max_windows = max_windows
        self.prior_windows = prior_windows
        self.spread_reference = spread_reference
        self.reset()

    def reset(self) -> None:
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def median(self, *, anchor: float = 0.0) -> float:
        """The median of the recent logits and the pseudo-windows at ``anchor`` (the head's own
        boundary, 0, for a household; the household's median for one of its voices)."""
        values, zeros = self._sorted, max(self.prior_windows - len(self._sorted), 0)
        n = len(values) + zeros
        if n == 0:
            return anchor
        below = bisect.bisect_left(values, anchor)  # the pseudo-windows sit between values[:below] and values[below:]

        def kth(k: int) -> float:
            return values[k] if k < below else (anchor if k < below + zeros else values[k - zeros])

        return kth(n // 2) if n % 2 else 0.5 * (kth(n // 2 - 1) + kth(n // 2))

    def relative(self, arousal: float, *, anchor: float = 0.0, scale: float = 1.0) -> float:
        """``arousal`` ([-1, 1]) relative to this baseline: tanh(scale (logit - median) / 2), the median
        pooled with pseudo-windows at ``anchor``; ``scale``: :meth:`spread_scale` of the household."""
        return math.tanh(0.5 * scale * (arousal_logit(arousal) - self.median(anchor=anchor)))

    def spread(self) -> float | None:
        """The interquartile range of the recent logits, once SPREAD_MIN_WINDOWS were heard (else None)."""
        values = self._sorted
        if len(values) < SPREAD_MIN_WINDOWS:
            return None
        return values[(3 * len(values)) // 4] - values[len(values) // 4]

    def spread_scale(self) -> float:
        """What relative logits are multiplied by so that this household's spread counts as
        ``spread_reference`` logit units (the spread floored at SPREAD_FLOOR of it): distance and noise
        shrink the head's range, a lively household widens it (``adaptation.arousal_spread``). 1 without
        a reference, or before SPREAD_MIN_WINDOWS were heard."""
        spread = self.spread()
        if self.spread_reference is None or spread is None:
            return 1.0
        return self.spread_reference / max(spread, SPREAD_FLOOR * self.spread_reference)

    def add(self, arousal: float) -> None:
        z = arousal_logit(arousal)
        self._recent.append(z)
        bisect.insort(self._sorted, z)
        if len(self._recent) > self.max_windows:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def to_array(self) -> np.ndarray:
        return np.array(self._recent, dtype=np.float64)

    def load_array(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise ValueError("arousal baseline holds non-finite values")
        self.reset()
        for z in values[-self.max_windows:]:
            self._recent.append(float(z))
        self._sorted = sorted(self._recent)


class RunningStats:
    """The stream's centre, updated with each speech window's vector.

    After ``max_windows`` windows, old windows are forgotten exponentially
    (each update first scales the sums by ``1 - 1/max_windows``), so the
    centre follows a household that changes. Owned by the pipeline thread.
    """

    def __init__(self, *, prior: Prior, max_windows: int = MAX_WINDOWS, spread_reference: float | None = None) -> None:
        self.prior = prior
        self.max_windows = max_windows
        self.spread_reference = spread_reference
        self.reset()

    def reset(self) -> None:
        """Back to the population statistics (and the arousal head's own boundary)."""
        self.arousal = ArousalBaseline(spread_reference=self.spread_reference)
        self._recent: deque[float] = deque(maxlen=RECENT_WINDOWS)
        self.n = 0.0
        self.s1 = np.zeros(self.prior.mean.shape[0])
        self._mean = shrunk_mean(n=self.n, s1=self.s1, prior=self.prior)

    @property
    def mean(self) -> np.ndarray:
        """The current centre (D,)."""
        return self._mean

    def normalise(self, vectors: np.ndarray) -> np.ndarray:
        """(n, D) or (D,) vectors normalised with the current centre."""
        return self.prior.normalise(vectors, self._mean)

    def voice_of(self, vector: np.ndarray) -> "RunningStats":
        """The statistics a speech window is judged against: these, one baseline for every voice
        (:class:`ser_stream.voices.Household` tells voices apart)."""
        return self

    @property
    def settled(self) -> bool:
        """True once the household's own speech weighs at least as much as the population prior."""
        return self.n >= self.prior.windows

    def relative_arousal(self, arousal: float) -> float:
        """A speech window's ``arousal`` relative to the household's speech before it; the window
        then joins the household's :class:`ArousalBaseline`."""
        relative = self.arousal.relative(arousal, scale=self.arousal.spread_scale())
        self.arousal.add(arousal)
        return relative

    def offer(self, vector: np.ndarray, *, arousal: float | None) -> bool:
        """Add a speech window's vector (D,) if it is among the calmer half of the recent speech by
        ``arousal`` (None, a model without an arousal head: always); returns whether it was added."""
        if not calmer_half(self._recent, arousal):
            return False
        self.update(vector)
        return True

    def update(self, vector: np.ndarray) -> None:
        """Add one speech window's vector (D,)."""
        self.n = accumulate(self.n, self.s1, vector, max_windows=self.max_windows)
        self._mean = shrunk_mean(n=self.n, s1=self.s1, prior=self.prior)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"n": np.array(self.n), "s1": self.s1, "arousal_logits": self.arousal.to_array()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`to_arrays` (a file without the arousal baseline starts it afresh); raises
        ValueError when they do not fit this prior."""
        n, s1 = float(arrays["n"]), np.asarray(arrays["s1"], dtype=np.float64)
        d = self.prior.mean.shape[0]
        if s1.shape != (d,) or not n >= 0.0:
            raise ValueError(f"statistics of shape {s1.shape} over {n} windows do not fit {d} dimensions")
        if not np.all(np.isfinite(s1)):
            raise ValueError("statistics hold non-finite values")
        if n > self.max_windows:  # saved under a larger max_windows: keep the same mean
            n, s1 = float(self.max_windows), s1 * (self.max_windows / n)
        self.n, self.s1 = n, s1
        self._mean = shrunk_mean(n=self.n, s1=self.s1, prior=self.prior)
        if "arousal_logits" in arrays:
            self.arousal.load_array(arrays["arousal_logits"])
