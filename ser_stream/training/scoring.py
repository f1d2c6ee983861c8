"""What a scored stream says: a corpus's streams heard as ``run`` hears them, window by window, and
the measures taken of them.

Each analysed :class:`~ser_stream.training.streams.Stream` is scored window by
window in stream order with the daemon's :class:`~ser_stream.pipeline.WindowScorer`
(adaptation, calibration and household prior as configured: each window is scored
with the statistics of the speech before it) and smoothed by its
:class:`~ser_stream.mood.MoodTracker`. Scoring conventions follow
``../shared/data/emodb/README.md``: a corpus without ``calm`` counts the answer
``calm`` as ``neutral``; UAR is over the labels the corpus has; binary activation
is high (angry, happy, fearful, surprised) against low (neutral, calm, sad),
disgust left out; valence is positive (happy, calm) against negative (sad,
angry, fearful, disgust), neutral and surprised left out, reported where the
corpus has both signs. Pure functions of their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config
from ..model import LABELS, Model
from ..mood import AGITATED
from ..moodstep import MoodStep
from ..pipeline import WindowResult
from .corpora import Clip
from .fit import AROUSAL_HIGH, VALENCE_POSITIVE
from .metrics import binary_uar, expected_calibration_error, reliability, summarize_predictions
from .streams import QUARREL_SETTLE_SECONDS, Stream, is_pooled, quarrel_span

CALM_MOODS = ("neutral", "calm", "idle")  # moods that are not a trigger


@dataclass
class Scored:
    """A stream's answers per window (n,): probabilities (n, n_labels, NaN without speech), arousal,
    valence (NaN without speech) and the mood after the window."""

    stream: Stream
    probs: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray
    moods: list[str]


def score_stream(model: Model, config: Config, stream: Stream, *, step: MoodStep | None = None) -> Scored:
    """Score ``stream`` as ``run`` does, through the daemon's :class:`~ser_stream.moodstep.MoodStep`
    (``step``, default a fresh one: the population's statistics), every window in order."""
    step = MoodStep(model, config) if step is None else step
    n = stream.t.size
    probs = np.full((n, len(model.labels)), np.nan)
    arousal, valence = np.full(n, np.nan), np.full(n, np.nan)
    moods = []
    for k in range(n):
        speech = bool(stream.speech[k])
        window = WindowResult(t=float(stream.t[k]), speech=speech, label=None, confidence=None, probs=None,
                              level_dbfs=0.0, vector=stream.vectors[k] if speech else None)
        res, state = step.step(window, hop_seconds=stream.hop_seconds)
        if speech:
            probs[k] = res.probs
            arousal[k] = np.nan if res.arousal is None else res.arousal
            valence[k] = np.nan if res.valence is None else res.valence
        moods.append(state.mood)
    return Scored(stream, probs, arousal, valence, moods)


def _mood_follows(clips: list[Clip], scored: list[Scored]) -> dict[str, float | None]:
    """Does the mood follow real emotion? Over the speech windows of each speaker stream: the share
    of windows of high-activation clips (angry, happy, fearful, surprised) whose mood is an emotion,
    and of those whose mood is the clip's own label."""
    emotional = own = total = 0
    for s in scored:
        for k in np.flatnonzero(s.stream.clip_of >= 0):
            lab = LABELS[clips[int(s.stream.clip_of[k])].label]
            if AROUSAL_HIGH.get(lab) == 1:
                total += 1
                emotional += s.moods[k] not in CALM_MOODS
                own += s.moods[k] == lab
    if not total:
        return {"agitated_windows_in_emotional_mood": None, "agitated_windows_in_own_mood": None}
    return {"agitated_windows_in_emotional_mood": round(emotional / total, 4),
            "agitated_windows_in_own_mood": round(own / total, 4)}


def emotional_moods(moods: list[str]) -> tuple[int, int]:
    """(hops in an emotional mood (not neutral, calm or idle), changes into one) of a run of moods,
    the first compared with ``idle``."""
    emotional = changes = 0
    prev = "idle"
    for mood in moods:
        trig = mood not in CALM_MOODS
        emotional += trig
        changes += trig and mood != prev
        prev = mood
    return emotional, changes


def false_triggers(scored: list[Scored]) -> dict[str, Any]:
    """Neutral talk: the share of windows whose mood is an emotion (not neutral, calm or idle), and
    the changes into such a mood per hour of stream."""
    windows = emotional = changes = 0
    seconds = 0.0
    for s in scored:
        e, c = emotional_moods(s.moods)
        emotional += e
        changes += c
        windows += len(s.moods)
        seconds += s.stream.seconds
    return {"windows": windows, "hours": round(seconds / 3600, 3),
            "emotional_mood_share": round(emotional / max(windows, 1), 4),
            "changes_per_hour": round(changes / max(seconds / 3600, 1e-9), 2)}


def settled_quarrel_hops(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """Indices of the hops (window ends ``t``, s) from QUARREL_SETTLE_SECONDS into a quarrel from
    ``start`` to ``end`` (s): the hops the quarrel measure counts."""
    return np.flatnonzero((t >= start + QUARREL_SETTLE_SECONDS - 1e-9) & (t <= end + 1e-9))


def quarrels_followed(clips: list[Clip], quarrels: list[Scored]) -> dict[str, Any]:
    """A quarrel after a day of talk (:func:`~ser_stream.training.streams.quarrel_order`), per speaker:
    the share of hops from QUARREL_SETTLE_SECONDS into the quarrel to its end whose mood is agitated
    (:data:`ser_stream.mood.AGITATED`, what a quarrel should set), and whose mood is exactly ``angry``; the mean over speakers and the lowest."""
    agitated, angry = [], []
    for q in quarrels:
        hops = settled_quarrel_hops(q.stream.t, *quarrel_span(q.stream, clips))
        if hops.size == 0:
            continue
        moods = [q.moods[k] for k in hops]
        agitated.append(sum(m in AGITATED for m in moods) / len(moods))
        angry.append(sum(m == "angry" for m in moods) / len(moods))
    if not agitated:
        return {"speakers": 0, "agitated_share": None, "angry_share": None, "lowest_agitated_share": None}
    return {"speakers": len(agitated), "agitated_share": round(float(np.mean(agitated)), 4),
            "angry_share": round(float(np.mean(angry)), 4), "lowest_agitated_share": round(float(min(agitated)), 4)}


def household_summary(clips: list[Clip], scored: list[Scored], *, labels: tuple[str, ...],
                      neutral: list[Scored] | None, quarrels: list[Scored] | None = None,
                      only: list[int] | None = None) -> dict[str, Any]:
    """The household protocol's summary over every scored speaker stream (and the neutral household
    and the quarrels), over the clips ``only`` (indices into ``clips``; None: all)."""
    if only is not None:
        keep = np.zeros(len(clips), dtype=bool)
        keep[np.asarray(only, dtype=int)] = True
    else:
        keep = np.ones(len(clips), dtype=bool)
    keep &= np.array([not is_pooled(c.actor) for c in clips], dtype=bool)  # a pool of many people is no speaker
    has_calm = any(LABELS[c.label] == "calm" for c, k in zip(clips, keep) if k)
    to_corpus = np.array([LABELS.index("neutral") if (lab == "calm" and not has_calm) else LABELS.index(lab)
                          for lab in labels])
    n_clips = len(clips)
    sums = np.zeros((n_clips, len(labels)))
    counts = np.zeros(n_clips)
    ar_sum, va_sum = np.zeros(n_clips), np.zeros(n_clips)
    conf, correct = [], []
    for s in scored:
        for k in np.flatnonzero(s.stream.clip_of >= 0):
            i = int(s.stream.clip_of[k])
            sums[i] += s.probs[k]
            counts[i] += 1
            ar_sum[i] += s.arousal[k]
            va_sum[i] += s.valence[k]
            best = int(np.argmax(s.probs[k]))
            conf.append(s.probs[k, best])
            correct.append(to_corpus[best] == clips[i].label)
    heard = counts > 0
    follows = _mood_follows(clips, scored)
    y_true = np.array([c.label for c in clips])
    y_pred = np.where(heard, to_corpus[np.argmax(sums, axis=1)], -1)  # a clip without a speech window is an error
    summary = summarize_predictions(y_true[keep], y_pred[keep], labels=LABELS, protocol="household")
    names = [LABELS[i] for i in y_true]
    clip_ar = np.where(heard, ar_sum / np.maximum(counts, 1), np.nan)
    clip_va = np.where(heard, va_sum / np.maximum(counts, 1), np.nan)
    act = np.where(keep, np.array([AROUSAL_HIGH.get(n, -1) for n in names]), -1)
    val = np.where(keep, np.array([VALENCE_POSITIVE.get(n, -1) if n != "calm" or has_calm else -1 for n in names]), -1)
    ok_a, ok_v = (act >= 0) & heard & np.isfinite(clip_ar), (val >= 0) & heard & np.isfinite(clip_va)
    summary.update({
        "clips_without_speech": int((~heard & keep).sum()),
        "windows": int(len(conf)),
        "neutral_recall": summary["per_class"].get("neutral"),
        "activation_uar": binary_uar(act[ok_a], clip_ar[ok_a]),
        "valence_uar": binary_uar(val[ok_v], clip_va[ok_v]),
        "ece": round(expected_calibration_error(np.array(conf), np.array(correct, dtype=float)), 4) if conf else None,
        "window_accuracy": round(float(np.mean(correct)), 4) if conf else None,
        "mean_confidence": round(float(np.mean(conf)), 4) if conf else None,
        "mood_follows": follows,
        "reliability": reliability(np.array(conf), np.array(correct, dtype=float)) if conf else [],
    })
    if neutral is not None:
        summary["false_triggers"] = false_triggers(neutral)
    if quarrels is not None:
        summary["quarrels"] = quarrels_followed(clips, quarrels)
    return summary


def share(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None
