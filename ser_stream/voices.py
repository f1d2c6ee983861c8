"""The voices of a home: each speech window is given to a voice, and each voice is judged against
its own calm.

A home hears a few voices, and one of them may always sound livelier than the others (louder,
higher, nearer the microphone). Judged against one household baseline, that voice sets an agitated
mood whenever it talks. :class:`Household` tells the voices apart and gives each its own centre
(the adaptive heads' normalisation) and its own arousal baseline, so that the mood follows a
*change* in a voice.

- **The embedding** (:class:`VoiceEmbedding`): a linear projection of the window vector the
  emotion heads already get, fitted at training time to tell the training corpora's speakers apart
  across every emotion they act (linear discriminant analysis: the spread *within* a speaker,
  anger and sadness included, is what it learns to ignore), then length-normalised. Stored in the
  model bundle as plain arrays; one (D,) @ (D, E) product per speech window.
- **Assignment**, online, on speech windows only: a window joins the voice whose centroid is the
  most similar (cosine) when the similarity reaches the bundle's ``threshold``, and otherwise starts
  a new voice. (Keeping the previous window's voice down to 0.15 below the threshold merged
  speakers far more often than it kept anger with its voice: models/README.md.) A voice is *tentative* until TENTATIVE_WINDOWS windows joined it; beyond
  ``max_voices`` the least recently heard voice is forgotten, tentative ones first.
- **Each voice's statistics** start from the household's and move toward its own: its centre is its
  own calmer-half windows pooled with ``prior.windows`` pseudo-windows at the household's centre
  (:class:`~ser_stream.adaptation.RunningStats`, which itself starts from the training
  population's), and its arousal baseline is the median of its own recent logits pooled with as many
  pseudo-windows at the household's median (VOICE_PRIOR_WINDOWS). A voice heard for the first time is therefore judged
  against the household, never against the population prior alone, and a quarrel in it is heard; a
  voice with few windows of its own borrows most of the household's.

Nothing of a voice leaves the process: the centroids and statistics are kept in the adaptation
file only (:class:`~ser_stream.service.AdaptationStore`); what is published is the count of voices.

Pure numpy; a :class:`Household` and its voices are owned by the pipeline thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .adaptation import RECENT_WINDOWS, ArousalBaseline, Prior, RunningStats, accumulate, calmer_half

DEFAULT_MAX_VOICES = 6
TENTATIVE_WINDOWS = 5  # windows before a new voice counts as a voice of the home
CENTROID_WINDOWS = 300  # beyond this a voice's centroid forgets exponentially (5 minutes of its speech)
VOICE_PRIOR_WINDOWS = 60  # pseudo-windows at the household's arousal median in a voice's baseline (1 min of its speech)
STATE_VERSION = 2  # of the arrays a Household keeps (1: one household baseline, no voices)


@dataclass(frozen=True)
class VoiceEmbedding:
    """A speaker embedding of window vectors: ``(vector - mean) @ projection`` (D,) -> (E,),
    length-normalised; ``threshold``: the cosine similarity at which a window joins a voice."""

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, E)
    threshold: float

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        """(D,) -> (E,) or (n, D) -> (n, E) unit vectors."""
        e = (np.asarray(vectors, dtype=np.float64) - self.mean) @ self.projection
        norm = np.linalg.norm(e, axis=-1, keepdims=True)
        return e / np.maximum(norm, 1e-12)

    def to_bundle(self) -> dict[str, Any]:
        return {"mean": self.mean, "projection": self.projection, "threshold": float(self.threshold)}

    @property
    def key(self) -> str:
        """Identifies the embedding kept voices were learnt in (another one makes their centroids meaningless)."""
        import hashlib

        return hashlib.sha256(self.mean.tobytes() + self.projection.tobytes()).hexdigest()[:16]


def embedding_from_bundle(part: Any, *, n_in: int) -> VoiceEmbedding:
    """Validate a bundle's ``voices`` part; raises ValueError naming the problem."""
    if not isinstance(part, dict):
        raise ValueError("voices is not a mapping")
    for key in ("mean", "projection", "threshold"):
        if key not in part:
            raise ValueError(f"bundle lacks key 'voices.{key}'")
    mean = np.asarray(part["mean"], dtype=np.float64)
    proj = np.asarray(part["projection"], dtype=np.float64)
    threshold = float(part["threshold"])
    if mean.shape != (n_in,) or proj.ndim != 2 or proj.shape[0] != n_in or proj.shape[1] < 1:
        raise ValueError(f"voices.mean {mean.shape} / voices.projection {proj.shape} do not fit {n_in} inputs")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(proj))):
        raise ValueError("voices holds non-finite values")
    if not -1.0 < threshold < 1.0:
        raise ValueError(f"voices.threshold is {threshold}, expected within (-1, 1)")
    return VoiceEmbedding(mean, proj, threshold)


