"""Fitting the heads: scaler + MLP (scikit-learn), exported as plain arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..adaptation import PRIOR_WINDOWS, Prior, batch_mean
from ..features import FeatureDefinition
from ..model import LABELS
from .corpora import Clip

if TYPE_CHECKING:
    from ..model import AdaptiveHead, Classifier, Heads, Model
    from .extract import TrainingData

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


# Binary targets of the arousal and valence heads (labels not listed are left out of that head).
AROUSAL_HIGH = {"angry": 1, "happy": 1, "fearful": 1, "surprised": 1, "neutral": 0, "calm": 0, "sad": 0}
VALENCE_POSITIVE = {"happy": 1, "calm": 1, "sad": 0, "angry": 0, "fearful": 0, "disgust": 0}
DIMENSION_TARGETS = {"arousal": AROUSAL_HIGH, "valence": VALENCE_POSITIVE}
DIMENSION_MLP_PARAMS: dict[str, Any] = {**MLP_PARAMS, "hidden_layer_sizes": (128,)}


def fit(X: np.ndarray, y: np.ndarray, *, seed: int, params: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """Standardise and fit the MLP; returns (scaler, classifier)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    clf = MLPClassifier(random_state=seed, **(params or MLP_PARAMS)).fit(scaler.transform(X), y)
    return scaler, clf


