"""Fitting the heads: scaler + MLP (scikit-learn), exported as plain arrays."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..adaptation import PRIOR_WINDOWS, Prior, batch_mean
from ..features import FeatureDefinition
from ..model import LABELS
from .corpora import Clip, is_pooled
from .voices import fit_voice_embedding

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


def fit(X: np.ndarray, y: np.ndarray, *, seed: int, params: dict[str, Any] | None = None,
        weights: np.ndarray | None = None) -> tuple[Any, Any]:
    """Standardise and fit the MLP (rows weighted by ``weights``, mean 1; None: equally); returns (scaler, classifier)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X, sample_weight=weights)
    clf = MLPClassifier(random_state=seed, **(params or MLP_PARAMS)).fit(scaler.transform(X), y, sample_weight=weights)
    return scaler, clf


def clip_weights(clips: list[Clip]) -> np.ndarray:
    """A weight per clip (mean 1) so that no corpus and no label dominates: every label present weighs
    the same, shared equally by the corpora that have it, and within one corpus's label every clip
    weighs the same. A label a corpus lacks is simply absent from it: it never becomes a negative
    example weighted up to fill the gap (see models/README.md, "Training data")."""
    cells: dict[tuple[str, int], int] = {}
    for c in clips:
        cells[(c.corpus, c.label)] = cells.get((c.corpus, c.label), 0) + 1
    corpora_with = {lab: sum(1 for (_, lb) in cells if lb == lab) for lab in {lb for _, lb in cells}}
    w = np.array([1.0 / (corpora_with[c.label] * cells[(c.corpus, c.label)]) for c in clips])
    return w * (len(clips) / w.sum())


def window_weights(clip_w: np.ndarray, vectors: list[np.ndarray]) -> np.ndarray:
    """Per window (concatenated as ``vectors``): its clip's weight shared by the clip's windows, mean 1."""
    w = np.concatenate([np.full(v.shape[0], cw / v.shape[0]) for cw, v in zip(clip_w, vectors)])
    return w * (w.size / w.sum())


