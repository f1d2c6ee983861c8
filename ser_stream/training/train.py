"""The ``train`` command: a model bundle from a labelled corpus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..adaptation import PRIOR_WINDOWS
from ..errors import InputMissingError
from ..model import LABELS
from .corpora import scan_ravdess
from .extract import ADAPTIVE_AUGMENT_COPIES, TRAIN_HOP_SECONDS, TRAIN_WINDOW_SECONDS, extract_for_training
from .fit import MLP_PARAMS, fit, fit_adaptive, stack_windows, to_model
from .protocols import cross_validate

if TYPE_CHECKING:
    from ..model import Model

log = logging.getLogger(__name__)


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

    from ..features import build_feature_matrices

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
