"""Model bundle: load/save, integrity checks, and the numpy forward pass.

A bundle is one dict of plain numpy arrays and metadata, stored data-only by
:mod:`ser_stream.bundle` (see docs/contracts.md). Loading needs neither
scikit-learn nor librosa, and executes nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .adaptation import Prior
from .bundle import read_bundle, write_bundle
from .errors import ModelError
from .features import FeatureDefinition
from .labels import LABELS
from .packaged import packaged_file
from .voices import VoiceEmbedding, embedding_from_bundle

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "ser-stream-model"
BUNDLE_VERSION = 1
DEFAULT_MODEL_NAME = "default.npz"


# inside the installed package (any install), else models/ beside the package (a checkout run in place)
DEFAULT_MODEL_PATH = packaged_file("ser_stream.models", DEFAULT_MODEL_NAME, checkout_folder="models")
_ACTIVATIONS = ("relu", "tanh", "logistic", "identity")


def _activate(h: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(h, 0.0)
    if activation == "tanh":
        return np.tanh(h)
    if activation == "logistic":
        return _sigmoid(h)
    return h


def _sigmoid(h: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-h)) without overflow for large |h| (a saturated head's logits reach the hundreds)."""
    e = np.exp(-np.abs(h))
    return np.where(h >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def mlp_logits(x: np.ndarray, *, coefs: list[np.ndarray], intercepts: list[np.ndarray], activation: str) -> np.ndarray:
    """The MLP's output layer before its output activation. ``x``: (n, n_features) standardised -> (n, n_out)."""
    return _later_layers(np.asarray(x, dtype=np.float64) @ coefs[0] + intercepts[0],
                         coefs=coefs[1:], intercepts=intercepts[1:], activation=activation)


def _later_layers(h: np.ndarray, *, coefs: list[np.ndarray] | tuple[np.ndarray, ...],
                  intercepts: list[np.ndarray] | tuple[np.ndarray, ...], activation: str) -> np.ndarray:
    """The layers after the first, given the first layer's output before its activation."""
    for w, b in zip(coefs, intercepts):
        h = _activate(h, activation) @ w + b
    return h


def logits_to_proba(h: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """(n, k) output-layer values -> (n, k) probabilities (softmax), or (n, 2) [P(0), P(1)] for a
    binary MLP's single logistic output (k = 1); both divided by ``temperature`` first."""
    h = np.asarray(h, dtype=np.float64) / temperature
    if h.shape[1] == 1:
        p = _sigmoid(h)
        return np.concatenate([1.0 - p, p], axis=1)
    h = h - h.max(axis=1, keepdims=True)
    e = np.exp(h)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Classifier:
    """A standardiser and an MLP, as fitted by scikit-learn, applied with numpy."""

    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    coefs: tuple[np.ndarray, ...]
    intercepts: tuple[np.ndarray, ...]
    activation: str
    temperature: float = 1.0  # calibration: output logits are divided by it (fitted on held-out speakers)

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """(n, vector_size) vectors -> (n, n_out) output-layer values (before temperature)."""
        x = (np.atleast_2d(vectors) - self.scaler_mean) / self.scaler_scale
        return mlp_logits(x, coefs=list(self.coefs), intercepts=list(self.intercepts), activation=self.activation)

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, vector_size) vectors -> (n, n_labels) probabilities (a binary head: (n, 2))."""
        return logits_to_proba(self.logits(vectors), temperature=self.temperature)

    def folded_first_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """The first layer's weights (n_in, width) and biases (width,) with the standardiser folded
        in: ``vectors @ w + b`` equals the first layer's output for the unstandardised vectors."""
        w = self.coefs[0] / self.scaler_scale[:, None]
        return w, self.intercepts[0] - self.scaler_mean @ w

    def signed(self, vectors: np.ndarray) -> np.ndarray:
        """A binary head's answer on [-1, 1]: 2 P(high) - 1, (n,); 0 is the boundary."""
        return 2.0 * self.predict_proba(vectors)[:, 1] - 1.0

    def with_temperature(self, temperature: float) -> "Classifier":
        return replace(self, temperature=float(temperature))

    def to_bundle(self) -> dict[str, Any]:
        return {
            "scaler": {"mean": self.scaler_mean, "scale": self.scaler_scale},
            "mlp": {"coefs": list(self.coefs), "intercepts": list(self.intercepts), "activation": self.activation,
                    "temperature": self.temperature},
        }


DIMENSIONS = ("arousal", "valence")  # binary heads: high vs low activation, positive vs negative valence


@dataclass(frozen=True)
class Heads:
    """What one set of heads answers for a window: the emotion classifier, and the arousal and
    valence heads (binary MLPs; absent in older bundles)."""

    emotion: Classifier
    arousal: Classifier | None = None
    valence: Classifier | None = None

    def dimension(self, name: str, vectors: np.ndarray) -> np.ndarray | None:
        """(n,) ``name`` ("arousal" or "valence") on [-1, 1], or None when the bundle has no such head."""
        head = getattr(self, name)
        return None if head is None else head.signed(vectors)

    @cached_property
    def _fused(self) -> tuple[np.ndarray, np.ndarray, tuple[tuple[Classifier, slice] | None, ...]]:
        """Every head's first layer (standardiser folded in) side by side, and each head's columns:
        one matrix product per window instead of one per head (the run path's largest product)."""
        heads = (self.emotion, self.arousal, self.valence)
        layers = [h.folded_first_layer() for h in heads if h is not None]
        w = np.ascontiguousarray(np.concatenate([lw for lw, _ in layers], axis=1))
        b = np.concatenate([lb for _, lb in layers])
        plan, start = [], 0
        for head in heads:
            if head is None:
                plan.append(None)
                continue
            width = head.coefs[0].shape[1]
            plan.append((head, slice(start, start + width)))
            start += width
        return w, b, tuple(plan)

    def answer(self, vector: np.ndarray) -> tuple[np.ndarray, float | None, float | None]:
        """One window vector (D,) -> (emotion probabilities (n_labels,), arousal, valence), the
        dimensions on [-1, 1] (None without their head): what ``emotion.predict_proba`` and
        :meth:`dimension` give, in one pass."""
        w, b, plan = self._fused
        first = np.asarray(vector, dtype=np.float64) @ w + b
        out: list[np.ndarray | None] = []
        for step in plan:
            if step is None:
                out.append(None)
                continue
            head, span = step
            out.append(_later_layers(first[span], coefs=head.coefs[1:], intercepts=head.intercepts[1:],
                                     activation=head.activation) / head.temperature)
        probs = logits_to_proba(out[0][None, :])[0]  # already divided by the temperature
        # a binary head's 2 P(high) - 1 = tanh(logit / 2)
        arousal, valence = (None if h is None else math.tanh(0.5 * float(h[0])) for h in out[1:])
        return probs, arousal, valence

    def to_bundle(self) -> dict[str, Any]:
        out = self.emotion.to_bundle()
        for name in DIMENSIONS:
            head = getattr(self, name)
            if head is not None:
                out[name] = head.to_bundle()
        return out


@dataclass(frozen=True)
class AdaptiveHead:
    """The classifier for per-stream adapted vectors (see :mod:`ser_stream.adaptation`): the
    population prior of the statistics and a classifier trained on speaker-normalised vectors."""

    prior: Prior
    heads: Heads

    def predict_proba(self, normalised: np.ndarray) -> np.ndarray:
        """(n, vector_size) vectors already normalised by the stream's statistics -> (n, n_labels)."""
        return self.heads.emotion.predict_proba(normalised)

    def to_bundle(self) -> dict[str, Any]:
        prior = {"mean": self.prior.mean, "var": self.prior.var, "windows": self.prior.windows}
        return {"prior": prior, **self.heads.to_bundle()}


@dataclass(frozen=True)
class Model:
    """A loaded bundle. Immutable; shared read-only by whoever classifies."""

    labels: tuple[str, ...]
    features: FeatureDefinition
    heads: Heads  # speaker-independent
    meta: dict[str, Any]
    path: Path | None = None
    adaptive: AdaptiveHead | None = None  # present in bundles trained for per-stream adaptation
    sha256: str | None = None  # of the bundle's arrays, as recorded in and checked against the file
    voices: VoiceEmbedding | None = None  # tells the voices of a home apart (ser_stream.voices); absent in older bundles

    @property
    def classifier(self) -> Classifier:
        """The speaker-independent emotion classifier."""
        return self.heads.emotion

    @property
    def sample_rate_hz(self) -> int:
        return self.features.sample_rate_hz

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, vector_size) window vectors -> (n, n_labels) probabilities, speaker-independent."""
        return self.classifier.predict_proba(vectors)

    def to_bundle(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "labels": list(self.labels),
            "sample_rate_hz": self.sample_rate_hz,
            "features": self.features.to_dict(),
            **self.heads.to_bundle(),
            **({"adaptive": self.adaptive.to_bundle()} if self.adaptive is not None else {}),
            **({"voices": self.voices.to_bundle()} if self.voices is not None else {}),
            **self.meta,
        }

    def save(self, path: Path) -> str:
        """Write the data-only bundle (:mod:`ser_stream.bundle`); returns its arrays' SHA-256."""
        return write_bundle(self.to_bundle(), Path(path))


