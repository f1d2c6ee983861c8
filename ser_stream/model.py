"""Model bundle: load/save, integrity checks, and the numpy forward pass.

A bundle is a joblib file holding one dict of plain numpy arrays and metadata
(see ../shared/DESIGN.md). Loading needs neither scikit-learn nor librosa.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .adaptation import Prior
from .errors import ModelError
from .features import FeatureDefinition

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "ser-stream-model"
BUNDLE_VERSION = 1
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "default.joblib"
_ACTIVATIONS = ("relu", "tanh", "logistic", "identity")


def mlp_forward(x: np.ndarray, *, coefs: list[np.ndarray], intercepts: list[np.ndarray], activation: str) -> np.ndarray:
    """Softmax MLP forward pass, as scikit-learn's ``MLPClassifier.predict_proba``.

    ``x``: (n, n_features) already standardised. Returns (n, n_classes) probabilities.
    """
    h = np.asarray(x, dtype=np.float64)
    last = len(coefs) - 1
    for i, (w, b) in enumerate(zip(coefs, intercepts)):
        h = h @ w + b
        if i == last:
            break
        if activation == "relu":
            h = np.maximum(h, 0.0)
        elif activation == "tanh":
            h = np.tanh(h)
        elif activation == "logistic":
            h = 1.0 / (1.0 + np.exp(-h))
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

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, vector_size) vectors -> (n, n_labels) probabilities."""
        x = (np.atleast_2d(vectors) - self.scaler_mean) / self.scaler_scale
        return mlp_forward(x, coefs=list(self.coefs), intercepts=list(self.intercepts), activation=self.activation)

    def to_bundle(self) -> dict[str, Any]:
        return {
            "scaler": {"mean": self.scaler_mean, "scale": self.scaler_scale},
            "mlp": {"coefs": list(self.coefs), "intercepts": list(self.intercepts), "activation": self.activation},
        }


@dataclass(frozen=True)
class AdaptiveHead:
    """The classifier for per-stream adapted vectors (see :mod:`ser_stream.adaptation`): the
    population prior of the statistics and a classifier trained on speaker-normalised vectors."""

    prior: Prior
    classifier: Classifier

    def predict_proba(self, normalised: np.ndarray) -> np.ndarray:
        """(n, vector_size) vectors already normalised by the stream's statistics -> (n, n_labels)."""
        return self.classifier.predict_proba(normalised)

    def to_bundle(self) -> dict[str, Any]:
        prior = {"mean": self.prior.mean, "var": self.prior.var, "windows": self.prior.windows}
        return {"prior": prior, **self.classifier.to_bundle()}


@dataclass(frozen=True)
class Model:
    """A loaded bundle. Immutable; shared read-only by whoever classifies."""

    labels: tuple[str, ...]
    features: FeatureDefinition
    classifier: Classifier  # speaker-independent
    meta: dict[str, Any]
    path: Path | None = None
    adaptive: AdaptiveHead | None = None  # present in bundles trained for per-stream adaptation

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
            **self.classifier.to_bundle(),
            **({"adaptive": self.adaptive.to_bundle()} if self.adaptive is not None else {}),
            **self.meta,
        }

    def save(self, path: Path) -> None:
        import joblib

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        joblib.dump(self.to_bundle(), tmp, compress=3)
        tmp.replace(path)


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
    return Classifier(mean, scale, coefs, intercepts, activation)


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
    return AdaptiveHead(Prior(p_mean, p_var, windows), _classifier(part, where="adaptive.", n_in=n_in, n_out=n_out))


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
    classifier = _classifier(bundle, where="", n_in=n_in, n_out=n_out)
    adaptive = None if bundle.get("adaptive") is None else _adaptive_head(bundle["adaptive"], n_in=n_in, n_out=n_out)
    skip = {"format", "format_version", "labels", "sample_rate_hz", "features", "scaler", "mlp", "adaptive"}
    meta = {k: v for k, v in bundle.items() if k not in skip}
    return Model(labels, fdef, classifier, meta, path, adaptive)


def load_model(path: Path | None) -> Model:
    """Load and check a bundle; ``None`` = the bundled default. Raises ModelError (exit 78)."""
    import joblib

    path = DEFAULT_MODEL_PATH if path is None else Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (model.path)")
    try:
        bundle = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ModelError(f"{path}: cannot read model bundle: {type(exc).__name__}: {exc}") from None
    try:
        model = from_bundle(bundle, path=path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: invalid model bundle: {exc}") from None
    log.debug("loaded model %s (%d labels, %d inputs)", path, len(model.labels), model.features.vector_size)
    return model
