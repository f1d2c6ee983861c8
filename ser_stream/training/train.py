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
from .corpora import corpora_of, is_pooled, scan_corpora
from .extract import ADAPTIVE_AUGMENT_COPIES, TRAIN_HOP_SECONDS, TRAIN_WINDOW_SECONDS, extract_for_training
from .fit import DIMENSION_MLP_PARAMS, DIMENSION_TARGETS, MLP_PARAMS, calibrated, fit_model, stack_windows
from .household import actor_folds, corpus_folds, fold_temperatures, household_cross_validation

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


def train_command(*, data_dirs: list[Path], out: Path, seed: int, jobs: int,
                  augment_copies: int | None = None) -> "Model":
    """Fit every head on all of ``data_dirs``. With several corpora also run the household protocol
    leaving one corpus out at a time (with one corpus of 6 or more speakers: over speaker-grouped
    folds), record its figures and calibrate the emotion heads' confidence with temperatures fitted
    on the held-out corpora's (speakers') windows."""
    from datetime import datetime, timezone

    from ..features import build_feature_matrices

    clips = scan_corpora(data_dirs)
    missing = sorted(set(range(len(LABELS))) - {c.label for c in clips})
    if missing:
        raise InputMissingError(f"{', '.join(map(str, data_dirs))}: no clips of {', '.join(LABELS[i] for i in missing)}; "
                                "a model needs all 8 emotions")
    fdef = build_feature_matrices()
    data = extract_for_training(clips, fdef=fdef, jobs=jobs, augment_copies=augment_copies, seed=seed)
    clips = data.clips
    X, y = stack_windows(clips, data.train)
    log.info("training on %d windows from %d clips (%d features): speaker-independent and adaptive heads",
             X.shape[0], len(clips), X.shape[1])
    several = len(corpora_of(clips)) > 1
    validate = several or len({c.actor for c in clips}) >= 6
    splits = (corpus_folds(clips) if several else actor_folds(clips)) if validate else []
    # the model and the cross-validation's fold models in one pool (the folds only score held-out data)
    from joblib import Parallel, delayed

    subsets = [list(range(len(clips)))] + [list(tr) for tr, _ in splits]
    fitted = Parallel(n_jobs=max(1, min(jobs, len(subsets))))(
        delayed(fit_model)(clips, data, idx, fdef=fdef, seed=seed) for idx in subsets)
    model, fold_models = fitted[0], fitted[1:]
    meta = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "training": {
            "data": [str(d) for d in data_dirs],
            "corpora": {name: {"clips": sum(c.corpus == name for c in clips),
                               "speakers": len({c.actor for c in clips if c.corpus == name}),
                               "labels": sorted({LABELS[c.label] for c in clips if c.corpus == name},
                                                key=LABELS.index)} for name in corpora_of(clips)},
            "weights": "every label weighs the same, shared equally by the corpora that have it; within a "
                       "corpus's label every clip the same, shared by its windows",
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
            "voices": None if model.voices is None else {
                "embedding": "linear discriminant analysis of the window vectors' log-mel and MFCC means and "
                             "standard deviations, speakers as classes over every emotion (pooled ids left out), "
                             "every training view",
                "dimensions": int(model.voices.projection.shape[1]),
                "speakers": len({c.actor for c in clips if not is_pooled(c.actor)}),
                "threshold": model.voices.threshold},
        },
        "versions": _versions(),
        "license": "Trained on " + ", ".join(corpora_of(clips)) + "; the bundle is CC BY-NC-SA 4.0 (RAVDESS, nEMO "
                   "and emospeech are CC BY-NC-SA 4.0, EmoDB CC0 1.0): non-commercial use only, attribution, "
                   "share-alike.",
    }
    if validate:
        cv = household_cross_validation(clips, data, fdef=fdef, config=Config(), seed=seed, jobs=jobs, splits=splits,
                                        models=fold_models)

        t_stream = fold_temperatures(cv.oof["streamed"])
        t_si = fold_temperatures(cv.oof["speaker-independent"])
        model = calibrated(model, speaker_independent=t_si, adaptive=t_stream)
        held_out = "corpora" if several else "actors"
        meta["calibration"] = {"method": f"temperature scaling, fitted on the held-out {held_out}' windows of the "
                                         "household cross-validation (arousal: its logit relative to the household)",
                               "adaptive": {k: round(v, 4) for k, v in t_stream.items() if v is not None},
                               "speaker_independent": {k: round(v, 4) for k, v in t_si.items() if v is not None}}
        meta["metrics"] = {"household": cv.household, "speaker-independent": cv.speaker_independent}
        if several:
            meta["metrics"]["leave-one-corpus-out"] = cv.folds
        log.info("household CV of this recipe: UAR %.3f, activation UAR %s, ECE %s; speaker-independent UAR %.3f; "
                 "temperatures %s (adaptive) / %s", cv.household["uar"], cv.household["activation_uar"],
                 cv.household["ece"], cv.speaker_independent["uar"], meta["calibration"]["adaptive"],
                 meta["calibration"]["speaker_independent"])
    else:
        log.info("one corpus of fewer than 6 speakers: no cross-validation, no calibration (temperature 1)")
    model = replace(model, meta=meta)
    model.save(out)
    log.info("wrote %s", out)
    return model
