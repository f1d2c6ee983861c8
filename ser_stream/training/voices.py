"""The voice embedding: fitted on the training corpora's speakers, and measured on held-out ones.

:func:`fit_voice_embedding` fits a linear discriminant analysis of the window vectors with the
speaker as the class, over every emotion each speaker acts: the directions it keeps are those along
which speakers differ more than one speaker's anger, sadness and calm differ (a speaker classifier
across emotions, linear). The pool of many people under one id (emospeech's ``unknown``) is never a
class.

:func:`voice_assignment` is the measure "anger must not split a voice": households of K speakers of
a corpus the embedding never saw, their calm clips interleaved (the voices are learnt), then their
emotional clips interleaved, every speech window given to a voice by the daemon's own
:class:`~ser_stream.voices.Household`. It reports the share of a speaker's emotional windows
given to the voice learnt from their calm speech (``identified``), and the share of windows given to
a voice whose windows are mostly another speaker's (``merged``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..adaptation import Prior
from ..features import FeatureDefinition
from ..model import LABELS
from ..voices import DEFAULT_MAX_VOICES, Household, VoiceEmbedding
from .corpora import Clip, is_pooled
from .streams import disjoint_groups

EMBEDDING_DIMS = 48  # at most; fewer with fewer training speakers (speakers - 1)
VOICE_THRESHOLD = 0.5  # cosine similarity at which a window joins a voice (chosen: models/README.md)
CALM_LABELS = ("neutral", "calm")
VOICE_CHECK_SIZES = (2, 4, 6)  # households of the measure
def voice_columns(fdef: FeatureDefinition) -> np.ndarray:
    """The window vector's entries the embedding reads: the mean and standard deviation of every
    log-mel band and MFCC (the spectral envelope: the vocal tract and the microphone). Pitch, its
    dynamics and the trends move with emotion more than with the speaker (measured: models/README.md)."""
    cols = fdef.frame
    stat = list(fdef.stat_columns)
    wanted = [p for p, c in enumerate(stat) if cols.logmel.start <= c < cols.mfcc.stop]
    return np.array(wanted + [len(stat) + p for p in wanted])


def fit_voice_embedding(clips: list[Clip], vectors: list[np.ndarray], indices: list[int] | None = None, *,
                        fdef: FeatureDefinition, threshold: float = VOICE_THRESHOLD,
                        dims: int = EMBEDDING_DIMS) -> VoiceEmbedding | None:
    """The LDA embedding of the window ``vectors`` (their :func:`voice_columns`) of ``clips[indices]``
    (default: all), speakers as classes (pooled ids left out); None with fewer than 3 speakers."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    indices = list(range(len(clips))) if indices is None else indices
    keep = [i for i in indices if not is_pooled(clips[i].actor) and vectors[i].size]
    speakers = sorted({str(clips[i].actor) for i in keep})
    if len(speakers) < 3:
        return None
    use = voice_columns(fdef)
    x = np.concatenate([vectors[i][:, use] for i in keep]).astype(np.float64)
    y = np.concatenate([np.full(vectors[i].shape[0], speakers.index(str(clips[i].actor))) for i in keep])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
    lda.fit((x - mean) / scale, y)
    k = min(dims, len(speakers) - 1)
    d = fdef.vector_size
    full_mean, projection = np.zeros(d), np.zeros((d, k))
    full_mean[use], projection[use] = mean, lda.scalings_[:, :k] / scale[:, None]
    return VoiceEmbedding(mean=full_mean, projection=projection, threshold=float(threshold))


def voice_assignment(clips: list[Clip], vectors: list[np.ndarray], embedding: VoiceEmbedding, *, k: int,
                     seed: int = 0, max_voices: int = DEFAULT_MAX_VOICES, min_clips: int = 2) -> dict[str, Any]:
    """Households of ``k`` speakers (seeded, disjoint) among those with at least ``min_clips`` calm and
    ``min_clips`` emotional clips: their calm clips interleaved, then their emotional ones; each clip's
    window ``vectors`` in order. Returns the pooled ``identified`` and ``merged`` shares and the counts."""
    by_speaker: dict[str, dict[str, list[int]]] = {}
    for i, c in enumerate(clips):
        if is_pooled(c.actor) or not vectors[i].size:
            continue
        part = "calm" if LABELS[c.label] in CALM_LABELS else "emotional"
        by_speaker.setdefault(str(c.actor), {"calm": [], "emotional": []})[part].append(i)
    eligible = sorted(s for s, p in by_speaker.items() if len(p["calm"]) >= min_clips and len(p["emotional"]) >= min_clips)
    d = embedding.mean.shape[0]
    prior = Prior(np.zeros(d), np.ones(d), 20.0)  # the statistics are not scored here: only who is who
    identified = emotional = merged = total = 0
    homes = disjoint_groups(eligible, k, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for home in homes:
        household = Household(prior=prior, max_windows=1000, embedding=embedding, max_voices=max_voices)
        assigned: dict[str, list[tuple[str, int]]] = {}  # phase -> (speaker, voice id) per window
        for phase in ("calm", "emotional"):
            order = [i for s in home for i in by_speaker[s][phase]]
            rows = []
            for i in (order[j] for j in rng.permutation(len(order))):
                for v in vectors[i]:
                    rows.append((str(clips[i].actor), household.voice_of(v).number))
            assigned[phase] = rows
        own = {s: Counter(v for sp, v in assigned["calm"] if sp == s).most_common(1)[0][0] for s in home}
        for s, v in assigned["emotional"]:
            emotional += 1
            identified += v == own[s]
        every = assigned["calm"] + assigned["emotional"]
        for voice in {v for _, v in every}:
            members = Counter(s for s, v in every if v == voice)
            merged += sum(members.values()) - members.most_common(1)[0][1]
        total += len(every)
    return {"k": k, "households": len(homes), "speakers": len(homes) * k,
            "identified": round(identified / emotional, 4) if emotional else None,
            "merged": round(merged / total, 4) if total else None, "windows": total}
