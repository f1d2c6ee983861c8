"""The households of K voices: the calm talk of K speakers of a held-out corpus, interleaved, then one
member's quarrel, heard dry, near and far (:func:`~ser_stream.training.streams.home_plans`), and
what the daemon's mood made of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..augment import HOME_ACOUSTICS
from ..config import Config
from ..model import Model
from ..mood import AGITATED
from ..moodstep import MoodStep
from ..voices import DEFAULT_MAX_VOICES
from .corpora import Clip
from .scoring import emotional_moods, score_stream, settled_quarrel_hops, share
from .streams import HOUSEHOLD_SIZES, HomePlan, Stream, analyse_streams, home_plans

def home_measures(model: Model, config: Config, homes: list[tuple[HomePlan, Stream]]) -> list[dict[str, Any]]:
    """The households of K voices (:func:`~ser_stream.training.streams.home_plans`), one row per
    acoustics and K: the share of calm-talk hops (from the second pass on) in an emotional mood, the
    changes into one per hour of calm talk, the share of the quarrel's hops from
    QUARREL_SETTLE_SECONDS in that are agitated (mean over homes, and the lowest home), and the
    voices the daemon knows at the end (mean over homes: more than K when anger made a voice of its own)."""
    groups: dict[tuple[str, int], list[tuple[HomePlan, Stream]]] = {}
    for plan, stream in homes:
        groups.setdefault((plan.acoustics, len(plan.members)), []).append((plan, stream))
    rows = []
    for (acoustics, k), members in groups.items():
        calm_hops = emotional = changes = 0
        calm_seconds = 0.0
        quarrel, voices = [], []
        for plan, stream in members:
            step = MoodStep(model, config)
            scored = score_stream(model, config, stream, step=step)
            t, moods = stream.t, scored.moods
            start, end = float(stream.starts[plan.count_from]), float(stream.starts[plan.quarrel_from])
            calm = [moods[j] for j in np.flatnonzero((t > start) & (t <= end + 1e-9))]
            e, c = emotional_moods(calm)
            emotional += e
            changes += c
            calm_hops += len(calm)
            calm_seconds += end - start
            hops = settled_quarrel_hops(t, end, float(stream.ends[-1]))
            if hops.size:
                quarrel.append(sum(moods[j] in AGITATED for j in hops) / hops.size)
            if step.adapter is not None:
                voices.append(step.adapter.voice_count)
        rows.append({"acoustics": acoustics, "k": k, "homes": len(members),
                     "calm_emotional_share": round(emotional / max(calm_hops, 1), 4),
                     "calm_changes_per_hour": round(changes / max(calm_seconds / 3600, 1e-9), 2),
                     "quarrel_agitated_share": share(quarrel),
                     "quarrel_lowest_share": round(float(min(quarrel)), 4) if quarrel else None,
                     "voices_at_end": share(voices)})
    return sorted(rows, key=lambda r: (HOME_ACOUSTICS.index(r["acoustics"]), r["k"]))


def home_streams(clips: list[Clip], *, fdef: Any, config: Config, jobs: int, seed: int,
                 sizes: tuple[int, ...] = HOUSEHOLD_SIZES,
                 acoustics: tuple[str, ...] = HOME_ACOUSTICS) -> list[tuple[HomePlan, Stream]]:
    """The households of ``sizes`` voices of ``clips`` heard through each of ``acoustics``, analysed."""
    plans = [p for a in acoustics for p in home_plans(clips, sizes=sizes, acoustics=a, seed=seed)]
    by_name = {p.name: p for p in plans}
    streams = analyse_streams(clips, {p.name: list(p.order) for p in plans}, gap={p.name: list(p.gaps) for p in plans},
                              fdef=fdef, config=config, jobs=jobs, seed=seed, plans=by_name)
    return [(by_name[s.name], s) for s in streams]


def home_rows(model: Model, config: Config, homes: list[tuple[HomePlan, Stream]]) -> list[dict[str, Any]]:
    """:func:`home_measures` as configured and, for a model with a voice embedding (and adaptation on),
    the same homes with the voices switched the other way beside each row: ``single_baseline``
    (``adaptation.max_voices`` 0) when they are on, ``voices`` (DEFAULT_MAX_VOICES) when they are off."""
    rows = home_measures(model, config, homes)
    if not config.adaptation.enabled or model.voices is None:
        return rows
    voices_on = config.adaptation.max_voices > 0
    name = "single_baseline" if voices_on else "voices"
    other = config.model_copy(update={"adaptation": config.adaptation.model_copy(
        update={"max_voices": 0 if voices_on else DEFAULT_MAX_VOICES})})
    for row, beside in zip(rows, home_measures(model, other, homes)):
        row[name] = {k: beside[k] for k in ("calm_emotional_share", "calm_changes_per_hour", "quarrel_agitated_share",
                                            "quarrel_lowest_share", "voices_at_end")}
    return rows