class Voice:
    """One voice: its centroid in the embedding, and its centre and arousal baseline pooled with the
    household's (see the module's docstring). Owned by its :class:`Household`."""

    def __init__(self, household: RunningStats, *, dims: int, max_windows: int, number: int = 0) -> None:
        self.household = household
        self.number = number  # in the order the household met its voices (never reused within a run)
        self.max_windows = max_windows
        self.direction = np.zeros(dims)  # the sum of the member windows' unit embeddings (forgetting)
        self.windows = 0  # windows assigned, ever
        self.last_heard = 0  # the household's window count when it last spoke
        self.n = 0.0
        self.s1 = np.zeros(household.prior.mean.shape[0])
        self.arousal = ArousalBaseline(prior_windows=VOICE_PRIOR_WINDOWS)
        self._recent: deque[float] = deque(maxlen=RECENT_WINDOWS)

    @property
    def tentative(self) -> bool:
        return self.windows < TENTATIVE_WINDOWS

    def similarity(self, e: np.ndarray) -> float:
        """Cosine similarity of a unit embedding (E,) with the voice's centroid (-1 before any window)."""
        norm = float(np.linalg.norm(self.direction))
        return float(self.direction @ e) / norm if norm > 0 else -1.0

    def join(self, e: np.ndarray, *, tick: int) -> None:
        """A window (its unit embedding) joins the voice at the household's window count ``tick``."""
        if self.windows >= CENTROID_WINDOWS:
            self.direction *= 1.0 - 1.0 / CENTROID_WINDOWS
        self.direction += e
        self.windows += 1
        self.last_heard = tick

    @property
    def mean(self) -> np.ndarray:
        """The voice's centre (D,): its own windows pooled with the household's centre."""
        w = self.household.prior.windows
        return (w * self.household.mean + self.s1) / (w + self.n)

    def normalise(self, vector: np.ndarray) -> np.ndarray:
        return self.household.prior.normalise(vector, self.mean)

    def relative_arousal(self, arousal: float) -> float:
        """``arousal`` relative to this voice's baseline (pooled with the household's median); the
        window then joins both baselines."""
        home = self.household.arousal
        relative = self.arousal.relative(arousal, anchor=home.median(), scale=home.spread_scale())
        self.arousal.add(arousal)
        self.household.arousal.add(arousal)
        return relative

    def offer(self, vector: np.ndarray, *, arousal: float | None) -> None:
        """The calmer half of the voice's speech joins its centre, and the household's (by their own medians)."""
        self.household.offer(vector, arousal=arousal)
        if calmer_half(self._recent, arousal):
            self.n = accumulate(self.n, self.s1, vector, max_windows=self.max_windows)


