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

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..adaptation import arousal_logit
from ..augment import HOME_ACOUSTICS
from ..config import Config
from ..model import LABELS, Model
from ..mood import AGITATED
from ..moodstep import MoodStep
from ..pipeline import WindowResult
from ..voices import DEFAULT_MAX_VOICES
from .corpora import Clip, corpora_of
from .fit import AROUSAL_HIGH, VALENCE_POSITIVE
from .metrics import binary_uar, expected_calibration_error, reliability, summarize_predictions
from .streams import (GAP_SECONDS, HOUSEHOLD_SIZES, NEUTRAL_GAP_SECONDS, QUARREL_SETTLE_SECONDS, HomePlan, Stream,
                      analyse_streams, calm_label, home_plans, is_pooled, quarrel_order, quarrel_span, speaker_order)
from .voices import VOICE_CHECK_SIZES, voice_assignment

log = logging.getLogger(__name__)

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


def _share(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def home_measures(model: Model, config: Config, homes: list[tuple[HomePlan, Stream]]) -> list[dict[str, Any]]:
    """The households of K voices (:func:`~ser_stream.training.streams.home_plans`), one row per
    acoustics and K: the share of calm-talk hops (from the second pass on) in an emotional mood, the
    changes into one per hour of calm talk, the share of the quarrel's hops from
    QUARREL_SETTLE_SECONDS in that are agitated (mean over homes, and the lowest home), and the
    voices the daemon knows at the end (mean over homes: more than K when anger made a voice of its own)."""
    groups: dict[tuple[str, int], list[tuple[HomePlan, Stream]]] = {}
    for plan, stream in homes:
        groups.setdefault((plan.acoustics, len(plan.members)), []).append((plan, stream))
    rows = []
    for (acoustics, k), members in groups.items():
        calm_hops = emotional = changes = 0
        calm_seconds = 0.0
        quarrel, voices = [], []
        for plan, stream in members:
            step = MoodStep(model, config)
            scored = score_stream(model, config, stream, step=step)
            t, moods = stream.t, scored.moods
            start, end = float(stream.starts[plan.count_from]), float(stream.starts[plan.quarrel_from])
            calm = [moods[j] for j in np.flatnonzero((t > start) & (t <= end + 1e-9))]
            e, c = emotional_moods(calm)
            emotional += e
            changes += c
            calm_hops += len(calm)
            calm_seconds += end - start
            hops = settled_quarrel_hops(t, end, float(stream.ends[-1]))
            if hops.size:
                quarrel.append(sum(moods[j] in AGITATED for j in hops) / hops.size)
            if step.adapter is not None:
                voices.append(step.adapter.voice_count)
        rows.append({"acoustics": acoustics, "k": k, "homes": len(members),
                     "calm_emotional_share": round(emotional / max(calm_hops, 1), 4),
                     "calm_changes_per_hour": round(changes / max(calm_seconds / 3600, 1e-9), 2),
                     "quarrel_agitated_share": _share(quarrel),
                     "quarrel_lowest_share": round(float(min(quarrel)), 4) if quarrel else None,
                     "voices_at_end": _share(voices)})
    return sorted(rows, key=lambda r: (HOME_ACOUSTICS.index(r["acoustics"]), r["k"]))


def home_streams(clips: list[Clip], *, fdef: Any, config: Config, jobs: int, seed: int,
                 sizes: tuple[int, ...] = HOUSEHOLD_SIZES,
                 acoustics: tuple[str, ...] = HOME_ACOUSTICS) -> list[tuple[HomePlan, Stream]]:
    """The households of ``sizes`` voices of ``clips`` heard through each of ``acoustics``, analysed."""
    plans = [p for a in acoustics for p in home_plans(clips, sizes=sizes, acoustics=a, seed=seed)]
    by_name = {p.name: p for p in plans}
    streams = analyse_streams(clips, {p.name: list(p.order) for p in plans}, gap={p.name: list(p.gaps) for p in plans},
                              fdef=fdef, config=config, jobs=jobs, seed=seed, plans=by_name)
    return [(by_name[s.name], s) for s in streams]


def home_rows(model: Model, config: Config, homes: list[tuple[HomePlan, Stream]]) -> list[dict[str, Any]]:
    """:func:`home_measures` as configured and, for a model with a voice embedding (and adaptation on),
    the same homes with the voices switched the other way beside each row: ``single_baseline``
    (``adaptation.max_voices`` 0) when they are on, ``voices`` (DEFAULT_MAX_VOICES) when they are off."""
    rows = home_measures(model, config, homes)
    if not config.adaptation.enabled or model.voices is None:
        return rows
    voices_on = config.adaptation.max_voices > 0
    name = "single_baseline" if voices_on else "voices"
    other = config.model_copy(update={"adaptation": config.adaptation.model_copy(
        update={"max_voices": 0 if voices_on else DEFAULT_MAX_VOICES})})
    for row, beside in zip(rows, home_measures(model, other, homes)):
        row[name] = {k: beside[k] for k in ("calm_emotional_share", "calm_changes_per_hour", "quarrel_agitated_share",
                                            "quarrel_lowest_share", "voices_at_end")}
    return rows


@dataclass
class HouseholdStreams:
    """What the household protocol streams: one stream per speaker, the neutral households (one per
    fold, or one for the corpus) and the quarrels (one per speaker with angry clips)."""

    speakers: list[Stream]
    neutral: list[Stream]
    quarrels: list[Stream]


@dataclass
class CrossValidation:
    """The household protocol over grouped folds: its summary, each fold's summary (``folds``: the
    held-out speakers or corpus), the speaker-independent summary of the same fold models, and the
    held-out log-probabilities the final model's temperatures are fitted on."""

    household: dict[str, Any]
    folds: list[dict[str, Any]]
    speaker_independent: dict[str, Any]
    oof: dict[str, list[dict[str, tuple[np.ndarray, np.ndarray]]]]  # heads -> held-out windows (fold_temperatures)
    models: list[Model]  # the fold models, uncalibrated
    calibrated: list[Model]  # the same, calibrated as their held-out streams were scored
    scored: list[dict[str, list[Scored]]] | None = None  # per fold: "speakers", "neutral", "quarrels"


def _attributed(scored: Scored, clips: list[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A scored stream's held-out windows of known clips: the emotion head's log-probabilities with the
    clips' labels, and the arousal logits of the windows whose label has a side with that side."""
    k = np.flatnonzero(scored.stream.clip_of >= 0)
    labels = np.array([clips[int(i)].label for i in scored.stream.clip_of[k]], dtype=int)
    side = np.array([AROUSAL_HIGH.get(LABELS[lab], -1) for lab in labels], dtype=int)
    ar = scored.arousal[k]
    ok = (side >= 0) & np.isfinite(ar)
    logits = np.array([arousal_logit(float(a)) for a in ar[ok]])
    return {"emotion": (np.log(np.maximum(scored.probs[k], 1e-12)), labels), "arousal": (logits, side[ok])}


def _si_attributed(model: Model, data: Any, clips: list[Clip], test: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same for the speaker-independent heads on the test windows of the clips ``test``."""
    vec = np.concatenate([data.test[int(i)] for i in test])
    lab = np.concatenate([np.full(data.test[int(i)].shape[0], clips[int(i)].label) for i in test]).astype(int)
    out = {"emotion": (np.log(np.maximum(model.predict_proba(vec), 1e-12)), lab)}
    if model.heads.arousal is not None:
        side = np.array([AROUSAL_HIGH.get(LABELS[x], -1) for x in lab], dtype=int)
        out["arousal"] = (model.heads.arousal.logits(vec[side >= 0])[:, 0], side[side >= 0])
    return out


def _pooled(parts: list[dict[str, tuple[np.ndarray, np.ndarray]]], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    chosen = [p[key] for p in parts if key in p]
    if not chosen:
        return None
    return np.concatenate([c[0] for c in chosen]), np.concatenate([c[1] for c in chosen])


def fold_temperatures(parts: list[dict[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, float | None]:
    """Temperatures fitted on held-out windows ``parts``: "emotion" (softmax) and "arousal" (binary)."""
    from .fit import fit_binary_temperature, fit_temperature

    emo, ar = _pooled(parts, "emotion"), _pooled(parts, "arousal")
    return {"emotion": fit_temperature(*emo), "arousal": None if ar is None else fit_binary_temperature(*ar)}


def household_cv(clips: list[Clip], data: Any, streams: HouseholdStreams, splits: list[Any], *,
                 fdef: Any, config: Config, seed: int, jobs: int, models: list[Model] | None = None) -> CrossValidation:
    """Train on all folds but one (or take the fold ``models`` of an earlier run), stream the held-out
    speakers (``streams.speakers``, one per speaker; ``streams.neutral[k]``, fold k's neutral
    household; the quarrels of fold k's speakers). Each fold's published confidence is calibrated
    with a temperature fitted on the *other* folds' held-out windows (never on its own speakers)."""
    from joblib import Parallel, delayed

    from .fit import calibrated, fit_model

    if models is None:
        models = Parallel(n_jobs=min(jobs, len(splits)))(
            delayed(fit_model)(clips, data, list(tr), fdef=fdef, seed=seed) for tr, _ in splits)
    fold_of = {}
    for k, (_, te) in enumerate(splits):
        fold_of.update({clips[int(i)].actor: k for i in te})

    def of_fold(kind: list[Stream], k: int) -> list[Stream]:
        return [s for s in kind if fold_of[clips[int(s.clips[0])].actor] == k]

    by_fold = [of_fold(streams.speakers, k) for k in range(len(splits))]
    # temperatures calibrate the heads' own logits: no household prior, one household baseline (no
    # voices), no spread scaling of the arousal
    raw = config.model_copy(update={"model": config.model.model_copy(update={"household_prior": None}),
                                    "adaptation": config.adaptation.model_copy(update={"arousal_spread": None,
                                                                                       "max_voices": 0})})
    adapting = config.adaptation.enabled
    # held-out windows at temperature 1, per fold: the streamed heads and the speaker-independent ones
    oof_stream = [[_attributed(score_stream(models[k], raw, s), clips) for s in by_fold[k]] for k in range(len(splits))]
    oof_si = [_si_attributed(models[k], data, clips, te) for k, (_, te) in enumerate(splits)]

    def others(parts: list[Any], k: int) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
        return [p for j, fold in enumerate(parts) if j != k for p in (fold if isinstance(fold, list) else [fold])]

    folds, y_true, y_pred, per_fold, fold_models = [], [], [], [], []
    for k, (_, te) in enumerate(splits):
        t = fold_temperatures(others(oof_stream, k))
        t_si = fold_temperatures(others(oof_si, k))
        # the streamed heads (adaptive, or speaker-independent without adaptation) get the streamed temperatures
        model = calibrated(models[k], speaker_independent=t_si, adaptive=t if adapting else None)
        if not adapting:
            model = calibrated(model, speaker_independent=t)
        fold_models.append(model)
        fold = [score_stream(model, config, s) for s in by_fold[k]]
        fold_neutral = [score_stream(model, config, streams.neutral[k])]
        fold_quarrels = [score_stream(model, config, s) for s in of_fold(streams.quarrels, k)]
        folds.append({"held_out": sorted({str(clips[int(i)].corpus) for i in te}),
                      "temperatures": {k2: None if v is None else round(v, 4) for k2, v in t.items()},
                      **household_summary(clips, fold, labels=LABELS, neutral=fold_neutral, quarrels=fold_quarrels,
                                          only=[int(i) for i in te])})
        per_fold.append({"speakers": fold, "neutral": fold_neutral, "quarrels": fold_quarrels})
        probs = np.stack([models[k].predict_proba(data.test[int(i)]).mean(axis=0) for i in te])
        y_true.append([clips[int(i)].label for i in te])
        y_pred.append(np.argmax(probs, axis=1))
    every = {kind: [s for fold in per_fold for s in fold[kind]] for kind in ("speakers", "neutral", "quarrels")}
    summary = household_summary(clips, every["speakers"], labels=LABELS, neutral=every["neutral"],
                                quarrels=every["quarrels"])
    si = summarize_predictions(np.concatenate(y_true), np.concatenate(y_pred), labels=LABELS,
                               protocol="speaker-independent")
    oof = {"streamed": [p for fold in oof_stream for p in fold], "speaker-independent": oof_si}
    return CrossValidation(summary, folds, si, oof, models, fold_models, per_fold)


def corpus_streams(clips: list[Clip], *, fdef: Any, config: Config, jobs: int, seed: int,
                   neutral_groups: dict[str, list[int]] | None = None) -> HouseholdStreams:
    """One stream per speaker (seeded order, GAP_SECONDS apart), the neutral households (by default
    all neutral clips of the corpus in file order, else one per entry of ``neutral_groups``) and a
    quarrel per speaker with angry clips (:func:`~ser_stream.training.streams.quarrel_order`)."""
    speakers = sorted({c.actor for c in clips if not is_pooled(c.actor)}, key=str)
    orders = {str(a): speaker_order(clips, a, seed=seed) for a in speakers}
    quarrels = {f"quarrel:{a}": q for a in speakers if (q := quarrel_order(clips, a, seed=seed)) is not None}
    if neutral_groups is None:
        calm = calm_label(clips)
        neutral_groups = {"neutral": [i for i, c in enumerate(clips) if LABELS[c.label] == calm and not is_pooled(c.actor)]}
    neutral_groups = {k: v for k, v in neutral_groups.items() if v}
    orders.update({name: order for name, (order, _) in quarrels.items()})
    orders.update(neutral_groups)
    gaps = {name: gaps for name, (_, gaps) in quarrels.items()}
    gaps.update({name: NEUTRAL_GAP_SECONDS for name in neutral_groups})
    gaps.update({str(a): GAP_SECONDS for a in speakers})
    analysed = {s.name: s for s in analyse_streams(clips, orders, gap=gaps, fdef=fdef, config=config, jobs=jobs,
                                                     seed=seed)}
    return HouseholdStreams(speakers=[analysed[str(a)] for a in speakers],
                            neutral=[analysed[n] for n in neutral_groups],
                            quarrels=[analysed[n] for n in quarrels])


def actor_folds(clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Six folds grouped by speaker (fewer with fewer speakers): no voice in both train and test."""
    from sklearn.model_selection import GroupKFold

    groups = np.array([str(c.actor) for c in clips])
    return list(GroupKFold(n_splits=min(6, len(set(groups)))).split(np.zeros(len(clips)), groups=groups))


def corpus_folds(clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray]]:
    """One fold per corpus: train on the others, hold this one out."""
    corpus = np.array([c.corpus for c in clips])
    return [(np.flatnonzero(corpus != name), np.flatnonzero(corpus == name)) for name in corpora_of(clips)]


def household_cross_validation(clips: list[Clip], data: Any, *, fdef: Any, config: Config, seed: int,
                               jobs: int, splits: list[Any] | None = None,
                               models: list[Model] | None = None) -> CrossValidation:
    """:func:`household_cv` over ``splits`` (default :func:`actor_folds`), each fold's held-out neutral
    clips one household."""
    splits = actor_folds(clips) if splits is None else splits
    streams = fold_streams(clips, splits, fdef=fdef, config=config, jobs=jobs, seed=seed)
    return household_cv(clips, data, streams, splits, fdef=fdef, config=config, seed=seed, jobs=jobs, models=models)


def fold_streams(clips: list[Clip], splits: list[Any], *, fdef: Any, config: Config, jobs: int,
                 seed: int) -> HouseholdStreams:
    """:func:`corpus_streams` with fold k's held-out calm-talk clips (neutral, or calm in a corpus without
    neutral: :func:`~ser_stream.training.streams.calm_label`) as ``neutral[k]``."""
    groups = {}
    for k, (_, te) in enumerate(splits):
        held = [int(i) for i in te if not is_pooled(clips[int(i)].actor)]
        calm = calm_label([clips[i] for i in held])
        groups[f"fold{k}"] = [i for i in held if LABELS[clips[i].label] == calm]
    streams = corpus_streams(clips, fdef=fdef, config=config, jobs=jobs, seed=seed, neutral_groups=groups)
    by_name = {s.name: s for s in streams.neutral}
    streams.neutral = [by_name[f"fold{k}"] for k in range(len(splits))]
    return streams


def fold_households(clips: list[Clip], data: Any, test: Any, model: Model, scored_model: Model, *, fdef: Any,
                    config: Config, jobs: int, seed: int) -> dict[str, Any]:
    """One fold's held-out speakers (the clips ``test``) as homes of K voices: ``households``
    (:func:`home_rows` of ``scored_model``, the fold model as its streams were scored) and, with a
    voice embedding, ``voices`` (:func:`~ser_stream.training.voices.voice_assignment` for 2, 4 and 6)."""
    held = [clips[int(i)] for i in test]
    homes = home_streams(held, fdef=fdef, config=config, jobs=jobs, seed=seed)
    out: dict[str, Any] = {"households": home_rows(scored_model, config, homes)}
    if model.voices is not None:
        vectors = [data.test[int(i)] for i in test]
        out["voices"] = [voice_assignment(held, vectors, model.voices, k=n, seed=seed,
                                          max_voices=config.adaptation.max_voices or DEFAULT_MAX_VOICES)
                         for n in VOICE_CHECK_SIZES]
    log.info("held out %s: households %s; voices %s", sorted({c.corpus for c in held}), out["households"],
             out.get("voices"))
    return out


def evaluate_household(model: Model, clips: list[Clip], *, config: Config, jobs: int, seed: int) -> dict[str, Any]:
    """A fixed bundle on any labelled corpus, through the streaming path as configured."""
    streams = corpus_streams(clips, fdef=model.features, config=config, jobs=jobs, seed=seed)
    scored = [score_stream(model, config, s) for s in streams.speakers]
    neutral_scored = [score_stream(model, config, s) for s in streams.neutral]
    quarrels = [score_stream(model, config, s) for s in streams.quarrels]
    summary = household_summary(clips, scored, labels=model.labels, neutral=neutral_scored or None,
                                quarrels=quarrels or None)
    summary["households"] = home_rows(model, config, home_streams(clips, fdef=model.features, config=config, jobs=jobs,
                                                                   seed=seed))
    return {**summary, "adaptation": bool(config.adaptation.enabled and model.adaptive is not None),
            "household_prior": config.model.household_prior}


LOCO_ROW_KEYS = ("n", "uar", "activation_uar", "valence_uar", "neutral_recall", "ece", "clips_without_speech")


def _row(fold: dict[str, Any]) -> dict[str, Any]:
    """The leave-one-corpus-out table's columns of one fold's household summary."""
    ft, q = fold["false_triggers"], fold.get("quarrels") or {}
    return {**{k: fold[k] for k in LOCO_ROW_KEYS}, "false_trigger_share": ft["emotional_mood_share"],
            "false_triggers_per_hour": ft["changes_per_hour"], "quarrel_agitated_share": q.get("agitated_share"),
            "quarrel_angry_share": q.get("angry_share"), "quarrel_lowest_agitated_share": q.get("lowest_agitated_share")}


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        out[key] = round(float(np.mean(values)), 4) if values and key != "n" else (sum(values) if values else None)
    return out


def leave_one_corpus_out(clips: list[Clip], data: Any, *, fdef: Any, config: Config, seed: int,
                         jobs: int) -> dict[str, Any]:
    """The honest cross-corpus figure: for each corpus, the recipe trained on the others only and the
    held-out corpus streamed through the daemon's path (household protocol: per speaker, its neutral
    clips as one household, a quarrel per speaker), with adaptation as configured and, beside it,
    with adaptation switched the other way (the same fold models). Returns the summary over all
    held-out clips with ``rows`` (one per corpus) and their ``mean``."""
    splits = corpus_folds(clips)
    if len(splits) < 2:
        raise ValueError("leave-one-corpus-out needs at least two corpora (--data DIR DIR ...)")
    streams = fold_streams(clips, splits, fdef=fdef, config=config, jobs=jobs, seed=seed)
    on = household_cv(clips, data, streams, splits, fdef=fdef, config=config, seed=seed, jobs=jobs)
    flipped = config.model_copy(update={"adaptation": config.adaptation.model_copy(
        update={"enabled": not config.adaptation.enabled})})
    off = household_cv(clips, data, streams, splits, fdef=fdef, config=flipped, seed=seed, jobs=jobs, models=on.models)
    other = "adaptation_off" if config.adaptation.enabled else "adaptation_on"
    rows = []
    for k, (fold, fold_other) in enumerate(zip(on.folds, off.folds)):
        row = {"corpus": fold["held_out"][0], "adaptation": config.adaptation.enabled, **_row(fold)}
        row[other] = {key: v for key, v in _row(fold_other).items() if key != "n"}
        row.update(fold_households(clips, data, splits[k][1], on.models[k], on.calibrated[k], fdef=fdef, config=config,
                                   jobs=jobs, seed=seed))
        rows.append(row)
    mean = _mean_row([{k: v for k, v in r.items() if k not in ("corpus", "adaptation", other, "households", "voices")}
                      for r in rows])
    mean[other] = _mean_row([r[other] for r in rows])
    return {**on.household, "protocol": "leave-one-corpus-out", "rows": rows, "mean": mean,
            "speaker_independent_uar": on.speaker_independent["uar"]}