def dimension_targets(y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, 0/1 targets of the masked rows) of the ``name`` head for label indices ``y``."""
    table = DIMENSION_TARGETS[name]
    codes = np.array([table.get(lab, -1) for lab in LABELS])[y]
    return codes >= 0, codes[codes >= 0]


def fit_heads(X: np.ndarray, y: np.ndarray, *, seed: int) -> "Heads":
    """The emotion classifier on every window of ``X`` (labels ``y``), and the arousal and valence
    heads on the windows whose label has a side (DIMENSION_TARGETS)."""
    from ..model import DIMENSIONS, Heads

    dims = {}
    for name in DIMENSIONS:
        mask, target = dimension_targets(y, name)
        dims[name] = classifier_of(*fit(X[mask], target, seed=seed, params=DIMENSION_MLP_PARAMS))
    return Heads(classifier_of(*fit(X, y, seed=seed)), **dims)


def stack_windows(clips: list[Clip], vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(vectors)
    y = np.concatenate([np.full(v.shape[0], c.label) for c, v in zip(clips, vectors)])
    return X, y


def classifier_of(scaler: Any, clf: Any) -> "Classifier":
    """A fitted StandardScaler and MLPClassifier as plain arrays."""
    from ..model import Classifier

    return Classifier(
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        coefs=tuple(np.asarray(w) for w in clf.coefs_),
        intercepts=tuple(np.asarray(b) for b in clf.intercepts_),
        activation=clf.activation,
    )


def to_model(heads: "Heads", *, fdef: FeatureDefinition, meta: dict[str, Any], adaptive: "AdaptiveHead | None" = None,
             labels: tuple[str, ...] = LABELS) -> "Model":
    """A bundle of heads (trained on all eight labels unless ``labels`` says otherwise)."""
    from ..model import Model

    return Model(labels=labels, features=fdef, heads=heads, meta=meta, adaptive=adaptive)


CALM_LABELS = (LABELS.index("neutral"), LABELS.index("calm"))


def stats_windows(indices: list[int], clips: list[Clip], vectors: list[np.ndarray], *, realistic: bool) -> np.ndarray | None:
    """A speaker's windows for statistics: with ``realistic`` those of their neutral and calm clips
    (all of them when the speaker has none); None without any clip."""
    chosen = [i for i in indices if not realistic or clips[i].label in CALM_LABELS] or indices
    return np.concatenate([vectors[i] for i in chosen]) if chosen else None


HEARD_CLIPS = (0, 1, 2, 4, 8, 16, 32)  # how many clips of a speaker the statistics may have heard


def fit_adaptive(clips: list[Clip], stats_vecs: list[np.ndarray], train_vecs: list[np.ndarray], indices: list[int], *,
                 seed: int, heard: str = "mixed") -> "AdaptiveHead":
    """The adaptive heads: every training window centred on an estimate of its speaker's resting
    voice (:func:`ser_stream.adaptation.batch_mean` of clean ``stats_vecs``, windows as the daemon
    takes them, shrunk toward the population prior) and divided by the population's within-speaker
    spread, then :func:`fit_heads` on them.

    The estimate of each clip is drawn afresh from 0 to 32 of the speaker's *other* neutral and
    calm clips (``heard="calm"``, the recipe; the daemon weights what it hears by how calm it
    sounds) or of any of their clips (``heard="household"``), as a daemon has heard after a few
    seconds or an hour of a household's talk; the prior is the mean over the same kind of clips.
    """
    from ..model import AdaptiveHead

    rng = np.random.default_rng(seed)
    calm_only = heard == "calm"
    actors = sorted({clips[i].actor for i in indices}, key=str)
    by_actor = {a: [i for i in indices if clips[i].actor == a] for a in actors}
    windows = {a: stats_windows(idx, clips, stats_vecs, realistic=calm_only or heard == "mixed") for a, idx in by_actor.items()}
    prior = Prior(mean=np.mean([w.mean(axis=0) for w in windows.values()], axis=0),
                  var=np.mean([w.var(axis=0) for w in windows.values()], axis=0), windows=PRIOR_WINDOWS)
    empty = np.zeros((0, prior.mean.shape[0]))
    Xs, ys = [], []
    for a, idx in by_actor.items():
        calm_pool = [j for j in idx if clips[j].label in CALM_LABELS] or idx
        for i in idx:
            pool = calm_pool if calm_only or (heard == "mixed" and rng.random() < 0.5) else idx
            others = [j for j in pool if j != i]
            m = min(int(rng.choice(HEARD_CLIPS)), len(others))
            pick = rng.choice(len(others), size=m, replace=False) if m else []
            heard_windows = [stats_vecs[others[k]] for k in pick]
            centre = batch_mean(np.concatenate(heard_windows) if heard_windows else empty, prior=prior)
            Xs.append(prior.normalise(train_vecs[i], centre))
            ys.append(np.full(train_vecs[i].shape[0], clips[i].label))
    return AdaptiveHead(prior=prior, heads=fit_heads(np.concatenate(Xs), np.concatenate(ys), seed=seed))


def fit_model(clips: list[Clip], data: "TrainingData", indices: list[int], *, fdef: FeatureDefinition, seed: int,
              meta: dict[str, Any] | None = None) -> "Model":
    """Both sets of heads on the clips ``indices``: speaker-independent (every training view) and adaptive."""
    X, y = stack_windows([clips[i] for i in indices], [data.train[i] for i in indices])
    heads = fit_heads(X, y, seed=seed)
    adaptive = fit_adaptive(clips, data.stats, data.train_adaptive, list(indices), seed=seed)
    return to_model(heads, fdef=fdef, meta=meta or {}, adaptive=adaptive)


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature T (0.05-20) minimising the negative log-likelihood of softmax(log_probs / T)
    for label indices ``y``: temperature scaling (Guo et al. 2017), fitted on held-out speakers."""
    from scipy.optimize import minimize_scalar

    z = np.asarray(log_probs, dtype=np.float64)
    rows = np.arange(z.shape[0])

    def nll(log_t: float) -> float:
        h = z / np.exp(log_t)
        h = h - h.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(h).sum(axis=1)) - h[rows, y]))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def calibrated(model: "Model", *, speaker_independent: float | None = None, adaptive: float | None = None) -> "Model":
    """``model`` with the emotion heads' temperatures set (None: unchanged)."""
    from dataclasses import replace

    if speaker_independent is not None:
        model = replace(model, heads=replace(model.heads, emotion=model.heads.emotion.with_temperature(speaker_independent)))
    if adaptive is not None and model.adaptive is not None:
        a = model.adaptive
        model = replace(model, adaptive=replace(a, heads=replace(a.heads, emotion=a.heads.emotion.with_temperature(adaptive))))
    return model