class Household:
    """The stream's adaptation: the household's statistics (:class:`RunningStats`) and, with an
    ``embedding``, up to ``max_voices`` voices with their own. :meth:`voice_of` gives the statistics a
    speech window is judged against (its voice, or the household without an embedding); they offer
    ``normalise``, ``relative_arousal`` and ``offer``. Owned by the pipeline thread."""

    def __init__(self, *, prior: Prior, max_windows: int, embedding: VoiceEmbedding | None = None,
                 max_voices: int = DEFAULT_MAX_VOICES, spread_reference: float | None = None) -> None:
        self.prior = prior
        self.stats = RunningStats(prior=prior, max_windows=max_windows, spread_reference=spread_reference)
        self.embedding = embedding if max_voices > 0 else None
        self.max_voices = max_voices
        self.max_windows = max_windows
        self.reset()

    def reset(self) -> None:
        """Back to the population's statistics, and no voice known."""
        self.stats.reset()
        self.voices: list[Voice] = []
        self.tick = 0
        self.met = 0  # voices met since the reset

    @property
    def n(self) -> float:
        return self.stats.n

    @property
    def settled(self) -> bool:
        return self.stats.settled

    @property
    def voice_count(self) -> int:
        """Voices of the home (tentative ones not counted): the one fact about voices that is published."""
        return sum(not v.tentative for v in self.voices)

    def voice_of(self, vector: np.ndarray) -> RunningStats | Voice:
        """The statistics a speech window (D,) is judged against: its voice, assigned here."""
        if self.embedding is None:
            return self.stats
        self.tick += 1
        e = self.embedding.embed(vector)
        voice = self._assign(e)
        voice.join(e, tick=self.tick)
        return voice

    def _assign(self, e: np.ndarray) -> Voice:
        if self.voices:
            sims = [v.similarity(e) for v in self.voices]
            best = int(np.argmax(sims))
            if sims[best] >= self.embedding.threshold:
                return self.voices[best]
        if len(self.voices) >= self.max_voices:
            self.voices.remove(min(self.voices, key=lambda v: (not v.tentative, v.last_heard)))
        self.met += 1
        voice = Voice(self.stats, dims=e.shape[0], max_windows=self.max_windows, number=self.met)
        self.voices.append(voice)
        return voice

    # -- kept across restarts (the adaptation file) ------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The household's arrays (as version 1 had them) and the voices', with ``state_version``."""
        out = {"state_version": np.array(STATE_VERSION), **self.stats.to_arrays(),
               "voice_embedding_key": np.array("" if self.embedding is None else self.embedding.key)}
        vs = self.voices
        d = self.prior.mean.shape[0]
        dims = 0 if self.embedding is None else self.embedding.projection.shape[1]
        out.update({
            "voice_direction": np.array([v.direction for v in vs]).reshape(len(vs), dims),
            "voice_windows": np.array([v.windows for v in vs], dtype=np.int64),
            "voice_last_heard": np.array([v.last_heard for v in vs], dtype=np.int64),
            "voice_n": np.array([v.n for v in vs], dtype=np.float64),
            "voice_s1": np.array([v.s1 for v in vs]).reshape(len(vs), d),
            "voice_arousal_lengths": np.array([len(v.arousal.to_array()) for v in vs], dtype=np.int64),
            "voice_arousal_logits": np.concatenate([v.arousal.to_array() for v in vs] or [np.zeros(0)]),
            "tick": np.array(self.tick, dtype=np.int64),
        })
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> str:
        """Restore :meth:`to_arrays`, or a version 1 file (the household's statistics, no voices);
        returns what was restored, for the log. Raises ValueError when the arrays do not fit."""
        version = int(arrays["state_version"]) if "state_version" in arrays else 1
        if version not in (1, STATE_VERSION):
            raise ValueError(f"state_version {version}, this release reads 1 and {STATE_VERSION}")
        self.reset()
        self.stats.load_arrays(arrays)
        household = f"{self.stats.n:.0f} speech windows of household statistics"
        if version == 1 or self.embedding is None:
            return household + ("" if version > 1 else " (a file without voices: the voices are learnt anew)")
        if str(arrays.get("voice_embedding_key", "")) != self.embedding.key:
            return household + " (voices of another embedding set aside: learnt anew)"
        dims, d = self.embedding.projection.shape[1], self.prior.mean.shape[0]
        direction = np.asarray(arrays["voice_direction"], dtype=np.float64)
        count = direction.shape[0]
        s1 = np.asarray(arrays["voice_s1"], dtype=np.float64)
        n = np.asarray(arrays["voice_n"], dtype=np.float64)
        lengths = np.asarray(arrays["voice_arousal_lengths"], dtype=np.int64)
        logits = np.asarray(arrays["voice_arousal_logits"], dtype=np.float64)
        windows = np.asarray(arrays["voice_windows"], dtype=np.int64)
        last = np.asarray(arrays["voice_last_heard"], dtype=np.int64)
        if direction.shape != (count, dims) or s1.shape != (count, d) or n.shape != (count,) or \
                lengths.shape != (count,) or windows.shape != (count,) or last.shape != (count,) or \
                int(lengths.sum()) != logits.size or np.any(lengths < 0) or np.any(n < 0):
            raise ValueError(f"the voices' arrays do not fit {dims} embedding and {d} vector dimensions")
        if not (np.all(np.isfinite(direction)) and np.all(np.isfinite(s1)) and np.all(np.isfinite(n))):
            raise ValueError("the voices' statistics hold non-finite values")
        keep = np.argsort(last)[-self.max_voices:] if self.max_voices > 0 else np.zeros(0, dtype=int)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for k in sorted(keep):
            voice = Voice(self.stats, dims=dims, max_windows=self.max_windows, number=len(self.voices) + 1)
            voice.direction, voice.windows, voice.last_heard = direction[k].copy(), int(windows[k]), int(last[k])
            voice.n, voice.s1 = float(min(n[k], self.max_windows)), s1[k] * (min(n[k], self.max_windows) / max(n[k], 1e-12))
            voice.arousal.load_array(logits[starts[k]:starts[k + 1]])
            self.voices.append(voice)
        self.met = len(self.voices)
        self.tick = int(arrays.get("tick", last.max(initial=0)))
        return f"{household} and {self.voice_count} voices"
