"""Window vectors of clips for training and evaluation, through the daemon's own analyzer.

Clip features come from the same :class:`~ser_stream.pipeline.Analyzer` the
daemon streams through, so the model learns what the daemon will hear.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..capture.file import AudioFile
from ..capture.resample import Resampler
from ..errors import AudioReadError, InputMissingError
from ..features import FeatureDefinition
from ..pipeline import Analyzer
from .corpora import Clip

log = logging.getLogger(__name__)

TRAIN_WINDOW_SECONDS = 3.0
TRAIN_HOP_SECONDS = 0.5


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
    from .. import augment

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
