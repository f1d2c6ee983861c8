"""Evaluation protocols: speaker-independent and speaker-adaptive cross-validation, seed4, and a fixed bundle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..adaptation import PRIOR_WINDOWS, batch_mean
from ..features import FeatureDefinition
from ..model import LABELS, Heads
from .corpora import Clip, corpora_of, scan_corpora
from .extract import View, extract_dataset, extract_for_training
from .fit import classifier_of, clip_weights, fit, fit_adaptive, stack_windows, stats_windows, to_model, window_weights
from .metrics import summarize_predictions
from .report import write_report

if TYPE_CHECKING:
    from ..config import Config
    from ..model import AdaptiveHead, Model

log = logging.getLogger(__name__)

SEED4_LABELS = ("calm", "happy", "fearful", "disgust")


def _clip_predictions(model: "Model", vectors: list[np.ndarray]) -> np.ndarray:
    """Clip-level probabilities: the mean over the clip's windows, as `classify` reports."""
    return np.stack([model.predict_proba(v).mean(axis=0) for v in vectors])


def _fold(train_idx: np.ndarray, test_idx: np.ndarray, clips: list[Clip], train_vecs: list[np.ndarray],
          test_vecs: list[np.ndarray], fdef: FeatureDefinition, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train on ``train_idx`` clips, predict the ``test_idx`` clips; returns (test_idx, predicted label indices)."""
    chosen, vecs = [clips[i] for i in train_idx], [train_vecs[i] for i in train_idx]
    X, y = stack_windows(chosen, vecs)
    scaler, clf = fit(X, y, seed=seed, weights=window_weights(clip_weights(chosen), vecs))
    model = to_model(Heads(classifier_of(scaler, clf)), fdef=fdef, meta={}, labels=tuple(LABELS[int(c)] for c in clf.classes_))
    probs = _clip_predictions(model, [test_vecs[i] for i in test_idx])
    return test_idx, clf.classes_[np.argmax(probs, axis=1)]


def cross_validate(*, clips: list[Clip], train_vecs: list[np.ndarray], test_vecs: list[np.ndarray],
                   fdef: FeatureDefinition, protocol: str, seed: int, jobs: int) -> dict[str, Any]:
    """Clip-level cross-validation summary; folds grouped by actor unless protocol is seed4."""
    from joblib import Parallel, delayed

    y = np.array([c.label for c in clips])
    if protocol == "seed4":
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(np.arange(len(clips)), test_size=0.25, random_state=9)
        splits = [(tr, te)]
    else:
        from sklearn.model_selection import GroupKFold

        groups = np.array([c.actor for c in clips])
        splits = list(GroupKFold(n_splits=min(6, len(set(groups)))).split(np.zeros(len(clips)), y, groups))
        for tr, te in splits:
            if set(groups[tr]) & set(groups[te]):
                raise AssertionError("an actor is in both training and test folds")
    log.info("%s: %d clips, %d fold(s)", protocol, len(clips), len(splits))
    results = Parallel(n_jobs=min(jobs, len(splits)))(
        delayed(_fold)(tr, te, clips, train_vecs, test_vecs, fdef, seed) for tr, te in splits
    )
    order = np.concatenate([te for te, _ in results])
    y_true = y[order]
    y_pred = np.concatenate([pred for _, pred in results])
    summary = summarize_predictions(y_true, y_pred, labels=LABELS, protocol=protocol)
    names = corpora_of(clips)
    if len(names) > 1:  # several corpora, speakers grouped across all: each corpus's own figures too
        corpus = np.array([clips[int(i)].corpus for i in order])
        summary["per_corpus"] = {name: {k: v for k, v in summarize_predictions(
            y_true[corpus == name], y_pred[corpus == name], labels=LABELS, protocol=protocol).items()
            if k in ("n", "accuracy", "uar", "per_class")} for name in names}
    return _restrict(summary, SEED4_LABELS) if protocol == "seed4" else summary


def _adaptive_clip_probs(head: "AdaptiveHead", i: int, pool: Any, clips: list[Clip], vectors: list[np.ndarray], *,
                         realistic: bool) -> np.ndarray:
    """Clip ``i``'s probabilities (mean over its windows) by the adaptive head, its windows centred on
    the mean of the same speaker's *other* clips in ``pool`` (realistic: their neutral and calm
    clips), as the daemon would."""
    others = [int(j) for j in pool if clips[j].actor == clips[i].actor and j != i]
    windows = stats_windows(others, clips, vectors, realistic=realistic)
    if windows is None:  # a speaker with no other clip: the population prior
        windows = np.zeros((0, vectors[i].shape[1]))
    return head.predict_proba(head.prior.normalise(vectors[i], batch_mean(windows, prior=head.prior))).mean(axis=0)


def _adaptive_summary(out: dict[bool, dict[str, Any]], *, prior_windows: float) -> dict[str, Any]:
    """The realistic summary, with the emotion-balanced accuracy and UAR beside it."""
    return {**out[True], "stats_from": "the speaker's other neutral and calm clips", "prior_windows": prior_windows,
            "accuracy_balanced_stats": out[False]["accuracy"], "uar_balanced_stats": out[False]["uar"]}


def _fold_adaptive(train_idx: np.ndarray, test_idx: np.ndarray, clips: list[Clip], stats_vecs: list[np.ndarray],
                   train_vecs: list[np.ndarray], test_vecs: list[np.ndarray], seed: int,
                   realistic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train the adaptive head on ``train_idx``; score each test clip with the statistics of its
    speaker's *other* clips (realistic: only their neutral and calm clips), as the daemon would."""
    head = fit_adaptive(clips, stats_vecs, train_vecs, list(train_idx), seed=seed)
    # every fold trains on all 8 labels, so the argmax is the label index
    preds = [int(np.argmax(_adaptive_clip_probs(head, i, test_idx, clips, test_vecs, realistic=realistic)))
             for i in test_idx]
    return test_idx, np.array(preds)


