"""Smoothing of per-window probabilities into a stable mood. No I/O.

Rules (all times in stream seconds):
- Speech windows feed an exponential moving average of the class
  probabilities, time constant ``smoothing_seconds``.
- The mood changes to the average's leading label only after that label has
  led for ``min_dwell_seconds`` of speech windows in a row *and* its averaged
  probability is at least ``min_confidence``. One odd window cannot flip it.
- Silence windows change nothing, until ``idle_after_seconds`` of continuous
  silence: then the mood returns to ``idle`` and the average is forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IDLE = "idle"

# Position of each emotion on Russell's circumplex, (valence, arousal) in [-1, 1].
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "calm": (0.4, -0.6),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8),
    "fearful": (-0.7, 0.6),
    "disgust": (-0.7, 0.2),
    "surprised": (0.3, 0.8),
}


def arousal_valence(probs: np.ndarray, *, labels: tuple[str, ...]) -> tuple[float, float]:
    """Expected (arousal, valence) in [-1, 1] under ``probs`` (n_labels,); unknown labels count as (0, 0)."""
    coords = np.array([CIRCUMPLEX.get(lab, (0.0, 0.0)) for lab in labels])
    valence, arousal = np.asarray(probs, dtype=np.float64) @ coords
    return float(arousal), float(valence)


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
    ) -> None:
        self.labels = labels
        self.min_confidence = min_confidence
        self.min_dwell_seconds = min_dwell_seconds
        self.smoothing_seconds = smoothing_seconds
        self.idle_after_seconds = idle_after_seconds
        self.mood = IDLE
        self.since = 0.0
        self._avg: np.ndarray | None = None
        self._lead: int | None = None
        self._lead_seconds = 0.0
        self._silence_seconds = 0.0

    @property
    def probs(self) -> np.ndarray | None:
        """The smoothed probabilities (n_labels,), or None after silence or a reset."""
        return self._avg

    def reset(self, *, t: float) -> bool:
        """Forget everything (mute): the mood becomes ``idle``; returns True if it changed."""
        changed = self.mood != IDLE
        if changed:
            self.mood, self.since = IDLE, t
        self._avg, self._lead, self._lead_seconds, self._silence_seconds = None, None, 0.0, 0.0
        return changed

    def mood_confidence(self) -> float | None:
        """Smoothed probability of the current mood's label (None when idle)."""
        if self._avg is None or self.mood == IDLE:
            return None
        return float(self._avg[self.labels.index(self.mood)])

    def update(self, *, t: float, hop_seconds: float, probs: np.ndarray | None) -> MoodState:
        """Feed one window ending at stream time ``t``; ``probs`` (n_labels,) or None for silence."""
        changed = False
        if probs is None:
            self._silence_seconds += hop_seconds
            if self.mood != IDLE and self._silence_seconds >= self.idle_after_seconds - 1e-9:
                self.mood, self.since, changed = IDLE, t, True
                self._avg, self._lead, self._lead_seconds = None, None, 0.0
            return MoodState(self.mood, self.mood_confidence(), self.since, changed)

        self._silence_seconds = 0.0
        p = np.asarray(probs, dtype=np.float64)
        if self._avg is None:
            self._avg = p.copy()
        else:
            alpha = 1.0 if self.smoothing_seconds <= 0 else 1.0 - math.exp(-hop_seconds / self.smoothing_seconds)
            self._avg = (1.0 - alpha) * self._avg + alpha * p
        lead = int(np.argmax(self._avg))
        if self.labels[lead] == self.mood:
            self._lead, self._lead_seconds = None, 0.0
        else:
            if lead == self._lead:
                self._lead_seconds += hop_seconds
            else:
                self._lead, self._lead_seconds = lead, hop_seconds
            if self._lead_seconds >= self.min_dwell_seconds - 1e-9 and self._avg[lead] >= self.min_confidence:
                self.mood, self.since, changed = self.labels[lead], t, True
                self._lead, self._lead_seconds = None, 0.0
        return MoodState(self.mood, self.mood_confidence(), self.since, changed)
