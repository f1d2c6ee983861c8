"""Fitting the heads: scaler + MLP (scikit-learn), exported as plain arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..adaptation import PRIOR_WINDOWS, Prior, batch_mean
from ..features import FeatureDefinition
from ..model import LABELS
from .corpora import Clip

if TYPE_CHECKING:
    from ..model import AdaptiveHead, Classifier, Model

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
    from ..model import Classifier

    return Classifier(
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        coefs=tuple(np.asarray(w) for w in clf.coefs_),
        intercepts=tuple(np.asarray(b) for b in clf.intercepts_),
        activation=clf.activation,
    )


def to_model(scaler: Any, clf: Any, *, fdef: FeatureDefinition, meta: dict[str, Any],
             adaptive: "AdaptiveHead | None" = None) -> "Model":
    from ..model import Model

    labels = tuple(LABELS[int(c)] for c in clf.classes_)
    return Model(labels=labels, features=fdef, classifier=classifier_of(scaler, clf), meta=meta, adaptive=adaptive)


def to_adaptive_head(prior: Prior, scaler: Any, clf: Any) -> "AdaptiveHead":
    from ..model import AdaptiveHead

    return AdaptiveHead(prior=prior, classifier=classifier_of(scaler, clf))


CALM_LABELS = (LABELS.index("neutral"), LABELS.index("calm"))


def stats_windows(indices: list[int], clips: list[Clip], vectors: list[np.ndarray], *, realistic: bool) -> np.ndarray | None:
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
    windows = {a: stats_windows(idx, clips, stats_vecs, realistic=realistic) for a, idx in by_actor.items()}
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