def speaker_adaptive(*, clips: list[Clip], stats_vecs: list[np.ndarray], train_vecs: list[np.ndarray],
                     test_vecs: list[np.ndarray], seed: int, jobs: int) -> dict[str, Any]:
    """The speaker-adaptive protocol: ``uar`` with statistics from neutral/calm clips only (a home where
    most talk is calm), ``uar_balanced_stats`` with statistics from all of the speaker's other clips."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import GroupKFold

    y = np.array([c.label for c in clips])
    groups = np.array([c.actor for c in clips])
    splits = list(GroupKFold(n_splits=min(6, len(set(groups)))).split(np.zeros(len(clips)), y, groups))
    out = {}
    for realistic in (True, False):
        res = Parallel(n_jobs=min(jobs, len(splits)))(
            delayed(_fold_adaptive)(tr, te, clips, stats_vecs, train_vecs, test_vecs, seed, realistic)
            for tr, te in splits)
        y_true = np.concatenate([y[te] for te, _ in res])
        y_pred = np.concatenate([p for _, p in res])
        out[realistic] = summarize_predictions(y_true, y_pred, labels=LABELS, protocol="speaker-adaptive")
    return _adaptive_summary(out, prior_windows=PRIOR_WINDOWS)


def evaluate_command(*, data_dirs: list[Path], protocol: str, seed: int, jobs: int, report: Path | None,
                     degrade: str | None = None, augment_copies: int | None = None,
                     window_seconds: float = 3.0, hop_seconds: float = 1.0,
                     config: "Config | None" = None, save_models: Path | None = None) -> dict[str, Any]:
    """Cross-validated evaluation; returns the summary (the CLI prints it as the last line).

    Test clips are heard as the daemon hears them: its window and hop, through the same analyzer.
    """
    from ..features import build_feature_matrices

    clips = scan_corpora(data_dirs)
    if protocol == "seed4":
        keep = {LABELS.index(lab) for lab in SEED4_LABELS}
        clips = [c for c in clips if c.label in keep]
    fdef = build_feature_matrices()
    data = extract_for_training(clips, fdef=fdef, jobs=jobs, augment_copies=augment_copies, seed=seed,
                                test_view=View(window_seconds, hop_seconds, degrade))
    if protocol == "household":
        from ..config import Config
        from .household import household_cross_validation

        from .household import actor_folds, fold_households

        config = config or Config()
        splits = actor_folds(data.clips)
        cv = household_cross_validation(data.clips, data, fdef=fdef, config=config, seed=seed, jobs=jobs, splits=splits)
        folds = [fold_households(data.clips, data, te, cv.models[k], cv.calibrated[k], fdef=fdef, config=config,
                                 jobs=jobs, seed=seed) for k, (_, te) in enumerate(splits)]
        summary = {**cv.household, "speaker_independent_uar": cv.speaker_independent["uar"], "folds": folds}
    elif protocol == "leave-one-corpus-out":
        from ..config import Config
        from .household import leave_one_corpus_out

        summary = leave_one_corpus_out(data.clips, data, fdef=fdef, config=config or Config(), seed=seed, jobs=jobs,
                                       save_models=save_models)
    elif protocol == "speaker-adaptive":
        summary = speaker_adaptive(clips=data.clips, stats_vecs=data.stats, train_vecs=data.train_adaptive, test_vecs=data.test,
                                   seed=seed, jobs=jobs)
    else:
        summary = cross_validate(clips=data.clips, train_vecs=data.train, test_vecs=data.test, fdef=fdef,
                                 protocol=protocol, seed=seed, jobs=jobs)
    if degrade:
        summary = {**summary, "degrade": degrade}
    if report is not None:
        write_report(summary, report)
    return summary


def evaluate_model(model: "Model", *, data_dirs: list[Path], jobs: int, report: Path | None, degrade: str | None = None,
                   seed: int = 0, adaptive: bool = False, household: "Config | None" = None) -> dict[str, Any]:
    """Score a trained bundle as it is on every clip of ``data_dirs`` (no training): protocol ``fixed-model``.

    With ``adaptive``, its adaptive head scores each clip centred on the mean of the same
    speaker's other clips, as the daemon would (``fixed-model-adaptive``; ``uar`` from their neutral
    and calm clips, ``uar_balanced_stats`` from all of them).
    """
    clips = scan_corpora(data_dirs)
    if household is not None:
        from .household import evaluate_household

        summary = {**evaluate_household(model, clips, config=household, jobs=jobs, seed=seed), "model": str(model.path)}
        if report is not None:
            write_report(summary, report)
        return summary
    clips, vecs = extract_dataset(clips, fdef=model.features, jobs=jobs, views={"test": View(3.0, 1.0, degrade)}, seed=seed)
    y_true = np.array([c.label for c in clips])
    if not adaptive:
        probs = _clip_predictions(model, vecs["test"])
        y_pred = np.array([LABELS.index(model.labels[int(k)]) for k in np.argmax(probs, axis=1)])
        summary = summarize_predictions(y_true, y_pred, labels=LABELS, protocol="fixed-model")
    else:
        if model.adaptive is None:
            from ..errors import ModelError

            raise ModelError(f"{model.path}: the bundle has no adaptive head to evaluate")
        out = {}
        everyone = range(len(clips))
        for realistic in (True, False):
            pred = [LABELS.index(model.labels[int(np.argmax(
                        _adaptive_clip_probs(model.adaptive, i, everyone, clips, vecs["test"], realistic=realistic)))])
                    for i in everyone]
            out[realistic] = summarize_predictions(y_true, np.array(pred), labels=LABELS, protocol="fixed-model-adaptive")
        summary = _adaptive_summary(out, prior_windows=model.adaptive.prior.windows)
    summary = {**summary, "model": str(model.path)}
    if degrade:
        summary["degrade"] = degrade
    if report is not None:
        write_report(summary, report)
    return summary


def _restrict(summary: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    idx = [LABELS.index(lab) for lab in keep]
    conf = np.array(summary["confusion"])[np.ix_(idx, idx)]
    return {**summary, "labels": list(keep), "confusion": conf.tolist()}
