"""The household protocol: a corpus heard through the daemon's own streaming path, and its scores.

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
corpus has both signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config
from ..model import LABELS, Model
from ..moodstep import MoodStep
from ..pipeline import WindowResult
from .corpora import Clip
from .fit import AROUSAL_HIGH, VALENCE_POSITIVE
from .metrics import binary_uar, expected_calibration_error, reliability, summarize_predictions
from .streams import GAP_SECONDS, NEUTRAL_GAP_SECONDS, Stream, analyse_streams, speaker_order

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


def score_stream(model: Model, config: Config, stream: Stream) -> Scored:
    """Score ``stream`` as ``run`` does, through the daemon's :class:`~ser_stream.moodstep.MoodStep`:
    a fresh adapter (the population's statistics), then every window in order."""
    step = MoodStep(model, config)
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


def false_triggers(scored: list[Scored]) -> dict[str, Any]:
    """Neutral talk: the share of windows whose mood is an emotion (not neutral, calm or idle), and
    the changes into such a mood per hour of stream."""
    windows = emotional = changes = 0
    seconds = 0.0
    for s in scored:
        prev = "idle"
        for mood in s.moods:
            trig = mood not in CALM_MOODS
            emotional += trig
            changes += trig and mood != prev
            prev = mood
        windows += len(s.moods)
        seconds += s.stream.seconds
    return {"windows": windows, "hours": round(seconds / 3600, 3),
            "emotional_mood_share": round(emotional / max(windows, 1), 4),
            "changes_per_hour": round(changes / max(seconds / 3600, 1e-9), 2)}


def household_summary(clips: list[Clip], scored: list[Scored], *, labels: tuple[str, ...],
                      neutral: list[Scored] | None) -> dict[str, Any]:
    """The household protocol's summary over every scored speaker stream (and the neutral household)."""
    has_calm = any(LABELS[c.label] == "calm" for c in clips)
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
    summary = summarize_predictions(y_true, y_pred, labels=LABELS, protocol="household")
    names = [LABELS[i] for i in y_true]
    clip_ar = np.where(heard, ar_sum / np.maximum(counts, 1), np.nan)
    clip_va = np.where(heard, va_sum / np.maximum(counts, 1), np.nan)
    act = np.array([AROUSAL_HIGH.get(n, -1) for n in names])
    val = np.array([VALENCE_POSITIVE.get(n, -1) if n != "calm" or has_calm else -1 for n in names])
    ok_a, ok_v = (act >= 0) & heard & np.isfinite(clip_ar), (val >= 0) & heard & np.isfinite(clip_va)
    summary.update({
        "clips_without_speech": int((~heard).sum()),
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
    return summary


@dataclass
class CrossValidation:
    """The household protocol over actor-grouped folds: its summary, the speaker-independent summary of
    the same fold models, and the held-out log-probabilities the final model's temperatures are fitted on."""

    household: dict[str, Any]
    speaker_independent: dict[str, Any]
    oof: dict[str, tuple[np.ndarray, np.ndarray]]  # head -> (log-probs (n, 8), labels (n,)), held-out windows
    models: list[Model]  # the fold models, uncalibrated


def _attributed(scored: Scored, clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
    k = np.flatnonzero(scored.stream.clip_of >= 0)
    return np.log(np.maximum(scored.probs[k], 1e-12)), np.array([clips[int(i)].label for i in scored.stream.clip_of[k]])


def household_cv(clips: list[Clip], data: Any, streams: list[Stream], neutral: list[Stream], splits: list[Any], *,
                 fdef: Any, config: Config, seed: int, jobs: int, models: list[Model] | None = None) -> CrossValidation:
    """Train on all folds but one (or take the fold ``models`` of an earlier run), stream the held-out
    actors (``streams``, one per speaker, and ``neutral[k]``, fold k's neutral household). Each fold's
    published confidence is calibrated with a temperature fitted on the *other* folds' held-out
    windows (never on its own actors)."""
    from joblib import Parallel, delayed

    from .fit import calibrated, fit_model, fit_temperature

    if models is None:
        models = Parallel(n_jobs=min(jobs, len(splits)))(
            delayed(fit_model)(clips, data, list(tr), fdef=fdef, seed=seed) for tr, _ in splits)
    fold_of = {}
    for k, (_, te) in enumerate(splits):
        fold_of.update({clips[int(i)].actor: k for i in te})
    by_fold = [[s for s in streams if fold_of[clips[int(s.clips[0])].actor] == k] for k in range(len(splits))]
    raw = config.model_copy(update={"model": config.model.model_copy(update={"household_prior": None})})
    adapting = config.adaptation.enabled
    # held-out windows at temperature 1, per fold: the streamed head and the speaker-independent one
    oof_stream = [[_attributed(score_stream(models[k], raw, s), clips) for s in by_fold[k]] for k in range(len(splits))]
    oof_si = []
    for k, (_, te) in enumerate(splits):
        vec = np.concatenate([data.test[int(i)] for i in te])
        lab = np.concatenate([np.full(data.test[int(i)].shape[0], clips[int(i)].label) for i in te])
        oof_si.append((np.log(np.maximum(models[k].predict_proba(vec), 1e-12)), lab))

    def others(parts: list[Any], k: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = [p for j, fold in enumerate(parts) if j != k for p in (fold if isinstance(fold, list) else [fold])]
        return np.concatenate([c[0] for c in chosen]), np.concatenate([c[1] for c in chosen])

    scored, neutral_scored, y_true, y_pred = [], [], [], []
    for k, (_, te) in enumerate(splits):
        t = fit_temperature(*others(oof_stream, k))
        t_si = fit_temperature(*others(oof_si, k))
        model = calibrated(models[k], speaker_independent=t_si, adaptive=t if adapting else None)
        if not adapting:
            model = calibrated(model, speaker_independent=t)
        scored += [score_stream(model, config, s) for s in by_fold[k]]
        neutral_scored.append(score_stream(model, config, neutral[k]))
        probs = np.stack([models[k].predict_proba(data.test[int(i)]).mean(axis=0) for i in te])
        y_true.append([clips[int(i)].label for i in te])
        y_pred.append(np.argmax(probs, axis=1))
    summary = household_summary(clips, scored, labels=LABELS, neutral=neutral_scored)
    si = summarize_predictions(np.concatenate(y_true), np.concatenate(y_pred), labels=LABELS,
                               protocol="speaker-independent")
    flat = [p for fold in oof_stream for p in fold]
    oof = {"streamed": (np.concatenate([p[0] for p in flat]), np.concatenate([p[1] for p in flat])),
           "speaker-independent": (np.concatenate([p[0] for p in oof_si]), np.concatenate([p[1] for p in oof_si]))}
    return CrossValidation(summary, si, oof, models)


def corpus_streams(clips: list[Clip], *, fdef: Any, config: Config, jobs: int, seed: int,
                   neutral_groups: dict[str, list[int]] | None = None) -> tuple[list[Stream], list[Stream]]:
    """One stream per speaker (seeded order, GAP_SECONDS apart) and the neutral households: by default
    all neutral clips of the corpus in file order, else one per entry of ``neutral_groups``."""
    speakers = sorted({c.actor for c in clips}, key=str)
    orders = {str(a): speaker_order(clips, a, seed=seed) for a in speakers}
    streams = analyse_streams(clips, orders, gap=GAP_SECONDS, fdef=fdef, config=config, jobs=jobs, seed=seed)
    if neutral_groups is None:
        neutral_groups = {"neutral": [i for i, c in enumerate(clips) if LABELS[c.label] == "neutral"]}
    neutral_groups = {k: v for k, v in neutral_groups.items() if v}
    neutral = analyse_streams(clips, neutral_groups, gap=NEUTRAL_GAP_SECONDS, fdef=fdef, config=config, jobs=jobs,
                              seed=seed)
    return streams, neutral


def actor_folds(clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Six folds grouped by speaker (fewer with fewer speakers): no voice in both train and test."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([str(c.actor) for c in clips])
    return list(GroupKFold(n_splits=min(6, len(set(groups)))).split(np.zeros(len(clips)), groups=groups))


def household_cross_validation(clips: list[Clip], data: Any, *, fdef: Any, config: Config, seed: int,
                               jobs: int) -> CrossValidation:
    """:func:`household_cv` over :func:`actor_folds`, each fold's held-out neutral clips one household."""
    splits = actor_folds(clips)
    groups = {f"fold{k}": [int(i) for i in te if LABELS[clips[int(i)].label] == "neutral"] for k, (_, te) in enumerate(splits)}
    streams, neutral = corpus_streams(clips, fdef=fdef, config=config, jobs=jobs, seed=seed, neutral_groups=groups)
    by_name = {s.name: s for s in neutral}
    return household_cv(clips, data, streams, [by_name[f"fold{k}"] for k in range(len(splits))], splits, fdef=fdef,
                        config=config, seed=seed, jobs=jobs)


def evaluate_household(model: Model, clips: list[Clip], *, config: Config, jobs: int, seed: int) -> dict[str, Any]:
    """A fixed bundle on any labelled corpus, through the streaming path as configured."""
    streams, neutral = corpus_streams(clips, fdef=model.features, config=config, jobs=jobs, seed=seed)
    scored = [score_stream(model, config, s) for s in streams]
    neutral_scored = [score_stream(model, config, s) for s in neutral]
    summary = household_summary(clips, scored, labels=model.labels, neutral=neutral_scored or None)
    return {**summary, "adaptation": bool(config.adaptation.enabled and model.adaptive is not None),
            "household_prior": config.model.household_prior}
