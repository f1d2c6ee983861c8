"""Offline classification of files through the streaming analyzer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .capture.file import AudioFile
from .capture.resample import Resampler
from .config import Config
from .model import Model
from .pipeline import Analyzer, WindowResult, make_analyzer, probs_json


log = logging.getLogger(__name__)


def analyze_file(path: str | Path, *, analyzer: Analyzer) -> tuple[str, list[WindowResult]]:
    """All window results of one file through a fresh ``analyzer`` (one zero-padded
    window if the file is shorter than a window). The file is read in blocks."""
    audio = AudioFile(path)
    resampler = Resampler(audio.sample_rate_hz, analyzer.sample_rate_hz)
    results: list[WindowResult] = []
    try:
        for block in audio.blocks(65536):
            results.extend(analyzer.push(resampler.process(block)))
    finally:
        audio.close()
    results.extend(analyzer.push(resampler.flush()))
    short = analyzer.flush_short()
    if short is not None:
        log.warning("%s is shorter than one window (%.2f s): classified once, zero-padded", audio.name, short.t)
        results.append(short)
    return audio.name, results


def summarize(results: list[WindowResult], *, labels: tuple[str, ...]) -> dict[str, Any]:
    """File-level result: probabilities averaged over the speech windows."""
    speech = [r.probs for r in results if r.speech and r.probs is not None]
    if not speech:
        return {"label": None, "confidence": None, "probs": None, "speech": False}
    probs = np.mean(speech, axis=0)
    best = int(np.argmax(probs))
    return {
        "label": labels[best],
        "confidence": round(float(probs[best]), 4),
        "probs": probs_json(probs, labels),
        "speech": True,
    }


def classify_file(path: str | Path, *, config: Config, model: Model, per_window: bool = False) -> Iterator[dict[str, Any]]:
    """JSON-ready objects: one per file, or one per window with ``per_window``."""
    name, results = analyze_file(path, analyzer=make_analyzer(config, model))
    if not per_window:
        yield {"file": name, **summarize(results, labels=model.labels)}
        return
    for r in results:
        yield {
            "file": name,
            "t": round(r.t, 3),
            "label": r.label,
            "confidence": None if r.confidence is None else round(r.confidence, 4),
            "probs": probs_json(r.probs, model.labels),
            "speech": r.speech,
            "level_dbfs": round(r.level_dbfs, 1),
        }


# ----------------------------------------------------------------------------- many files, many cores
_WORKER: dict[str, Any] = {}


def _init_worker(config: Config, model: Model, per_window: bool) -> None:
    _WORKER.update(config=config, model=model, per_window=per_window)


def _classify_in_worker(path: str) -> tuple[list[dict[str, Any]], str | None, int]:
    from .errors import SerStreamError

    try:
        objs = list(classify_file(path, config=_WORKER["config"], model=_WORKER["model"], per_window=_WORKER["per_window"]))
        return objs, None, 0
    except SerStreamError as exc:
        return [], str(exc), exc.exit_code


def classify_many(
    paths: list[str], *, config: Config, model: Model, per_window: bool, jobs: int
) -> Iterator[tuple[list[dict[str, Any]], str | None, int]]:
    """Classify files in order on ``jobs`` processes: yields (objects, error message, exit code) per file."""
    if jobs <= 1 or len(paths) < 2:
        _init_worker(config, model, per_window)
        yield from map(_classify_in_worker, paths)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(config, model, per_window)) as pool:
        yield from pool.map(_classify_in_worker, paths, chunksize=max(1, min(16, len(paths) // (4 * jobs))))
