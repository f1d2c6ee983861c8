"""Windowing, speech gate, features and classification of a 16 kHz sample stream.

:class:`Analyzer` is the one implementation behind ``run`` (streaming),
``classify`` and ``train``/``evaluate`` (offline): they all push samples into
it, in whatever block sizes they have. Frames are computed once each, in
batches fixed by the window ends (the first window's frames, then one hop's
worth per window), so the results do not depend on the block sizes at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import features as F
from . import vad
from .adaptation import RunningStats
from .voices import Household
from .config import VAD_BAND_HZ, VAD_THRESHOLD_DBFS, Config, ConfigError
from .model import Model


@dataclass(frozen=True)
class WindowResult:
    """One hop's result. ``t``: stream time (s) at the window's end."""

    t: float
    speech: bool
    label: str | None
    confidence: float | None
    probs: np.ndarray | None  # (n_labels,) or None without speech
    level_dbfs: float
    arousal: float | None = None  # [-1, 1], > 0 agitated; None without speech or without the head
    valence: float | None = None  # [-1, 1], > 0 positive
    padded: bool = False  # True for the one window of an input shorter than a window
    vector: np.ndarray | None = None  # the model input: speech windows of a model-less analyzer, or keep_vectors=True


def probs_json(probs: np.ndarray | None, labels: tuple[str, ...]) -> dict[str, float] | None:
    """Probabilities as the JSON contracts print them: by label, 4 decimals (None stays None)."""
    return None if probs is None else {lab: round(float(q), 4) for lab, q in zip(labels, probs)}


class WindowScorer:
    """The model's answer for one speech window vector: emotion probabilities, arousal and valence.

    With ``adapter`` (the stream's statistics) the window goes to the adaptive heads, normalised
    with the statistics of the speech heard *before* it (those of its voice, with a
    :class:`~ser_stream.voices.Household` that tells voices apart), and is then offered to them with
    its arousal (:meth:`~ser_stream.adaptation.RunningStats.offer` keeps the calmer half); the
    arousal it answers is relative to the voice's baseline (:class:`~ser_stream.adaptation.ArousalBaseline`). With
    ``label_prior`` (n_labels,) the probabilities are reweighted by Bayes' rule from the training
    corpus's label frequencies (``model.meta["training"]["label_share"]``, uniform when absent) to
    that prior. Owned by the pipeline thread (the adapter is its state).
    """

    def __init__(self, model: Model, *, adapter: Household | RunningStats | None = None,
                 label_prior: np.ndarray | None = None) -> None:
        if adapter is not None and model.adaptive is None:
            raise ValueError("adaptation needs a model with an adaptive head")
        self.model = model
        self.adapter = adapter
        self.heads = model.heads if adapter is None else model.adaptive.heads
        self.weights = None if label_prior is None else prior_weights(model, label_prior)

    def score(self, vector: np.ndarray) -> tuple[np.ndarray, float | None, float | None]:
        """(probs (n_labels,), arousal, valence) of one window vector (D,)."""
        voice = None if self.adapter is None else self.adapter.voice_of(vector)
        x = vector if voice is None else voice.normalise(vector)
        probs, arousal, valence = self.heads.answer(x)
        if self.weights is not None:
            probs = probs * self.weights
            probs = probs / probs.sum()
        if voice is not None:
            # the calmer half is ranked by the head's own arousal: the relative one moves with the baseline
            # (a voice below the head's boundary drifts up against a falling median, and was never offered)
            heard = arousal
            if arousal is not None:
                arousal = voice.relative_arousal(arousal)
            voice.offer(vector, arousal=heard)
        return probs, arousal, valence

    def scored(self, window: WindowResult) -> WindowResult:
        """A speech ``window`` (with its ``vector``) with this scorer's answer: label, confidence,
        probabilities, arousal and valence."""
        probs, arousal, valence = self.score(window.vector)
        best = int(np.argmax(probs))
        return replace(window, label=self.model.labels[best], confidence=float(probs[best]), probs=probs,
                       arousal=arousal, valence=valence)


def prior_weights(model: Model, label_prior: np.ndarray) -> np.ndarray:
    """Bayes' rule weights (n_labels,): the household prior over the training share of each label."""
    share = (model.meta.get("training") or {}).get("label_share")
    train = np.full(len(model.labels), 1.0 / len(model.labels)) if not share else \
        np.array([float(share[lab]) for lab in model.labels])
    prior = np.asarray(label_prior, dtype=np.float64)
    return (prior / prior.sum()) / train


def label_prior(config: Config, model: Model) -> np.ndarray | None:
    """``model.household_prior`` as (n_labels,) in the model's label order (labels it omits get 0.01), or None.
    Raises ConfigError (exit 78) for a label the loaded model does not have."""
    prior = config.model.household_prior
    if prior is None:
        return None
    unknown = sorted(set(prior) - set(model.labels))
    if unknown:
        raise ConfigError(f"model.household_prior: {', '.join(unknown)} is not a label of the model {model.path} "
                          f"({', '.join(model.labels)})")
    return np.array([prior.get(lab, 0.01) for lab in model.labels], dtype=np.float64)


MAX_ABS_SAMPLE = 16.0  # float audio is nominally within [-1, 1]; beyond 24 dB over full scale it is damage


def _round_to(value_seconds: float, *, sr: int, step: int) -> int:
    return max(step, int(round(value_seconds * sr / step)) * step)


class Analyzer:
    """Stateful stream analyser; owned by one thread (not thread-safe).

    ``push(samples)`` takes float32 mono samples at the feature rate and returns
    the windows completed by them (zero or more). With a ``model`` speech windows
    are classified (``classify``); without one they carry their ``vector`` for
    :class:`~ser_stream.moodstep.MoodStep` (``run``, evaluation).
    """

    def __init__(
        self,
        *,
        fdef: F.FeatureDefinition,
        model: Model | None,
        window_seconds: float,
        hop_seconds: float,
        vad_enabled: bool = True,
        vad_threshold_dbfs: float = VAD_THRESHOLD_DBFS,
        vad_noise_margin_db: float = 10.0,
        vad_band_hz: tuple[float, float] | None = VAD_BAND_HZ,
        vad_min_active_seconds: float = 0.5,
        keep_vectors: bool = False,
        adapter: Household | RunningStats | None = None,
        label_prior: np.ndarray | None = None,
    ) -> None:
        if adapter is not None and model is None:
            raise ValueError("adaptation needs a model with an adaptive head")
        self.fdef = fdef
        self.model = model
        self.scorer = None if model is None else WindowScorer(model, adapter=adapter, label_prior=label_prior)
        sr, fh = fdef.sample_rate_hz, fdef.hop_samples
        self.sample_rate_hz = sr
        self.window_samples = max(_round_to(window_seconds, sr=sr, step=fh), fdef.n_fft)
        self.hop_samples = _round_to(hop_seconds, sr=sr, step=fh)
        self.hop_seconds = self.hop_samples / sr
        self.vad_enabled = vad_enabled
        self.vad_threshold_dbfs = vad_threshold_dbfs
        self.vad_noise_margin_db = vad_noise_margin_db
        self.vad_bands = None if vad_band_hz is None else fdef.mel_bands_within(*vad_band_hz)
        self.vad_min_active_seconds = vad_min_active_seconds
        self.keep_vectors = keep_vectors
        self.damaged_samples = 0  # non-finite or absurdly large input samples replaced (see push)
        self.reset(t0=0.0)

    def reset(self, *, t0: float) -> None:
        """Start afresh (after a mute): the next sample is stream time ``t0`` seconds."""
        fdef = self.fdef
        self.t0 = t0
        self.windows_emitted = 0
        self.samples_seen = 0
        self._buf = np.zeros(0, dtype=np.float32)  # samples from global index _buf0 on
        self._buf0 = 0
        self._frames = np.zeros((0, fdef.n_frame_columns), dtype=np.float32)  # from global frame _frame0
        self._bands = np.zeros(0, dtype=np.float32)  # the same frames' speech-band level, when the gate uses it
        self._frame0 = 0
        self._next_frame = 0
        self._next_end = self.window_samples

    def push(self, samples: np.ndarray) -> list[WindowResult]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        # two reductions, no temporary; NaN fails both comparisons
        if samples.size and not (samples.max() <= MAX_ABS_SAMPLE and samples.min() >= -MAX_ABS_SAMPLE):
            # a damaged file or device: NaN/infinity become silence, absurd magnitudes are clipped
            self.damaged_samples += int(np.count_nonzero(~np.isfinite(samples) | (np.abs(samples) > MAX_ABS_SAMPLE)))
            samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0), -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE)
        if samples.size:
            self._buf = np.concatenate([self._buf, samples])
            self.samples_seen += samples.size
        out = []
        while self.samples_seen >= self._next_end:
            out.append(self._emit(self._next_end))
            self._next_end += self.hop_samples
        return out

    def flush_short(self) -> WindowResult | None:
        """At end of input: if no window was completed, zero-pad to one window and classify it."""
        if self.windows_emitted or self.samples_seen == 0:
            return None
        real_t = self.t0 + self.samples_seen / self.sample_rate_hz
        res = self.push(np.zeros(self.window_samples - self.samples_seen, dtype=np.float32))[0]
        return replace(res, padded=True, t=real_t)

    def _compute_frames(self, last_frame: int) -> None:
        fh, n_fft = self.fdef.hop_samples, self.fdef.n_fft
        count = last_frame + 1 - self._next_frame
        if count <= 0:
            return
        off = self._next_frame * fh - self._buf0
        seg = self._buf[off : off + (count - 1) * fh + n_fft]
        new = F.frame_features(F.frame_signal(seg, n_fft=n_fft, hop=fh), fdef=self.fdef)
        self._frames = np.concatenate([self._frames, new]) if self._frames.size else new
        if self.vad_bands is not None:  # once per frame, not once per window that holds it
            self._bands = np.concatenate([self._bands, F.band_level_db(new, self.vad_bands)])
        self._next_frame = last_frame + 1
        # samples before the next frame's start are no longer needed
        drop = self._next_frame * fh - self._buf0
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf0 += drop

    def _emit(self, end: int) -> WindowResult:
        fh, n_fft = self.fdef.hop_samples, self.fdef.n_fft
        start = end - self.window_samples
        first_frame, last_frame = start // fh, (end - n_fft) // fh
        self._compute_frames(last_frame)
        window = slice(first_frame - self._frame0, last_frame + 1 - self._frame0)
        feats, bands = self._frames[window], self._bands[window] if self.vad_bands is not None else None
        # frames before the next window's first frame are no longer needed
        keep_from = (start + self.hop_samples) // fh
        if keep_from > self._frame0:
            self._frames = self._frames[keep_from - self._frame0 :]
            self._bands = self._bands[keep_from - self._frame0 :]
            self._frame0 = keep_from
        self.windows_emitted += 1
        return self._classify(feats, bands, t=self.t0 + end / self.sample_rate_hz)

    def _classify(self, feats: np.ndarray, bands: np.ndarray | None, *, t: float) -> WindowResult:
        """``bands``: the frames' speech-band level (:func:`~ser_stream.features.band_level_db`), or None."""
        fdef = self.fdef
        level = F.window_level_dbfs(feats, fdef=fdef)
        if self.vad_enabled:
            active = vad.active_frames(
                feats[:, F.level_column(fdef=fdef)],
                threshold_dbfs=self.vad_threshold_dbfs,
                noise_margin_db=self.vad_noise_margin_db,
                band_db=bands,
            )
            speech = vad.is_speech(
                active, frame_seconds=fdef.hop_samples / fdef.sample_rate_hz, min_active_seconds=self.vad_min_active_seconds
            )
        else:
            active, speech = np.ones(feats.shape[0], dtype=bool), True
        vector = F.window_vector(feats, active=active, fdef=fdef) if (speech or self.keep_vectors) else None
        res = WindowResult(t=t, speech=speech, label=None, confidence=None, probs=None, level_dbfs=level,
                           vector=vector)
        if speech and self.scorer is not None:
            res = self.scorer.scored(res)
        return res if (self.keep_vectors or self.scorer is None) else replace(res, vector=None)


def make_analyzer(config: Config, model: Model | None, *, keep_vectors: bool = False,
                  adapter: Household | RunningStats | None = None, fdef: F.FeatureDefinition | None = None) -> Analyzer:
    """The configured analyzer for ``model`` (None: vectors and speech only, of ``fdef``)."""
    return Analyzer(
        fdef=model.features if model is not None else fdef,
        model=model,
        window_seconds=config.window.length_seconds,
        hop_seconds=config.window.hop_seconds,
        vad_enabled=config.vad.enabled,
        vad_threshold_dbfs=config.vad.threshold_dbfs,
        vad_noise_margin_db=config.vad.noise_margin_db,
        vad_band_hz=config.vad.band_hz,
        vad_min_active_seconds=config.vad.min_active_seconds,
        keep_vectors=keep_vectors,
        adapter=adapter,
        label_prior=None if model is None else label_prior(config, model),
    )
