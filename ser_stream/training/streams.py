"""Household streams: a corpus's clips joined into the audio a daemon would hear, analysed once.

For the household protocol each speaker's clips are joined in a seeded random
order with GAP_SECONDS of near-silence between them (longer than a window, so
no window holds two clips), and all of a corpus's neutral clips are joined in
file order with NEUTRAL_GAP_SECONDS pauses (one household chatting). The
audio goes through the daemon's own :class:`~ser_stream.pipeline.Analyzer`
(window, hop and speech gate of the configuration) without a model: the window
vectors do not depend on the model, so one pass serves every head and fold;
:mod:`ser_stream.training.household` then scores them in stream order with the
daemon's :class:`~ser_stream.pipeline.WindowScorer`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config
from ..features import FeatureDefinition
from ..model import LABELS
from .corpora import Clip
from .extract import _progress, clip_audio

GAP_SECONDS = 3.2  # between one speaker's clips
NEUTRAL_GAP_SECONDS = 0.6  # between the neutral clips of the false-trigger household
MIN_OVERLAP_SECONDS = 0.5  # a speech window belongs to the clip it overlaps by at least this much
SILENCE_RMS = 1e-4  # near-silence between clips: white noise at -80 dBFS


@dataclass
class Stream:
    """One analysed stream. ``clips``: indices into the corpus's clip list, in stream order, with their
    ``starts``/``ends`` (s). Per window (n,): ``t`` (s, window end), ``speech``, ``vectors`` (n, D) and
    ``clip_of`` (the clip index a speech window belongs to, -1 for none)."""

    name: str
    clips: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    t: np.ndarray
    speech: np.ndarray
    vectors: np.ndarray
    clip_of: np.ndarray
    hop_seconds: float

    @property
    def seconds(self) -> float:
        return float(self.t[-1]) if self.t.size else 0.0


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}:{seed}".encode()).digest()[:8], "little")


Gaps = float | list[float]  # seconds after every clip, or after each clip


def stream_audio(name: str, paths: list[str], *, gap: Gaps, sample_rate_hz: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The audio of stream ``name``: the clips ``paths`` in order, each followed by ``gap`` seconds of
    near-silence (one value, or one per clip; seeded by name and seed); returns (samples, clip
    starts (s), clip ends (s))."""
    sr = sample_rate_hz
    rng = np.random.default_rng(_seed(name, seed))
    gaps = [gap] * len(paths) if isinstance(gap, (int, float)) else list(gap)
    parts, starts, ends, pos = [], [], [], 0
    for path, g in zip(paths, gaps):
        gap_n = int(round(g * sr))
        y = clip_audio(path, sample_rate_hz=sr)
        parts.append(y)
        starts.append(pos / sr)
        pos += y.size
        ends.append(pos / sr)
        parts.append((rng.standard_normal(gap_n) * SILENCE_RMS).astype(np.float32))
        pos += gap_n
    return np.concatenate(parts), np.array(starts), np.array(ends)


def _analyse(name: str, paths: list[str], order: list[int], gap: Gaps, fdef_dict: dict[str, Any],
             config_dict: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    from ..pipeline import make_analyzer

    fdef = FeatureDefinition.from_dict(fdef_dict)
    config = Config(**config_dict)
    sr = fdef.sample_rate_hz
    audio, starts_a, ends_a = stream_audio(name, [paths[i] for i in order], gap=gap, sample_rate_hz=sr, seed=seed)
    analyzer = make_analyzer(config, None, keep_vectors=True, fdef=fdef)
    results = analyzer.push(audio)
    t = np.array([r.t for r in results])
    speech = np.array([r.speech for r in results], dtype=bool)
    vectors = np.stack([r.vector for r in results]).astype(np.float64)
    window = analyzer.window_samples / sr
    overlap = np.minimum(t[:, None], ends_a[None, :]) - np.maximum(t[:, None] - window, starts_a[None, :])
    best = np.argmax(overlap, axis=1)
    ok = speech & (overlap[np.arange(t.size), best] >= MIN_OVERLAP_SECONDS - 1e-9)
    clip_of = np.where(ok, np.asarray(order)[best], -1)
    return {"clips": np.asarray(order), "starts": starts_a, "ends": ends_a, "t": t, "speech": speech,
            "vectors": vectors, "clip_of": clip_of, "hop_seconds": analyzer.hop_seconds}


QUARREL_GAP_SECONDS = 0.3  # between the angry clips of a quarrel
QUARREL_SETTLE_SECONDS = 6.0  # the quarrel measure counts hops from this far into the quarrel


def quarrel_order(clips: list[Clip], speaker: Any, *, seed: int) -> tuple[list[int], Gaps] | None:
    """A day of ``speaker``'s talk, then a quarrel: their other clips in a seeded random order
    (GAP_SECONDS apart), then all their angry clips joined with QUARREL_GAP_SECONDS pauses; returns
    (clip indices, gaps), or None for a speaker with no angry clip."""
    order = speaker_order(clips, speaker, seed=seed)
    angry = [i for i in order if LABELS[clips[i].label] == "angry"]
    if not angry:
        return None
    other = [i for i in order if LABELS[clips[i].label] != "angry"]
    return other + angry, [GAP_SECONDS] * len(other) + [QUARREL_GAP_SECONDS] * len(angry)


def quarrel_span(stream: Stream, clips: list[Clip]) -> tuple[float, float]:
    """(start, end) in seconds of the quarrel at the end of a :func:`quarrel_order` stream."""
    angry = [k for k, i in enumerate(stream.clips) if LABELS[clips[int(i)].label] == "angry"]
    return float(stream.starts[angry[0]]), float(stream.ends[angry[-1]])


def speaker_order(clips: list[Clip], speaker: Any, *, seed: int) -> list[int]:
    """Indices of ``speaker``'s clips in a seeded random order (the same for every head and fold)."""
    idx = [i for i, c in enumerate(clips) if c.actor == speaker]
    rng = np.random.default_rng(_seed(f"order:{speaker}", seed))
    return [idx[k] for k in rng.permutation(len(idx))]


def analyse_streams(clips: list[Clip], orders: dict[str, list[int]], *, gap: Gaps | dict[str, Gaps],
                    fdef: FeatureDefinition, config: Config, jobs: int, seed: int) -> list[Stream]:
    """Build and analyse one stream per entry of ``orders`` (name -> clip indices), in parallel; ``gap``
    for every stream, or per stream name."""
    from joblib import Parallel, delayed

    paths = [str(c.path) for c in clips]
    fd, cd = fdef.to_dict(), config.model_dump()
    names = list(orders)
    out = Parallel(n_jobs=jobs)(delayed(_analyse)(n, paths, orders[n], gap[n] if isinstance(gap, dict) else gap, fd, cd, seed) for n in _progress(names))
    return [Stream(name=n, **o) for n, o in zip(names, out)]
