"""Datasets, feature extraction for training, grouped evaluation and training.

Imports scikit-learn and librosa lazily: only ``train`` and ``evaluate`` need them.
Clip features come from the same :class:`~ser_stream.pipeline.Analyzer` the
daemon streams through, so the model learns what the daemon will hear.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .adaptation import PRIOR_WINDOWS, Prior, batch_mean
from .capture.file import AudioFile
from .capture.resample import Resampler
from .errors import AudioReadError, InputMissingError
from .features import FeatureDefinition
from .model import LABELS
from .pipeline import Analyzer

if TYPE_CHECKING:
    from .model import AdaptiveHead, Classifier, Model

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
TRAIN_WINDOW_SECONDS = 3.0
TRAIN_HOP_SECONDS = 0.5


@dataclass(frozen=True)
class Clip:
    path: Path
    label: int  # index into LABELS
    actor: int
    statement: int
    intensity: int


def scan_ravdess(data_dir: Path) -> list[Clip]:
    """RAVDESS-named audio files under ``data_dir``; others are skipped and counted.

    Raises InputMissingError when the folder is missing or holds no RAVDESS-named file.
    """
    if not data_dir.is_dir():
        raise InputMissingError(f"{data_dir}: no such data folder")
    clips, skipped = [], []
    for path in sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        m = RAVDESS_NAME.match(path.stem)
        if not m:
            skipped.append((path, "name is not MM-VV-EE-II-SS-RR-AA"))
            continue
        modality, channel, emotion, intensity, statement, _rep, actor = (int(g) for g in m.groups())
        if channel != 1:
            skipped.append((path, f"vocal channel {channel:02d} is not speech (01)"))
            continue
        if not 1 <= emotion <= len(LABELS):
            skipped.append((path, f"emotion code {emotion:02d} is outside 01-08"))
            continue
        clips.append(Clip(path, emotion - 1, actor, statement, intensity))
    for path, why in skipped[:20]:
        log.warning("skipping %s: %s", path, why)
    if len(skipped) > 20:
        log.warning("... and %d more files skipped", len(skipped) - 20)
    if not clips:
        raise InputMissingError(
            f"{data_dir}: no RAVDESS-named audio files (MM-VV-EE-II-SS-RR-AA.wav/.flac, e.g. 03-01-05-01-02-01-12.flac)"
        )
    log.info("%s: %d clips from %d actors (%d files skipped)", data_dir, len(clips), len({c.actor for c in clips}), len(skipped))
    return clips


@dataclass(frozen=True)
class View:
    """How a clip is turned into window vectors: window, hop, and an optional audio transform
    (``augment#K``: the K-th random living-room copy; ``noise10`` / ``reverb``: a fixed degradation)."""

    window_seconds: float
    hop_seconds: float
    transform: str | None = None


TRAIN_VIEW = View(TRAIN_WINDOW_SECONDS, TRAIN_HOP_SECONDS)
DAEMON_VIEW = View(3.0, 1.0)  # evaluate as the daemon hears: its window and hop
AUGMENT_COPIES = 4  # random living-room copies of every training clip (the speaker-independent head)
ADAPTIVE_AUGMENT_COPIES = 2  # the adaptive head learns from the first two only (more measured worse on clean audio)


def training_views(augment_copies: int) -> dict[str, View]:
    """The clean training view and ``augment_copies`` augmented ones (``augment#K``)."""
    views = {"clean": TRAIN_VIEW}
    for k in range(augment_copies):
        views[f"augment#{k}"] = View(TRAIN_WINDOW_SECONDS, TRAIN_HOP_SECONDS, f"augment#{k}")
    return views


@dataclass
class TrainingData:
    """Per clip (in ``clips`` order): training windows of the speaker-independent head (clean plus
    every augmented copy) and of the adaptive head (clean plus the first ADAPTIVE_AUGMENT_COPIES),
    clean windows as the daemon takes them (a speaker's statistics), and test windows."""

    clips: list[Clip]
    augment_copies: int
    train: list[np.ndarray]
    train_adaptive: list[np.ndarray]
    stats: list[np.ndarray]
    test: list[np.ndarray]


def extract_for_training(clips: list[Clip], *, fdef: FeatureDefinition, jobs: int, augment_copies: int | None, seed: int,
                         test_view: View = DAEMON_VIEW) -> TrainingData:
    """One parallel pass over the clips for every view training and evaluation need
    (``augment_copies`` None: the recipe's AUGMENT_COPIES)."""
    augment_copies = AUGMENT_COPIES if augment_copies is None else augment_copies
    views = training_views(augment_copies)
    names = list(views)
    views["stats"] = DAEMON_VIEW
    if test_view != DAEMON_VIEW:
        views["test"] = test_view
    clips, vecs = extract_dataset(clips, fdef=fdef, jobs=jobs, views=views, seed=seed)

    def joined(parts: list[str]) -> list[np.ndarray]:
        return [np.concatenate([vecs[name][i] for name in parts]) for i in range(len(clips))]

    return TrainingData(clips, augment_copies, joined(names), joined(names[: 1 + ADAPTIVE_AUGMENT_COPIES]),
                        vecs["stats"], vecs.get("test", vecs["stats"]))


def clip_audio(path: Path, *, sample_rate_hz: int) -> np.ndarray:
    """A whole (short) clip, mono, at the feature rate, through the same reader and resampler as the daemon."""
    audio = AudioFile(path)
    resampler = Resampler(audio.sample_rate_hz, sample_rate_hz)
    try:
        parts = [resampler.process(b) for b in audio.blocks(65536)]
    finally:
        audio.close()
    parts.append(resampler.flush())
    return np.concatenate(parts)


def _seed_of(path: Path, salt: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{path.name}:{salt}".encode()).digest()[:8], "little")


def transform_audio(y: np.ndarray, transform: str | None, *, sr: int, path: Path, seed: int) -> np.ndarray:
    from . import augment

    if transform is None:
        return y
    if transform.startswith("augment#"):
        rng = np.random.default_rng(_seed_of(path, seed * 1000 + int(transform[8:])))
        return augment.random_augment(y, sr=sr, rng=rng)
    return augment.degrade(y, kind=transform, sr=sr, seed=_seed_of(path, seed))


def windows_of(y: np.ndarray, *, fdef: FeatureDefinition, view: View) -> np.ndarray:
    """Window vectors (n, vector_size) of a clip: its speech windows (all windows when none
    is speech; one zero-padded window when it is shorter than a window)."""
    analyzer = Analyzer(fdef=fdef, model=None, window_seconds=view.window_seconds, hop_seconds=view.hop_seconds,
                        keep_vectors=True)
    results = analyzer.push(y)
    short = analyzer.flush_short()
    if short is not None:
        results.append(short)
    speech = [r.vector for r in results if r.speech]
    return np.stack(speech or [r.vector for r in results])


def _extract_one(path: Path, fdef_dict: dict[str, Any], views: dict[str, View], seed: int) -> dict[str, np.ndarray] | str:
    fdef = FeatureDefinition.from_dict(fdef_dict)
    try:
        y = clip_audio(path, sample_rate_hz=fdef.sample_rate_hz)
    except (AudioReadError, InputMissingError) as exc:
        return str(exc)
    sr = fdef.sample_rate_hz
    return {name: windows_of(transform_audio(y, v.transform, sr=sr, path=path, seed=seed), fdef=fdef, view=v)
            for name, v in views.items()}


def extract_dataset(
    clips: list[Clip], *, fdef: FeatureDefinition, jobs: int, views: dict[str, View], seed: int = 0,
) -> tuple[list[Clip], dict[str, list[np.ndarray]]]:
    """Window vectors per clip and view, in parallel; unreadable clips are skipped with a warning naming them."""
    from joblib import Parallel, delayed

    fd = fdef.to_dict()
    out = Parallel(n_jobs=jobs, batch_size=8)(delayed(_extract_one)(c.path, fd, views, seed) for c in _progress(clips))
    kept_clips: list[Clip] = []
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in views}
    for clip, res in zip(clips, out):
        if isinstance(res, str):
            log.warning("skipping unreadable clip: %s", res)
            continue
        kept_clips.append(clip)
        for name in views:
            vectors[name].append(res[name])
    if len(kept_clips) < len(clips):
        log.warning("%d of %d clips were unreadable and skipped", len(clips) - len(kept_clips), len(clips))
    return kept_clips, vectors


def _progress(items: list[Any]) -> Any:
    """Yield ``items``, drawing a progress line on a terminal (stderr); silent otherwise and under CI."""
    import os
    import sys

    if not sys.stderr.isatty() or os.environ.get("CI"):
        yield from items
        return
    n = len(items)
    for i, item in enumerate(items, 1):
        if i == n or i % 20 == 0:
            sys.stderr.write(f"\rfeatures: {i}/{n} clips")
            sys.stderr.flush()
        yield item
    sys.stderr.write("\n")


# --------------------------------------------------------------------------- training
MLP_PARAMS: dict[str, Any] = {
    "hidden_layer_sizes": (512,),
    "alpha": 5e-2,
    "batch_size": 128,
    "learning_rate_init": 1e-3,
    "max_iter": 300,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 15,
}


def fit(X: np.ndarray, y: np.ndarray, *, seed: int) -> tuple[Any, Any]:
    """Standardise and fit the MLP; returns (scaler, classifier)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    clf = MLPClassifier(random_state=seed, **MLP_PARAMS).fit(scaler.transform(X), y)
    return scaler, clf


def stack_windows(clips: list[Clip], vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(vectors)
    y = np.concatenate([np.full(v.shape[0], c.label) for c, v in zip(clips, vectors)])
    return X, y


def classifier_of(scaler: Any, clf: Any) -> "Classifier":
    """A fitted StandardScaler and MLPClassifier as plain arrays."""
    from .model import Classifier

    return Classifier(
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        coefs=tuple(np.asarray(w) for w in clf.coefs_),
        intercepts=tuple(np.asarray(b) for b in clf.intercepts_),
        activation=clf.activation,
    )


def to_model(scaler: Any, clf: Any, *, fdef: FeatureDefinition, meta: dict[str, Any],
             adaptive: "AdaptiveHead | None" = None) -> "Model":
    from .model import Model

    labels = tuple(LABELS[int(c)] for c in clf.classes_)
    return Model(labels=labels, features=fdef, classifier=classifier_of(scaler, clf), meta=meta, adaptive=adaptive)


def to_adaptive_head(prior: Prior, scaler: Any, clf: Any) -> "AdaptiveHead":
    from .model import AdaptiveHead

    return AdaptiveHead(prior=prior, classifier=classifier_of(scaler, clf))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("ser-stream", "numpy", "scikit-learn", "librosa", "soxr", "soundfile"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def train_command(*, data_dir: Path, out: Path, seed: int, jobs: int, augment_copies: int | None = None) -> "Model":
    from datetime import datetime, timezone

    from .features import build_feature_matrices

    clips = scan_ravdess(data_dir)
    fdef = build_feature_matrices()
    data = extract_for_training(clips, fdef=fdef, jobs=jobs, augment_copies=augment_copies, seed=seed)
    clips = data.clips
    X, y = stack_windows(clips, data.train)
    log.info("training on %d windows from %d clips (%d features)", X.shape[0], len(clips), X.shape[1])
    scaler, clf = fit(X, y, seed=seed)
    missing = sorted(set(range(len(LABELS))) - {int(c) for c in clf.classes_})
    if missing:
        raise InputMissingError(f"{data_dir}: no clips of {', '.join(LABELS[i] for i in missing)}; a model needs all 8 emotions")
    log.info("training the adaptive head (per-speaker statistics from neutral and calm clips)")
    adaptive = fit_adaptive(clips, data.stats, data.train_adaptive, list(range(len(clips))), realistic=True, seed=seed)
    meta = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training": {
            "data": str(data_dir),
            "clips": len(clips),
            "windows": int(X.shape[0]),
            "actors": sorted({c.actor for c in clips}),
            "per_label_clips": {lab: sum(c.label == i for c in clips) for i, lab in enumerate(LABELS)},
            "window_seconds": TRAIN_WINDOW_SECONDS,
            "hop_seconds": TRAIN_HOP_SECONDS,
            "augment_copies": data.augment_copies,
            "seed": seed,
            "mlp": {k: (list(v) if isinstance(v, tuple) else v) for k, v in MLP_PARAMS.items()},
            "epochs": int(clf.n_iter_),
            "adaptation": {"prior_windows": PRIOR_WINDOWS,
                           "speaker_statistics_from": "each training speaker's neutral and calm clips (3 s windows, 1 s hop)",
                           "normalisation": "centred on the speaker's shrunk mean, divided by the population's spread",
                           "augment_copies": min(data.augment_copies, ADAPTIVE_AUGMENT_COPIES)},
        },
        "versions": _versions(),
        "license": "Trained on RAVDESS (CC BY-NC-SA 4.0): non-commercial use only, attribution, share-alike.",
    }
    if len({c.actor for c in clips}) >= 6:
        meta["metrics"] = {"speaker-independent": cross_validate(
            clips=clips, train_vecs=data.train, test_vecs=data.test, fdef=fdef, protocol="speaker-independent",
            seed=seed, jobs=jobs)}
        log.info("speaker-independent CV of this recipe: accuracy %.3f, UAR %.3f",
                 meta["metrics"]["speaker-independent"]["accuracy"], meta["metrics"]["speaker-independent"]["uar"])
    else:
        log.info("fewer than 6 actors: no speaker-independent cross-validation recorded in the bundle")
    model = to_model(scaler, clf, fdef=fdef, meta=meta, adaptive=adaptive)
    model.save(out)
    log.info("wrote %s", out)
    return model


# --------------------------------------------------------------------------- evaluation
SEED4_LABELS = ("calm", "happy", "fearful", "disgust")


def _clip_predictions(model: "Model", vectors: list[np.ndarray]) -> np.ndarray:
    """Clip-level probabilities: the mean over the clip's windows, as `classify` reports."""
    return np.stack([model.predict_proba(v).mean(axis=0) for v in vectors])


def _fold(train_idx: np.ndarray, test_idx: np.ndarray, clips: list[Clip], train_vecs: list[np.ndarray],
          test_vecs: list[np.ndarray], fdef: FeatureDefinition, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train on ``train_idx`` clips, predict the ``test_idx`` clips; returns (test_idx, predicted label indices)."""
    X, y = stack_windows([clips[i] for i in train_idx], [train_vecs[i] for i in train_idx])
    scaler, clf = fit(X, y, seed=seed)
    model = to_model(scaler, clf, fdef=fdef, meta={})
    probs = _clip_predictions(model, [test_vecs[i] for i in test_idx])
    return test_idx, clf.classes_[np.argmax(probs, axis=1)]


def summarize_predictions(y_true: np.ndarray, y_pred: np.ndarray, *, labels: tuple[str, ...], protocol: str) -> dict[str, Any]:
    k = len(labels)
    conf = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred):
        conf[t, p] += 1
    support = conf.sum(axis=1)
    recall = np.divide(np.diag(conf), support, out=np.zeros(k), where=support > 0)
    present = support > 0
    return {
        "protocol": protocol,
        "n": int(len(y_true)),
        "accuracy": round(float(np.mean(y_true == y_pred)), 4),
        "uar": round(float(recall[present].mean()), 4),
        "per_class": {lab: round(float(r), 4) for lab, r, ok in zip(labels, recall, present) if ok},
        "labels": list(labels),
        "confusion": conf.tolist(),
    }


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
    y_true = np.concatenate([y[te] for te, _ in results])
    y_pred = np.concatenate([pred for _, pred in results])
    summary = summarize_predictions(y_true, y_pred, labels=LABELS, protocol=protocol)
    return _restrict(summary, SEED4_LABELS) if protocol == "seed4" else summary


CALM_LABELS = (LABELS.index("neutral"), LABELS.index("calm"))


def _stats_windows(indices: list[int], clips: list[Clip], vectors: list[np.ndarray], *, realistic: bool) -> np.ndarray | None:
    """A speaker's windows for statistics: with ``realistic`` those of their neutral and calm clips
    (all of them when the speaker has none); None without any clip."""
    chosen = [i for i in indices if not realistic or clips[i].label in CALM_LABELS] or indices
    return np.concatenate([vectors[i] for i in chosen]) if chosen else None


def fit_adaptive(clips: list[Clip], stats_vecs: list[np.ndarray], train_vecs: list[np.ndarray], indices: list[int], *,
                 realistic: bool, seed: int) -> "AdaptiveHead":
    """The adaptive head: every training speaker's windows centred on that speaker's mean
    (:func:`ser_stream.adaptation.batch_mean` of their clean ``stats_vecs``, windows as the daemon takes
    them, shrunk toward the population prior) and divided by the population's within-speaker spread,
    then a scaler and an MLP fitted on them."""
    actors = sorted({clips[i].actor for i in indices})
    by_actor = {a: [i for i in indices if clips[i].actor == a] for a in actors}
    windows = {a: _stats_windows(idx, clips, stats_vecs, realistic=realistic) for a, idx in by_actor.items()}
    prior = Prior(mean=np.mean([w.mean(axis=0) for w in windows.values()], axis=0),
                  var=np.mean([w.var(axis=0) for w in windows.values()], axis=0), windows=PRIOR_WINDOWS)
    Xs, ys = [], []
    for a, idx in by_actor.items():
        centre = batch_mean(windows[a], prior=prior)
        for i in idx:
            Xs.append(prior.normalise(train_vecs[i], centre))
            ys.append(np.full(train_vecs[i].shape[0], clips[i].label))
    scaler, clf = fit(np.concatenate(Xs), np.concatenate(ys), seed=seed)
    return to_adaptive_head(prior, scaler, clf)


def _adaptive_clip_probs(head: "AdaptiveHead", i: int, pool: Any, clips: list[Clip], vectors: list[np.ndarray], *,
                         realistic: bool) -> np.ndarray:
    """Clip ``i``'s probabilities (mean over its windows) by the adaptive head, its windows centred on
    the mean of the same speaker's *other* clips in ``pool`` (realistic: their neutral and calm
    clips), as the daemon would."""
    others = [int(j) for j in pool if clips[j].actor == clips[i].actor and j != i]
    windows = _stats_windows(others, clips, vectors, realistic=realistic)
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
    head = fit_adaptive(clips, stats_vecs, train_vecs, list(train_idx), realistic=realistic, seed=seed)
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


def evaluate_command(*, data_dir: Path, protocol: str, seed: int, jobs: int, report: Path | None,
                     degrade: str | None = None, augment_copies: int | None = None,
                     window_seconds: float = 3.0, hop_seconds: float = 1.0) -> dict[str, Any]:
    """Cross-validated evaluation; returns the summary (the CLI prints it as the last line).

    Test clips are heard as the daemon hears them: its window and hop, through the same analyzer.
    """
    from .features import build_feature_matrices

    clips = scan_ravdess(data_dir)
    if protocol == "seed4":
        keep = {LABELS.index(lab) for lab in SEED4_LABELS}
        clips = [c for c in clips if c.label in keep]
    fdef = build_feature_matrices()
    data = extract_for_training(clips, fdef=fdef, jobs=jobs, augment_copies=augment_copies, seed=seed,
                                test_view=View(window_seconds, hop_seconds, degrade))
    if protocol == "speaker-adaptive":
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


def evaluate_model(model: "Model", *, data_dir: Path, jobs: int, report: Path | None, degrade: str | None = None,
                   seed: int = 0, adaptive: bool = False) -> dict[str, Any]:
    """Score a trained bundle as it is on every clip of ``data_dir`` (no training): protocol ``fixed-model``.

    With ``adaptive``, its adaptive head scores each clip centred on the mean of the same
    speaker's other clips, as the daemon would (``fixed-model-adaptive``; ``uar`` from their neutral
    and calm clips, ``uar_balanced_stats`` from all of them).
    """
    clips = scan_ravdess(data_dir)
    clips, vecs = extract_dataset(clips, fdef=model.features, jobs=jobs, views={"test": View(3.0, 1.0, degrade)}, seed=seed)
    y_true = np.array([c.label for c in clips])
    if not adaptive:
        probs = _clip_predictions(model, vecs["test"])
        y_pred = np.array([LABELS.index(model.labels[int(k)]) for k in np.argmax(probs, axis=1)])
        summary = summarize_predictions(y_true, y_pred, labels=LABELS, protocol="fixed-model")
    else:
        if model.adaptive is None:
            from .errors import ModelError

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


def write_report(summary: dict[str, Any], folder: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    name = summary["protocol"] + (f"-{summary['degrade']}" if summary.get("degrade") else "")
    (folder / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    conf = np.array(summary["confusion"], dtype=float)
    labels = summary["labels"]
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(conf[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(f"{name}: accuracy {summary['accuracy']:.3f}, UAR {summary['uar']:.3f} (n={summary['n']})")
    fig.colorbar(im, ax=ax, label="recall")
    fig.tight_layout()
    fig.savefig(folder / f"{name}-confusion.png", dpi=110)
    plt.close(fig)
