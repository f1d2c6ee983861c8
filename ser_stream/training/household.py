"""The household protocol: a corpus heard through the daemon's own streaming path, over grouped
folds (speakers, or corpora left out), and its summaries.

The streams (:mod:`~ser_stream.training.streams`) are scored and measured by
:mod:`~ser_stream.training.scoring` (windows, mood, false triggers, quarrels) and, for the
households of K voices, :mod:`~ser_stream.training.homes`. This module holds the cross-validation
that fits and calibrates fold models for them, the leave-one-corpus-out rows and ``evaluate
--protocol household``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..adaptation import arousal_logit
from ..config import Config
from ..model import LABELS, Model
from ..voices import DEFAULT_MAX_VOICES
from .corpora import Clip, corpora_of
from .fit import AROUSAL_HIGH
from .homes import home_rows, home_streams
from .metrics import summarize_predictions
from .scoring import Scored, household_summary, score_stream
from .streams import (GAP_SECONDS, NEUTRAL_GAP_SECONDS, Stream, analyse_streams, calm_label, is_pooled, quarrel_order,
                      speaker_order)
from .voices import VOICE_CHECK_SIZES, voice_assignment

log = logging.getLogger(__name__)


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
                         jobs: int, save_models: Path | None = None) -> dict[str, Any]:
    """The honest cross-corpus figure: for each corpus, the recipe trained on the others only and the
    held-out corpus streamed through the daemon's path (household protocol: per speaker, its neutral
    clips as one household, a quarrel per speaker), with adaptation as configured and, beside it,
    with adaptation switched the other way (the same fold models). Returns the summary over all
    held-out clips with ``rows`` (one per corpus) and their ``mean``. ``save_models``: a folder that
    gets each fold's model as its held-out corpus was scored (``fold-CORPUS.npz``)."""
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
        if save_models is not None:
            save_models.mkdir(parents=True, exist_ok=True)
            sha = on.calibrated[k].save(save_models / f"fold-{row['corpus']}.npz")
            log.info("fold model of held-out %s written to %s (sha256 %s)", row["corpus"], save_models, sha[:12])
        row[other] = {key: v for key, v in _row(fold_other).items() if key != "n"}
        row.update(fold_households(clips, data, splits[k][1], on.models[k], on.calibrated[k], fdef=fdef, config=config,
                                   jobs=jobs, seed=seed))
        rows.append(row)
    mean = _mean_row([{k: v for k, v in r.items() if k not in ("corpus", "adaptation", other, "households", "voices")}
                      for r in rows])
    mean[other] = _mean_row([r[other] for r in rows])
    return {**on.household, "protocol": "leave-one-corpus-out", "rows": rows, "mean": mean,
            "speaker_independent_uar": on.speaker_independent["uar"]}
