"""Labelled corpora: which clips, with which emotion and speaker."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputMissingError
from ..model import LABELS

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: int  # index into LABELS
    actor: int
    statement: int
    intensity: int


def scan_ravdess(data_dir: Path) -> list[Clip]:
    """RAVDESS-named audio files under ``data_dir``; others are skipped and counted.

    Raises InputMissingError when the folder is missing or holds no RAVDESS-named file.
    """
    if not data_dir.is_dir():
        raise InputMissingError(f"{data_dir}: no such data folder")
    clips, skipped = [], []
    for path in sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        m = RAVDESS_NAME.match(path.stem)
        if not m:
            skipped.append((path, "name is not MM-VV-EE-II-SS-RR-AA"))
            continue
        modality, channel, emotion, intensity, statement, _rep, actor = (int(g) for g in m.groups())
        if channel != 1:
            skipped.append((path, f"vocal channel {channel:02d} is not speech (01)"))
            continue
        if not 1 <= emotion <= len(LABELS):
            skipped.append((path, f"emotion code {emotion:02d} is outside 01-08"))
            continue
        clips.append(Clip(path, emotion - 1, actor, statement, intensity))
    for path, why in skipped[:20]:
        log.warning("skipping %s: %s", path, why)
    if len(skipped) > 20:
        log.warning("... and %d more files skipped", len(skipped) - 20)
    if not clips:
        raise InputMissingError(
            f"{data_dir}: no RAVDESS-named audio files (MM-VV-EE-II-SS-RR-AA.wav/.flac, e.g. 03-01-05-01-02-01-12.flac)"
        )
    log.info("%s: %d clips from %d actors (%d files skipped)", data_dir, len(clips), len({c.actor for c in clips}), len(skipped))
    return clips