def _classifier(part: Any, *, where: str, n_in: int, n_out: int) -> Classifier:
    """Validate a scaler + MLP pair (``part`` holds "scaler" and "mlp"); ``where`` prefixes the messages."""
    for key in ("scaler", "mlp"):
        if key not in part:
            raise ValueError(f"bundle lacks key {where + key!r}")
    mean = np.asarray(part["scaler"]["mean"], dtype=np.float64)
    scale = np.asarray(part["scaler"]["scale"], dtype=np.float64)
    mlp = part["mlp"]
    coefs = tuple(np.asarray(w, dtype=np.float64) for w in mlp["coefs"])
    intercepts = tuple(np.asarray(b, dtype=np.float64) for b in mlp["intercepts"])
    activation = str(mlp.get("activation", "relu"))
    temperature = float(mlp.get("temperature", 1.0))
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{where}mlp.temperature is {temperature}, expected > 0")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} in {where}mlp")
    if mean.shape != (n_in,) or scale.shape != (n_in,):
        raise ValueError(f"{where}scaler shapes {mean.shape}/{scale.shape} do not match the feature vector size {n_in}")
    if not coefs or len(coefs) != len(intercepts):
        raise ValueError(f"{where}mlp weights and biases do not pair up")
    width = n_in
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise ValueError(f"{where}mlp layer {i} has shape {w.shape} / {b.shape}, expected input width {width}")
        width = w.shape[1]
    if width != n_out:
        raise ValueError(f"{where}mlp output width {width} does not match {n_out} labels")
    arrays = [("scaler.mean", mean), ("scaler.scale", scale), *[(f"mlp.coefs[{i}]", w) for i, w in enumerate(coefs)]]
    for name, arr in arrays:
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}{name} holds non-finite values")
    if np.any(scale <= 0):
        raise ValueError(f"{where}scaler.scale holds non-positive values")
    return Classifier(mean, scale, coefs, intercepts, activation, temperature)


