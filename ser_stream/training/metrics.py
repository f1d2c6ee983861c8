"""Scores of predictions: accuracy, UAR, confusion, binary UAR, calibration error. Pure numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

ECE_BINS = 10


def summarize_predictions(y_true: np.ndarray, y_pred: np.ndarray, *, labels: tuple[str, ...], protocol: str) -> dict[str, Any]:
    """Accuracy, UAR (over the labels present), per-class recall and confusion; a prediction of -1
    (no answer) counts as an error and is left out of the confusion matrix."""
    k = len(labels)
    conf = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred):
        if p >= 0:
            conf[t, p] += 1
    support = np.bincount(np.asarray(y_true, dtype=int), minlength=k)
    recall = np.divide(np.diag(conf), support, out=np.zeros(k), where=support > 0)
    present = support > 0
    return {
        "protocol": protocol,
        "n": int(len(y_true)),
        "accuracy": round(float(np.mean(y_true == y_pred)), 4),
        "uar": round(float(recall[present].mean()), 4),
        "per_class": {lab: round(float(r), 4) for lab, r, ok in zip(labels, recall, present) if ok},
        "labels": list(labels),
        "confusion": conf.tolist(),
    }


def binary_uar(truth: np.ndarray, score: np.ndarray) -> float | None:
    """UAR of ``score > 0`` against 0/1 ``truth`` (both classes needed)."""
    if truth.size == 0 or len(set(truth.tolist())) < 2:
        return None
    pred = score > 0
    return round(float(np.mean([np.mean(pred[truth == c] == bool(c)) for c in (0, 1)])), 4)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """ECE: the share-weighted mean |accuracy - mean confidence| over ``bins`` equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            err += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(err)


def reliability(confidence: np.ndarray, correct: np.ndarray, *, bins: int = ECE_BINS) -> list[list[float]]:
    """Per confidence bin with windows: [bin start, windows, mean confidence, accuracy] (the reliability diagram)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [[round(float(edges[b]), 2), int((which == b).sum()), round(float(confidence[which == b].mean()), 4),
             round(float(correct[which == b].mean()), 4)] for b in range(bins) if (which == b).any()]
