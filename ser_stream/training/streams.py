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

from ..augment import Room
from ..config import Config
from ..features import FeatureDefinition
from ..model import LABELS
from .corpora import Clip, is_pooled
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


def stream_audio(name: str, paths: list[str], *, gap: Gaps, sample_rate_hz: int, seed: int,
                 rooms: list[Room | None] | None = None,
                 acoustics: str = "dry") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The audio of stream ``name``: the clips ``paths`` in order, each followed by ``gap`` seconds of
    near-silence (one value, or one per clip; seeded by name and seed), each clip heard through its
    voice's room (``rooms``, one per clip, None: dry) and the whole stream through the room's noise
    (:func:`ser_stream.augment.room_noise` of ``acoustics``); returns (samples, clip starts (s),
    clip ends (s))."""
    from ..augment import apply_room, room_noise

    sr = sample_rate_hz
    rng = np.random.default_rng(_seed(name, seed))
    gaps = [gap] * len(paths) if isinstance(gap, (int, float)) else list(gap)
    rooms = rooms or [None] * len(paths)
    parts, starts, ends, pos = [], [], [], 0
    for path, g, room in zip(paths, gaps, rooms):
        gap_n = int(round(g * sr))
        y = clip_audio(path, sample_rate_hz=sr)
        if room is not None:
            y = apply_room(y, room, sr=sr, rng=rng)
        parts.append(y)
        starts.append(pos / sr)
        pos += y.size
        ends.append(pos / sr)
        parts.append((rng.standard_normal(gap_n) * SILENCE_RMS).astype(np.float32))
        pos += gap_n
    return room_noise(np.concatenate(parts), acoustics=acoustics, rng=rng), np.array(starts), np.array(ends)


def _analyse(name: str, paths: list[str], order: list[int], gap: Gaps, fdef_dict: dict[str, Any],
             config_dict: dict[str, Any], seed: int, plan: "HomePlan | None" = None) -> dict[str, np.ndarray]:
    from ..pipeline import make_analyzer

    fdef = FeatureDefinition.from_dict(fdef_dict)
    config = Config(**config_dict)
    sr = fdef.sample_rate_hz
    audio, starts_a, ends_a = stream_audio(name, [paths[i] for i in order], gap=gap, sample_rate_hz=sr, seed=seed,
                                           rooms=None if plan is None else list(plan.rooms),
                                           acoustics="dry" if plan is None else plan.acoustics)
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
                    fdef: FeatureDefinition, config: Config, jobs: int, seed: int,
                    plans: dict[str, "HomePlan"] | None = None) -> list[Stream]:
    """Build and analyse one stream per entry of ``orders`` (name -> clip indices), in parallel; ``gap``
    for every stream, or per stream name; a stream named in ``plans`` is heard through its plan's rooms."""
    from joblib import Parallel, delayed

    paths = [str(c.path) for c in clips]
    fd, cd = fdef.to_dict(), config.model_dump()
    names = list(orders)
    plans = plans or {}
    out = Parallel(n_jobs=jobs)(delayed(_analyse)(n, paths, orders[n], gap[n] if isinstance(gap, dict) else gap, fd, cd,
                                                  seed, plans.get(n)) for n in _progress(names))
    return [Stream(name=n, **o) for n, o in zip(names, out)]


CALM_PASSES = 3  # a home's calm talk: its members' calm clips interleaved, this many passes; the first is not counted
MAX_CALM_CLIPS = 24  # of one member in one pass
HOUSEHOLD_SIZES = (1, 3, 6)


def disjoint_groups(items: list[str], k: int, *, rng: np.random.Generator) -> list[list[str]]:
    """``items`` in a random order (``rng``), cut into as many groups of ``k`` as they fill."""
    order = [items[j] for j in rng.permutation(len(items))]
    return [order[i:i + k] for i in range(0, len(order) - k + 1, k)]


def calm_label(clips: list[Clip]) -> str:
    """What calm talk is in a corpus: its neutral clips, or its calm ones when it has no neutral."""
    return "neutral" if any(LABELS[c.label] == "neutral" for c in clips) else "calm"


@dataclass(frozen=True)
class HomePlan:
    """One household stream: ``members`` (speakers) talking calmly (``order[:quarrel_from]``, counted
    from ``count_from``), then ``quarreler``'s angry clips; every clip heard through its speaker's
    room (``rooms``, None: dry) and the room's noise (``acoustics``)."""

    name: str
    members: tuple[str, ...]
    quarreler: str
    order: tuple[int, ...]
    gaps: tuple[float, ...]
    rooms: tuple[Room | None, ...]
    acoustics: str
    count_from: int
    quarrel_from: int


def home_plans(clips: list[Clip], *, sizes: tuple[int, ...] = HOUSEHOLD_SIZES, acoustics: str = "dry",
               seed: int) -> list[HomePlan]:
    """Households of K speakers for each K of ``sizes`` (seeded, disjoint, among speakers with at least
    two calm-talk and two angry clips; pooled ids never): CALM_PASSES passes over their calm clips
    interleaved (NEUTRAL_GAP_SECONDS apart), then one member's angry clips (QUARREL_GAP_SECONDS apart).
    The same households and clip orders for every ``acoustics``; each voice gets a room of its own."""
    from ..augment import draw_voice_room

    calm = calm_label(clips)
    by: dict[str, dict[str, list[int]]] = {}
    for i, c in enumerate(clips):
        if not is_pooled(c.actor) and LABELS[c.label] in (calm, "angry"):
            by.setdefault(str(c.actor), {calm: [], "angry": []})[LABELS[c.label]].append(i)
    eligible = sorted(a for a, p in by.items() if len(p[calm]) >= 2 and len(p["angry"]) >= 2)
    plans = []
    for k in sizes:
        rng = np.random.default_rng(_seed(f"homes:{k}", seed))
        for h, group in enumerate(disjoint_groups(eligible, k, rng=rng)):
            members = tuple(group)
            quarreler = members[int(rng.integers(k))]
            order: list[int] = []
            count_from = 0
            for p in range(CALM_PASSES):
                if p == 1:
                    count_from = len(order)
                part = [i for m in members for i in list(rng.permutation(by[m][calm]))[:MAX_CALM_CLIPS]]
                order += [part[j] for j in rng.permutation(len(part))]
            quarrel_from = len(order)
            order += [int(i) for i in rng.permutation(by[quarreler]["angry"])]
            gaps = [NEUTRAL_GAP_SECONDS] * quarrel_from + [QUARREL_GAP_SECONDS] * (len(order) - quarrel_from)
            room_rng = np.random.default_rng(_seed(f"rooms:{k}:{h}:{acoustics}", seed))
            room_of = {m: None if acoustics == "dry" else draw_voice_room(room_rng, far=acoustics == "far")
                       for m in members}
            plans.append(HomePlan(f"home:{acoustics}:{k}:{h}", members, quarreler, tuple(int(i) for i in order),
                                  tuple(gaps), tuple(room_of[str(clips[i].actor)] for i in order), acoustics,
                                  count_from, quarrel_from))
    return plans