def _heads(part: Any, *, where: str, n_in: int, n_out: int) -> Heads:
    """The emotion classifier of ``part`` and its optional arousal and valence heads (one logistic output each)."""
    dims = {name: _classifier(part[name], where=f"{where}{name}.", n_in=n_in, n_out=1)
            for name in DIMENSIONS if part.get(name) is not None}
    return Heads(_classifier(part, where=where, n_in=n_in, n_out=n_out), **dims)


def _adaptive_head(part: Any, *, n_in: int, n_out: int) -> AdaptiveHead:
    prior = part.get("prior") if isinstance(part, dict) else None
    if prior is None:
        raise ValueError("bundle lacks key 'adaptive.prior'")
    p_mean = np.asarray(prior["mean"], dtype=np.float64)
    p_var = np.asarray(prior["var"], dtype=np.float64)
    windows = float(prior["windows"])
    if p_mean.shape != (n_in,) or p_var.shape != (n_in,) or not np.all(np.isfinite(p_mean)) or not np.all(p_var >= 0):
        raise ValueError(f"adaptive.prior has shapes {p_mean.shape}/{p_var.shape} or invalid values; expected ({n_in},)")
    if not windows > 0:
        raise ValueError(f"adaptive.prior.windows is {windows}, expected > 0")
    return AdaptiveHead(Prior(p_mean, p_var, windows), _heads(part, where="adaptive.", n_in=n_in, n_out=n_out))


def from_bundle(bundle: Any, *, path: Path | None = None) -> Model:
    """Validate a bundle dict and build a :class:`Model`; raises ValueError naming the problem."""
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"not a {BUNDLE_FORMAT} bundle")
    if bundle.get("format_version") != BUNDLE_VERSION:
        raise ValueError(f"bundle format_version {bundle.get('format_version')!r}, this version reads {BUNDLE_VERSION}")
    for key in ("labels", "features"):
        if key not in bundle:
            raise ValueError(f"bundle lacks key {key!r}")
    labels = tuple(str(x) for x in bundle["labels"])
    fdef = FeatureDefinition.from_dict(bundle["features"])
    n_in, n_out = fdef.vector_size, len(labels)
    heads = _heads(bundle, where="", n_in=n_in, n_out=n_out)
    adaptive = None if bundle.get("adaptive") is None else _adaptive_head(bundle["adaptive"], n_in=n_in, n_out=n_out)
    voices = None if bundle.get("voices") is None else embedding_from_bundle(bundle["voices"], n_in=n_in)
    skip = {"format", "format_version", "labels", "sample_rate_hz", "features", "scaler", "mlp", "adaptive", "voices",
            *DIMENSIONS}
    meta = {k: v for k, v in bundle.items() if k not in skip}
    return Model(labels, fdef, heads, meta, path, adaptive, voices=voices)


def load_model(path: Path | None) -> Model:
    """Load and check a bundle; ``None`` = the bundled default. Raises ModelError (exit 78)."""
    path = DEFAULT_MODEL_PATH if path is None else Path(path)
    bundle, digest = read_bundle(path)
    try:
        model = from_bundle(bundle, path=path)
    except Exception as exc:  # noqa: BLE001 - a bundle is untrusted data: whatever its content breaks, it is invalid
        raise ModelError(f"{path}: invalid model bundle: {type(exc).__name__}: {exc}") from None
    log.debug("loaded model %s (%d labels, %d inputs, sha256 %s)", path, len(model.labels), model.features.vector_size, digest)
    return replace(model, sha256=digest)


def convert_pickle(old: Path, new: Path) -> str:
    """Unpickle a joblib bundle (only ever on the user's command, for a file they trust), validate it
    and write it as a data-only bundle. Returns the new file's SHA-256."""
    import joblib

    if not old.is_file():
        raise ModelError(f"{old}: model file not found")
    try:
        bundle = joblib.load(old)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a file we cannot convert
        raise ModelError(f"{old}: cannot read joblib bundle: {type(exc).__name__}: {exc}") from None
    try:
        model = from_bundle(bundle, path=old)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{old}: invalid model bundle: {exc}") from None
    return model.save(new)
