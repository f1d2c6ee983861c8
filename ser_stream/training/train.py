"""The ``train`` command: a model bundle from a labelled corpus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dataclasses import replace

import numpy as np

from ..adaptation import PRIOR_WINDOWS
from ..config import Config
from ..errors import InputMissingError
from ..model import LABELS
from .corpora import scan_corpus
from .extract import ADAPTIVE_AUGMENT_COPIES, TRAIN_HOP_SECONDS, TRAIN_WINDOW_SECONDS, extract_for_training
from .fit import (DIMENSION_MLP_PARAMS, DIMENSION_TARGETS, MLP_PARAMS, calibrated, fit_model, fit_temperature,
                  stack_windows)
from .household import household_cross_validation

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
    """Fit every head on all of ``data_dir``; with 6 or more speakers also run the household
    protocol over actor-grouped folds, record its figures and calibrate the emotion heads'
    confidence with temperatures fitted on those held-out speakers."""
    from datetime import datetime, timezone

    from ..features import build_feature_matrices

    clips = scan_corpus(data_dir)
    missing = sorted(set(range(len(LABELS))) - {c.label for c in clips})
    if missing:
        raise InputMissingError(f"{data_dir}: no clips of {', '.join(LABELS[i] for i in missing)}; a model needs all 8 emotions")
    fdef = build_feature_matrices()
    data = extract_for_training(clips, fdef=fdef, jobs=jobs, augment_copies=augment_copies, seed=seed)
    clips = data.clips
    X, y = stack_windows(clips, data.train)
    log.info("training on %d windows from %d clips (%d features): speaker-independent and adaptive heads",
             X.shape[0], len(clips), X.shape[1])
    model = fit_model(clips, data, list(range(len(clips))), fdef=fdef, seed=seed)
    meta = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training": {
            "data": str(data_dir),
            "clips": len(clips),
            "windows": int(X.shape[0]),
            "actors": sorted({c.actor for c in clips}, key=str),
            "per_label_clips": {lab: sum(c.label == i for c in clips) for i, lab in enumerate(LABELS)},
            "label_share": {lab: round(float(np.mean(y == i)), 6) for i, lab in enumerate(LABELS)},
            "window_seconds": TRAIN_WINDOW_SECONDS,
            "hop_seconds": TRAIN_HOP_SECONDS,
            "augment_copies": data.augment_copies,
            "seed": seed,
            "mlp": {k: (list(v) if isinstance(v, tuple) else v) for k, v in MLP_PARAMS.items()},
            "dimension_mlp": {k: (list(v) if isinstance(v, tuple) else v) for k, v in DIMENSION_MLP_PARAMS.items()},
            "dimensions": DIMENSION_TARGETS,
            "adaptation": {"prior_windows": PRIOR_WINDOWS,
                           "speaker_statistics_from": "for each training clip, 0-32 of the speaker's other clips "
                                                      "(half the time neutral and calm ones only), 3 s windows, 1 s hop",
                           "normalisation": "centred on the speaker's shrunk mean, divided by the population's spread",
                           "augment_copies": min(data.augment_copies, ADAPTIVE_AUGMENT_COPIES)},
        },
        "versions": _versions(),
        "license": "Trained on RAVDESS (CC BY-NC-SA 4.0): non-commercial use only, attribution, share-alike.",
    }
    if len({c.actor for c in clips}) >= 6:
        cv = household_cross_validation(clips, data, fdef=fdef, config=Config(), seed=seed, jobs=jobs)
        t_stream = fit_temperature(*cv.oof["streamed"])
        t_si = fit_temperature(*cv.oof["speaker-independent"])
        model = calibrated(model, speaker_independent=t_si, adaptive=t_stream)
        meta["calibration"] = {"method": "temperature scaling, fitted on the held-out actors' windows of the "
                                         "household cross-validation", "adaptive": round(t_stream, 4),
                               "speaker_independent": round(t_si, 4)}
        meta["metrics"] = {"household": cv.household, "speaker-independent": cv.speaker_independent}
        log.info("household CV of this recipe: UAR %.3f, activation UAR %s, ECE %s; speaker-independent UAR %.3f; "
                 "temperatures %.3f (adaptive) / %.3f", cv.household["uar"], cv.household["activation_uar"],
                 cv.household["ece"], cv.speaker_independent["uar"], t_stream, t_si)
    else:
        log.info("fewer than 6 speakers: no cross-validation, no calibration (temperature 1)")
    model = replace(model, meta=meta)
    model.save(out)
    log.info("wrote %s", out)
    return model
