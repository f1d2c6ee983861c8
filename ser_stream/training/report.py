"""Reports: the summary JSON and a confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_report(summary: dict[str, Any], folder: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    name = summary["protocol"] + (f"-{summary['degrade']}" if summary.get("degrade") else "")
    (folder / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    conf = np.array(summary["confusion"], dtype=float)
    labels = summary["labels"]
    norm = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(conf[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(f"{name}: accuracy {summary['accuracy']:.3f}, UAR {summary['uar']:.3f} (n={summary['n']})")
    fig.colorbar(im, ax=ax, label="recall")
    fig.tight_layout()
    fig.savefig(folder / f"{name}-confusion.png", dpi=110)
    plt.close(fig)
    if summary.get("reliability"):
        _reliability_png(summary, folder / f"{name}-reliability.png", plt)


def _reliability_png(summary: dict[str, Any], path: Path, plt: Any) -> None:
    """Accuracy against mean confidence per bin: on the diagonal, a confidence of 0.8 is right 80 % of the time."""
    rows = np.array(summary["reliability"], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot(rows[:, 2], rows[:, 3], marker="o", label="published confidence")
    for lo, n, c, a in rows:
        ax.annotate(str(int(n)), (c, a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the window's label")
    ax.set_ylabel("share of windows whose label is right")
    ax.set_title(f"{summary['protocol']}: ECE {summary.get('ece')} ({summary.get('windows')} windows)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
