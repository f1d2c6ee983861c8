"""Labelled corpora: which clips, with which emotion and speaker.

Two layouts: RAVDESS file names (``MM-VV-EE-II-SS-RR-AA``), or any folder with a
``labels.csv`` (``path,emotion,speaker``; RAVDESS's emotion words; other columns
ignored), as ``../shared/data/emodb``.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import EX_DATAERR, InputMissingError, SerStreamError
from ..model import LABELS

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: int  # index into LABELS
    actor: int | str  # the speaker: RAVDESS's actor number, or labels.csv's speaker
    statement: int = 0  # RAVDESS only (0: unknown)
    intensity: int = 0  # RAVDESS: 1 normal, 2 strong (0: unknown)
    corpus: str = ""  # the corpus folder's name


LABELS_CSV = "labels.csv"


class LabelsError(SerStreamError):
    """A labels.csv that cannot be used; the message names the file and line (exit 65)."""

    exit_code = EX_DATAERR


def scan_corpus(data_dir: Path) -> list[Clip]:
    """The clips of ``data_dir``: from its ``labels.csv`` when it has one, else RAVDESS names."""
    clips = scan_labels_csv(data_dir / LABELS_CSV) if (data_dir / LABELS_CSV).is_file() else scan_ravdess(data_dir)
    return [replace(c, corpus=corpus_name(data_dir)) for c in clips]


def corpus_name(data_dir: Path) -> str:
    """A corpus's name: its folder's (``../shared/data/nemo`` -> ``nemo``)."""
    return Path(data_dir).resolve().name


def scan_corpora(data_dirs: list[Path]) -> list[Clip]:
    """The clips of several corpora, in order. With more than one, speakers are named
    ``corpus/speaker`` so that two corpora's speaker "03" stay two voices; raises InputMissingError
    when two folders have the same name (their clips could not be told apart in the reports)."""
    data_dirs = [Path(d) for d in data_dirs]
    names = [corpus_name(d) for d in data_dirs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputMissingError(f"--data: two corpus folders named {', '.join(dupes)}; give each corpus once")
    if len(data_dirs) == 1:
        return scan_corpus(data_dirs[0])
    return [replace(c, actor=f"{c.corpus}/{c.actor}") for d in data_dirs for c in scan_corpus(d)]


POOLED_SPEAKER = "unknown"  # a labels.csv speaker id that names a pool of many people (emospeech)


def is_pooled(actor: int | str) -> bool:
    """Whether a speaker id names a pool of many people (``unknown``, also as ``corpus/unknown``):
    never one voice, one household or one speaker's statistics."""
    return str(actor).rsplit("/", 1)[-1] == POOLED_SPEAKER


def corpora_of(clips: list[Clip]) -> list[str]:
    """The corpora of ``clips`` in first-seen order."""
    return list(dict.fromkeys(c.corpus for c in clips))


def scan_labels_csv(path: Path) -> list[Clip]:
    """Clips listed in a ``labels.csv`` (paths relative to its folder), in file order.

    Raises LabelsError naming the file and line for a missing column, an empty speaker, or an
    emotion outside the eight; a listed file that does not exist is skipped with a warning.
    """
    folder = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    missing = {"path", "emotion", "speaker"} - set(reader.fieldnames or ())
    if missing:
        raise LabelsError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))} (need path,emotion,speaker)")
    clips, absent = [], []
    for row in reader:
        line = reader.line_num
        emotion = (row["emotion"] or "").strip().lower()
        speaker = (row["speaker"] or "").strip()
        rel = (row["path"] or "").strip()
        if emotion not in LABELS:
            raise LabelsError(f"{path}: line {line}: emotion {row['emotion']!r} is not one of {', '.join(LABELS)}")
        if not speaker or not rel:
            raise LabelsError(f"{path}: line {line}: empty path or speaker")
        audio = folder / rel
        if not audio.is_file():
            absent.append((line, audio))
            continue
        clips.append(Clip(audio, LABELS.index(emotion), speaker))
    for line, audio in absent[:20]:
        log.warning("%s: line %d: %s does not exist; skipped", path, line, audio)
    if not clips:
        raise InputMissingError(f"{path}: lists no existing audio file")
    log.info("%s: %d clips from %d speakers (%d listed files missing)", path, len(clips), len({c.actor for c in clips}),
             len(absent))
    return clips


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