def dimension_targets(y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, 0/1 targets of the masked rows) of the ``name`` head for label indices ``y``."""
    table = DIMENSION_TARGETS[name]
    codes = np.array([table.get(lab, -1) for lab in LABELS])[y]
    return codes >= 0, codes[codes >= 0]


def fit_heads(X: np.ndarray, y: np.ndarray, *, seed: int, weights: np.ndarray | None = None) -> "Heads":
    """The emotion classifier on every window of ``X`` (labels ``y``, row ``weights``), and the arousal
    and valence heads on the windows whose label has a side (DIMENSION_TARGETS)."""
    from ..model import DIMENSIONS, Heads

    dims = {}
    for name in DIMENSIONS:
        mask, target = dimension_targets(y, name)
        wm = None if weights is None else weights[mask] * (mask.sum() / weights[mask].sum())
        dims[name] = classifier_of(*fit(X[mask], target, seed=seed, params=DIMENSION_MLP_PARAMS, weights=wm))
    return Heads(classifier_of(*fit(X, y, seed=seed, weights=weights), n_classes=len(LABELS)), **dims)


def stack_windows(clips: list[Clip], vectors: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate(vectors)
    y = np.concatenate([np.full(v.shape[0], c.label) for c, v in zip(clips, vectors)])
    return X, y


ABSENT_LOGIT = -50.0  # output of a label no training clip had: probability about 1e-22


def classifier_of(scaler: Any, clf: Any, *, n_classes: int | None = None) -> "Classifier":
    """A fitted StandardScaler and MLPClassifier as plain arrays. With ``n_classes`` (a softmax
    head) the output layer gets a column for every class index 0..n_classes-1; a class the training
    windows lacked (``calm`` when RAVDESS is held out) gets ABSENT_LOGIT: never answered."""
    from ..model import Classifier

    coefs = [np.asarray(w) for w in clf.coefs_]
    intercepts = [np.asarray(b) for b in clf.intercepts_]
    classes = np.asarray(clf.classes_)
    if n_classes is not None and len(classes) > 2 and len(classes) < n_classes:
        w = np.zeros((coefs[-1].shape[0], n_classes))
        b = np.full(n_classes, ABSENT_LOGIT)
        w[:, classes] = coefs[-1]
        b[classes] = intercepts[-1]
        coefs[-1], intercepts[-1] = w, b
    return Classifier(
        scaler_mean=np.asarray(scaler.mean_, dtype=np.float64),
        scaler_scale=np.asarray(scaler.scale_, dtype=np.float64),
        coefs=tuple(coefs),
        intercepts=tuple(intercepts),
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
    # a clip of a pool of many people (emospeech's "unknown") is a speaker of its own, heard for the first time
    speaker = {i: f"pool#{i}" if is_pooled(clips[i].actor) else clips[i].actor for i in indices}
    by_actor = {a: [] for a in sorted(set(speaker.values()), key=str)}
    for i in indices:
        by_actor[speaker[i]].append(i)
    windows = {a: stats_windows(idx, clips, stats_vecs, realistic=calm_only or heard == "mixed") for a, idx in by_actor.items()
               if not is_pooled(clips[idx[0]].actor)}
    corpus_of = {a: clips[by_actor[a][0]].corpus for a in windows}

    def population(stat: str) -> np.ndarray:  # the mean over corpora of the mean over their speakers
        per_corpus = {}
        for a, w in windows.items():
            per_corpus.setdefault(corpus_of[a], []).append(getattr(w, stat)(axis=0))
        return np.mean([np.mean(v, axis=0) for v in per_corpus.values()], axis=0)

    prior = Prior(mean=population("mean"), var=population("var"), windows=PRIOR_WINDOWS)
    empty = np.zeros((0, prior.mean.shape[0]))
    clip_w = dict(zip(indices, clip_weights([clips[i] for i in indices])))
    Xs, ys, ws = [], [], []
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
            ws.append(clip_w[i])
    weights = window_weights(np.array(ws), Xs)
    return AdaptiveHead(prior=prior, heads=fit_heads(np.concatenate(Xs), np.concatenate(ys), seed=seed, weights=weights))


def fit_model(clips: list[Clip], data: "TrainingData", indices: list[int], *, fdef: FeatureDefinition, seed: int,
              meta: dict[str, Any] | None = None) -> "Model":
    """Both sets of heads on the clips ``indices``: speaker-independent (every training view) and adaptive."""
    chosen, vectors = [clips[i] for i in indices], [data.train[i] for i in indices]
    X, y = stack_windows(chosen, vectors)
    heads = fit_heads(X, y, seed=seed, weights=window_weights(clip_weights(chosen), vectors))
    adaptive = fit_adaptive(clips, data.stats, data.train_adaptive, list(indices), seed=seed)
    voices = fit_voice_embedding(clips, data.train, list(indices), fdef=fdef)
    return replace(to_model(heads, fdef=fdef, meta=meta or {}, adaptive=adaptive), voices=voices)


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


def fit_binary_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """:func:`fit_temperature` of a binary head: sigmoid(logit / T) against 0/1 targets ``y``."""
    z = np.asarray(logits, dtype=np.float64)
    return fit_temperature(np.stack([np.zeros_like(z), z], axis=1), np.asarray(y, dtype=int))


Temperatures = dict[str, "float | None"]  # head name ("emotion", "arousal") -> temperature (None: unchanged)


def _heads_at(heads: "Heads", temperatures: Temperatures) -> "Heads":
    from dataclasses import replace

    for name, t in temperatures.items():
        head = getattr(heads, name)
        if t is not None and head is not None:
            heads = replace(heads, **{name: head.with_temperature(t)})
    return heads


def calibrated(model: "Model", *, speaker_independent: Temperatures | None = None,
               adaptive: Temperatures | None = None) -> "Model":
    """``model`` with its heads' temperatures set, per set of heads (None: unchanged)."""
    if speaker_independent is not None:
        model = replace(model, heads=_heads_at(model.heads, speaker_independent))
    if adaptive is not None and model.adaptive is not None:
        model = replace(model, adaptive=replace(model.adaptive, heads=_heads_at(model.adaptive.heads, adaptive)))
    return model
