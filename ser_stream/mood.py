"""Smoothing of per-window probabilities into a stable mood. No I/O.

Rules (all times in stream seconds):
- Speech windows feed an exponential moving average of the class
  probabilities, time constant ``smoothing_seconds``.
- The mood changes to the average's leading label only after that label has
  led for ``min_dwell_seconds`` of speech windows in a row *and* its averaged
  probability is at least ``min_confidence``. One odd window cannot flip it.
  Returning to rest (``neutral`` or ``calm`` leading) needs the dwell but no
  confidence: an emotion must be heard clearly to start, and ends when it is
  no longer what the voices sound like most. With calibrated probabilities
  (rarely above 0.5 on unseen voices) an emotional mood would otherwise stay
  long after the emotion had gone.
- With ``arousal_on`` set, agitation is heard through the arousal head as
  well: while the smoothed arousal is at least ``arousal_on`` (and, once an
  agitated mood is set, until it falls below ``arousal_off``) the leading label
  is the most probable *agitated* one (AGITATED), and it needs no confidence:
  the arousal head says the voice is agitated, the emotion head says how.
- Speech that goes on for ``min_dwell_seconds`` while the mood is ``idle`` sets
  the leading rest mood (``neutral`` or ``calm``) when no emotion qualifies:
  ``idle`` means nobody is talking.
- While the caller says ``settled=False`` (the stream's adaptation statistics
  are still mostly the training population's, see
  :meth:`ser_stream.adaptation.RunningStats.settled`) only rest moods are
  entered: a voice the model has not yet learnt is not announced as angry.
- Silence windows change nothing, until ``idle_after_seconds`` of continuous
  silence: then the mood returns to ``idle`` and the average is forgotten.
- Arousal and valence (from the model's heads, [-1, 1]) are averaged the same
  way, so "arousal > 0 for 30 s" means 30 s of agitated speech, not one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IDLE = "idle"
REST = ("neutral", "calm")  # moods that need no confidence to return to
AGITATED = ("angry", "fearful", "happy", "surprised", "disgust")  # moods a quarrel (high arousal) sets


@dataclass(frozen=True)
class MoodState:
    mood: str
    confidence: float | None  # averaged probability of the mood's label (None when idle)
    since: float  # stream time (s) at which this mood began
    changed: bool  # True on the window that changed it


class MoodTracker:
    """Stateful smoother; owned by the pipeline thread (not thread-safe)."""

    def __init__(
        self,
        *,
        labels: tuple[str, ...],
        min_confidence: float,
        min_dwell_seconds: float,
        smoothing_seconds: float,
        idle_after_seconds: float,
        arousal_on: float | None = None,
        arousal_off: float | None = None,
    ) -> None:
        self.labels = labels
        self.arousal_on = arousal_on
        self.arousal_off = arousal_on if arousal_off is None else arousal_off
        self._rest = [i for i, lab in enumerate(labels) if lab in REST]
        self._agitated = np.array([lab in AGITATED for lab in labels])
        self.min_confidence = min_confidence
        self.min_dwell_seconds = min_dwell_seconds
        self.smoothing_seconds = smoothing_seconds
        self.idle_after_seconds = idle_after_seconds
        self.mood = IDLE
        self.since = 0.0
        self._avg: np.ndarray | None = None
        self._dims: np.ndarray | None = None  # smoothed (arousal, valence); NaN where the model has no head
        self._lead: int | None = None
        self._lead_seconds = 0.0
        self._silence_seconds = 0.0
        self._speech_seconds = 0.0  # speech since the mood became idle

    @property
    def probs(self) -> np.ndarray | None:
        """The smoothed probabilities (n_labels,), or None after silence or a reset."""
        return self._avg

    @property
    def arousal(self) -> float | None:
        """Smoothed arousal in [-1, 1] (> 0: agitated), or None (idle, or no arousal head)."""
        return self._dim(0)

    @property
    def valence(self) -> float | None:
        """Smoothed valence in [-1, 1] (> 0: positive), or None."""
        return self._dim(1)

    def _dim(self, k: int) -> float | None:
        if self._dims is None or self.mood == IDLE or not np.isfinite(self._dims[k]):
            return None
        return float(self._dims[k])

    def reset(self, *, t: float) -> bool:
        """Forget everything (mute): the mood becomes ``idle``; returns True if it changed."""
        changed = self.mood != IDLE
        if changed:
            self.mood, self.since = IDLE, t
        self._avg, self._dims, self._lead, self._lead_seconds, self._silence_seconds = None, None, None, 0.0, 0.0
        self._speech_seconds = 0.0
        return changed

    def mood_confidence(self) -> float | None:
        """Smoothed probability of the current mood's label (None when idle)."""
        if self._avg is None or self.mood == IDLE:
            return None
        return float(self._avg[self.labels.index(self.mood)])

    def update(self, *, t: float, hop_seconds: float, probs: np.ndarray | None,
               arousal: float | None = None, valence: float | None = None, settled: bool = True) -> MoodState:
        """Feed one window ending at stream time ``t``; ``probs`` (n_labels,) or None for silence;
        its ``arousal`` and ``valence`` (None: the model has no such head)."""
        changed = False
        if probs is None:
            self._silence_seconds += hop_seconds
            if self.mood != IDLE and self._silence_seconds >= self.idle_after_seconds - 1e-9:
                self.mood, self.since, changed = IDLE, t, True
                self._avg, self._dims, self._lead, self._lead_seconds = None, None, None, 0.0
                self._speech_seconds = 0.0
            return MoodState(self.mood, self.mood_confidence(), self.since, changed)

        self._silence_seconds = 0.0
        p = np.asarray(probs, dtype=np.float64)
        dims = np.array([np.nan if arousal is None else arousal, np.nan if valence is None else valence])
        if self._avg is None:
            self._avg, self._dims = p.copy(), dims
        else:
            alpha = 1.0 if self.smoothing_seconds <= 0 else 1.0 - math.exp(-hop_seconds / self.smoothing_seconds)
            self._avg = (1.0 - alpha) * self._avg + alpha * p
            self._dims = (1.0 - alpha) * self._dims + alpha * dims
        agitated = settled and self._is_agitated()
        lead = int(np.argmax(np.where(self._agitated, self._avg, -1.0))) if agitated else int(np.argmax(self._avg))
        if self.labels[lead] == self.mood:
            self._lead, self._lead_seconds = None, 0.0
        else:
            if lead == self._lead:
                self._lead_seconds += hop_seconds
            else:
                self._lead, self._lead_seconds = lead, hop_seconds
            rest = self.labels[lead] in REST
            sure = rest or agitated or (settled and self._avg[lead] >= self.min_confidence)
            if self._lead_seconds >= self.min_dwell_seconds - 1e-9 and sure:
                self.mood, self.since, changed = self.labels[lead], t, True
                self._lead, self._lead_seconds = None, 0.0
        if self.mood == IDLE:
            self._speech_seconds += hop_seconds
            if self._rest and self._speech_seconds >= self.min_dwell_seconds - 1e-9:
                best_rest = max(self._rest, key=lambda i: self._avg[i])
                self.mood, self.since, changed = self.labels[best_rest], t, True
                self._lead, self._lead_seconds = None, 0.0
        return MoodState(self.mood, self.mood_confidence(), self.since, changed)

    def _is_agitated(self) -> bool:
        """Whether the smoothed arousal says agitated: at least ``arousal_on``, or ``arousal_off`` while
        the mood already is agitated (hysteresis). False without ``arousal_on`` or an arousal head."""
        if self.arousal_on is None or self._dims is None or not np.isfinite(self._dims[0]):
            return False
        threshold = self.arousal_off if self.mood in AGITATED else self.arousal_on
        return bool(self._dims[0] >= threshold)
