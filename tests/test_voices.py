"""Issue 29: the voices of a home, each judged against its own calm (ser_stream/voices.py)."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ser_stream.adaptation import Prior, RunningStats
from ser_stream.model import load_model
from ser_stream.voices import TENTATIVE_WINDOWS, Household, VoiceEmbedding, embedding_from_bundle

D = 8
PRIOR = Prior(mean=np.zeros(D), var=np.ones(D), windows=20.0)
# the first two dimensions say who speaks; the embedding reads only them
EMBEDDING = VoiceEmbedding(mean=np.zeros(D), projection=np.eye(D)[:, :2], threshold=0.8)
VOICE_DIRECTIONS = {"a": (1.0, 0.0), "b": (0.0, 1.0), "c": (-1.0, 0.0), "d": (0.0, -1.0)}


def window(who: str, rng: np.random.Generator, *, level: float = 0.0) -> np.ndarray:
    """A speech window of voice ``who``: its direction in the two speaker dimensions, ``level`` in the others."""
    v = rng.normal(0.0, 0.05, D)
    v[:2] += VOICE_DIRECTIONS[who]
    v[2:] += level
    return v


def household(**kw) -> Household:
    return Household(prior=PRIOR, max_windows=1000, embedding=EMBEDDING, **kw)


def test_windows_of_two_voices_go_to_two_voices_and_a_turn_stays_with_its_voice():
    rng = np.random.default_rng(0)
    h = household()
    seen = {"a": set(), "b": set()}
    for turn in range(20):
        who = "ab"[turn % 2]
        for _ in range(3):
            seen[who].add(h.voice_of(window(who, rng)).number)
    assert seen == {"a": {1}, "b": {2}} and h.voice_count == 2
    # without an embedding (an older bundle) or with max_voices 0: one baseline, the household's
    for one in (Household(prior=PRIOR, max_windows=1000), household(max_voices=0)):
        assert one.voice_of(window("a", rng)) is one.stats and one.voice_count == 0


def test_beyond_max_voices_the_least_recently_heard_voice_is_forgotten():
    rng = np.random.default_rng(1)
    h = household(max_voices=3)
    for who in "abc":
        for _ in range(TENTATIVE_WINDOWS):
            h.voice_of(window(who, rng))
    h.voice_of(window("a", rng))  # a spoke last, b longest ago
    h.voice_of(window("d", rng))  # a fourth voice: b is forgotten
    numbers = {v.number for v in h.voices}
    assert numbers == {1, 3, 4} and len(h.voices) == 3
    assert h.voice_count == 2  # d is tentative until it said more
    # a tentative voice goes before any established one
    h.voice_of(window("b", rng))
    assert {v.number for v in h.voices} == {1, 3, 5}


def test_a_new_voice_starts_from_the_households_statistics():
    """Never from the population prior alone: its centre is the household's, its arousal baseline the household's median."""
    rng = np.random.default_rng(2)
    h = household()
    for _ in range(200):
        voice = h.voice_of(window("a", rng, level=3.0))
        voice.relative_arousal(float(np.tanh(1.5 / 2)))  # the household usually sits at logit 1.5
        voice.offer(window("a", rng, level=3.0), arousal=0.0)
    new = h.voice_of(window("b", rng, level=3.0))
    assert new.number == 2 and new.n == 0
    np.testing.assert_allclose(new.mean, h.stats.mean)
    assert h.stats.mean[2:].mean() > 2.0  # the household's centre has moved far from the population's 0
    assert new.relative_arousal(float(np.tanh(1.5 / 2))) == pytest.approx(0.0, abs=0.05)


def test_a_lively_voice_is_judged_against_its_own_calm_and_its_anger_is_still_heard():
    """The issue's case: one voice always sounds livelier (logit +2) than the other (logit 0). With one
    household baseline it sounds agitated whenever it talks; against its own calm it does not, and
    its anger (logit +5) is still heard."""
    rng = np.random.default_rng(3)

    def talk(h: Household | RunningStats, who: str, z: float) -> float:
        w = window(who, rng)
        voice = h.voice_of(w)
        rel = voice.relative_arousal(float(np.tanh(z / 2)))
        voice.offer(w, arousal=rel)
        return rel

    results = {}
    for name, h in (("voices", household()), ("one baseline", household(max_voices=0))):
        for turn in range(100):  # a calm day: turns of 3 windows
            who = "ab"[turn % 2]
            for _ in range(3):
                talk(h, who, (2.0 if who == "b" else 0.0) + rng.normal(0, 0.3))
        lively = [talk(h, "b", 2.0 + rng.normal(0, 0.3)) for _ in range(10)]
        angry = [talk(h, "a", 5.0) for _ in range(5)]
        results[name] = (float(np.mean(lively)), float(np.mean(angry)))
    assert results["voices"][0] == pytest.approx(0.0, abs=0.15)  # the lively voice at its own calm
    assert results["one baseline"][0] > 0.25  # against the household's median (between the two) it sounds agitated
    assert results["voices"][1] > 0.9  # anger in the calm voice is heard


def test_voices_are_kept_across_restarts_and_an_older_file_is_read(tmp_path: Path, caplog):
    from ser_stream.service import AdaptationStore

    rng = np.random.default_rng(4)
    h = household()
    for turn in range(30):
        who = "abc"[turn % 3]
        for _ in range(4):
            w = window(who, rng, level=1.0)
            voice = h.voice_of(w)
            voice.offer(w, arousal=voice.relative_arousal(float(rng.uniform(-0.5, 0.5))))
    store = AdaptationStore(tmp_path, key="k", source="mic")
    store.save(h)
    path = tmp_path / "adaptation.npz"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the voices of a home: this user alone
    with np.load(path, allow_pickle=False) as data:
        assert int(data["state_version"]) == 2 and data["voice_direction"].shape == (3, 2)
    caplog.set_level(logging.INFO)
    again = household()
    store.load(again)
    assert "and 3 voices restored from" in caplog.text
    assert [v.number for v in again.voices] == [1, 2, 3]
    for old, new in zip(h.voices, again.voices):
        np.testing.assert_allclose(new.mean, old.mean)
        assert new.arousal.median(anchor=0.3) == pytest.approx(old.arousal.median(anchor=0.3))
        assert new.similarity(EMBEDDING.embed(window("a", rng))) == pytest.approx(
            old.similarity(EMBEDDING.embed(window("a", rng))), abs=0.2)
    assert again.voice_of(window("b", rng)).number == h.voice_of(window("b", rng)).number  # the same voice
    # a file of today's release (no voices): the household's statistics are read, the voices learnt anew
    v1 = household()
    v1.load_arrays(h.stats.to_arrays())
    assert v1.voices == [] and v1.stats.n == h.stats.n
    # voices of another embedding are set aside, the household's statistics kept
    other = Household(prior=PRIOR, max_windows=1000, embedding=replace(EMBEDDING, projection=np.eye(D)[:, 1:3]))
    assert "another embedding" in other.load_arrays(h.to_arrays()) and other.voices == []
    # damaged arrays are refused (the store logs them and starts from the population)
    with pytest.raises(ValueError, match="non-finite"):
        household().load_arrays({**h.to_arrays(), "voice_s1": np.full((3, D), np.nan)})
    with pytest.raises(ValueError, match="do not fit"):
        household().load_arrays({**h.to_arrays(), "voice_n": np.ones(2)})
    with pytest.raises(ValueError, match="state_version 7"):
        household().load_arrays({**h.to_arrays(), "state_version": np.array(7)})
    # the reset (button, reset-adaptation) forgets the voices
    again.reset()
    assert again.voices == [] and again.stats.n == 0


def test_the_bundle_carries_the_embedding_as_plain_arrays(tmp_path: Path):
    from ser_stream.errors import ModelError

    model = load_model(None)
    d = model.features.vector_size
    emb = VoiceEmbedding(mean=np.zeros(d), projection=np.ones((d, 4)) / d, threshold=0.35)
    path = tmp_path / "m.npz"
    replace(model, voices=emb).save(path)
    back = load_model(path)
    np.testing.assert_array_equal(back.voices.projection, emb.projection)
    assert back.voices.threshold == 0.35
    for bad, message in (({"mean": np.zeros(d), "projection": np.ones((d - 1, 4)), "threshold": 0.3}, "do not fit"),
                         ({"mean": np.zeros(d), "projection": np.ones((d, 4)), "threshold": 1.5}, "threshold"),
                         ({"mean": np.zeros(d), "projection": np.ones((d, 4))}, "voices.threshold")):
        with pytest.raises(ValueError, match=message):
            embedding_from_bundle(bad, n_in=d)
    bundle = replace(model, voices=emb).to_bundle()
    bundle["voices"]["projection"] = np.full((d, 4), np.inf)
    from ser_stream.bundle import write_bundle

    write_bundle(bundle, tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="voices holds non-finite"):
        load_model(tmp_path / "bad.npz")


def test_anger_splits_few_voices_and_two_speakers_are_rarely_merged(data_dir: Path):
    """The measure of the issue on a small seeded subset of real corpora: an embedding fitted on nEMO's
    and EmoDB's speakers (every emotion they act), households of two RAVDESS actors, their calm
    clips then their emotional ones. The bounds are what the recipe reaches on this subset with a
    margin, not the issue's targets (identified >= 0.90, merged <= 0.10; models/README.md has the figures)."""
    from ser_stream.features import build_feature_matrices
    from ser_stream.training.corpora import scan_corpora
    from ser_stream.training.extract import DAEMON_VIEW, extract_dataset
    from ser_stream.training.voices import fit_voice_embedding, voice_assignment

    rng = np.random.default_rng(0)
    clips = scan_corpora([data_dir / "ravdess", data_dir / "nemo", data_dir / "emodb"])

    def pick(corpus: str, speakers: int, per_speaker: int) -> list:
        names = sorted({c.actor for c in clips if c.corpus == corpus}, key=str)[:speakers]
        out = []
        for a in names:
            mine = [c for c in clips if c.actor == a]
            out += [mine[i] for i in sorted(rng.choice(len(mine), size=min(per_speaker, len(mine)), replace=False))]
        return out

    train = pick("nemo", 9, 16) + pick("emodb", 10, 16)
    test = pick("ravdess", 4, 40)
    fdef = build_feature_matrices()
    train, vt = extract_dataset(train, fdef=fdef, jobs=2, views={"v": DAEMON_VIEW})
    test, vs = extract_dataset(test, fdef=fdef, jobs=2, views={"v": DAEMON_VIEW})
    embedding = fit_voice_embedding(train, vt["v"], fdef=fdef)
    assert embedding is not None and embedding.projection.shape == (fdef.vector_size, 18)
    result = voice_assignment(test, vs["v"], embedding, k=2, seed=0)
    assert result["households"] == 2 and result["windows"] > 100
    # measured 0.78 and 0.41 here; one voice for both speakers would give 1.0 and 0.5
    assert result["identified"] >= 0.6, result
    assert result["merged"] <= 0.45, result


def test_arousal_scaled_by_the_households_own_spread_survives_a_range_that_shrinks_with_distance():
    """adaptation.arousal_spread: far from the microphone the head's logits spread over 0.4 of their
    range; scaled by the household's own spread, the same anger is as far above the calm as near it."""
    from ser_stream.adaptation import SPREAD_MIN_WINDOWS, ArousalBaseline
    from ser_stream.config import Config

    rng = np.random.default_rng(5)
    calm = rng.normal(0.0, 1.0, 300)
    answers = {}
    for name, squeeze in (("near", 1.0), ("far", 0.4)):
        for reference in (None, 1.0):
            b = ArousalBaseline(spread_reference=reference)
            for i, z in enumerate(calm):
                if i == SPREAD_MIN_WINDOWS - 2:
                    assert b.spread_scale() == 1.0  # not yet its own spread
                b.add(float(np.tanh(squeeze * z / 2)))
            answers[name, reference] = b.relative(float(np.tanh(squeeze * 3.0 / 2)), scale=b.spread_scale())
    assert answers["far", None] < 0.6 < 0.85 < answers["near", None]  # unscaled, the far quarrel is much lower
    assert answers["far", 1.0] == pytest.approx(answers["near", 1.0], abs=0.05) and answers["far", 1.0] > 0.7
    # a monotone household is amplified at most four times (the floor: 0.25 of the reference)
    flat = ArousalBaseline(spread_reference=1.0)
    for z in rng.normal(0.0, 0.01, 100):
        flat.add(float(np.tanh(z / 2)))
    assert flat.spread_scale() == pytest.approx(4.0)
    # a calm home whose logits spread over 0.13 (a flat calibration: the nEMO fold's homes spread over
    # 0.16-0.29, models/README.md) hears a voice 0.35 logits above its median as agitated (over
    # mood.arousal_on, 0.45); a floor of half the reference (twice at most) gave 0.34. Its spread is
    # its own after half a minute of speech.
    assert SPREAD_MIN_WINDOWS <= 30
    narrow = ArousalBaseline(spread_reference=1.0)
    for i, z in enumerate(rng.normal(0.0, 0.1, 40)):
        assert (narrow.spread() is None) == (i < SPREAD_MIN_WINDOWS)
        narrow.add(float(np.tanh(z / 2)))
    loud = float(np.tanh((narrow.median() + 0.35) / 2))
    assert narrow.relative(loud, scale=narrow.spread_scale()) > Config().mood.arousal_on > \
        narrow.relative(loud, scale=min(narrow.spread_scale(), 2.0))


def test_homes_of_k_voices_are_seeded_households_heard_dry_near_and_far(data_dir: Path):
    """evaluate's homes of K voices: disjoint households of speakers with calm and angry clips, calm
    talk for three passes then one member's quarrel; each voice its own room; scored through MoodStep."""
    from ser_stream.config import Config
    from ser_stream.training.corpora import scan_corpora
    from ser_stream.training.homes import home_rows, home_streams
    from ser_stream.training.streams import CALM_PASSES, home_plans

    clips = scan_corpora([data_dir / "emodb"])
    plans = home_plans(clips, sizes=(1, 3), acoustics="far", seed=0)
    assert plans == home_plans(clips, sizes=(1, 3), acoustics="far", seed=0)  # seeded
    threes = [p for p in plans if len(p.members) == 3]
    assert len(threes) == 3 and len({m for p in threes for m in p.members}) == 9  # disjoint
    for p in plans:
        calm, quarrel = p.order[:p.quarrel_from], p.order[p.quarrel_from:]
        assert {clips[i].actor for i in calm} == set(p.members) and all(clips[i].label == 0 for i in calm)
        assert {clips[i].actor for i in quarrel} == {p.quarreler}
        assert all(clips[i].label == 4 for i in quarrel)  # angry
        assert 0 < p.count_from < p.quarrel_from and len(calm) >= CALM_PASSES * len(p.members)
        rooms = {clips[i].actor: r for i, r in zip(p.order, p.rooms)}
        assert len({r.seed for r in rooms.values()}) == len(p.members)  # each voice its own room
        assert all(-20 <= r.gain_db <= -8 and 0.4 <= r.rt60 <= 0.8 for r in rooms.values())
    # a small subset, streamed and scored with the shipped model: the voices switched the other way beside it
    keep = {a for p in threes[:1] for a in p.members}
    subset = [c for c in clips if c.actor in keep]
    homes = home_streams(subset, fdef=load_model(None).features, config=Config(), jobs=2, seed=0, sizes=(3,),
                         acoustics=("dry", "far"))
    assert [p.acoustics for p, _ in homes] == ["dry", "far"]
    rows = home_rows(load_model(None), Config(), homes)
    assert [(r["acoustics"], r["k"], r["homes"]) for r in rows] == [("dry", 3, 1), ("far", 3, 1)]
    for r in rows:
        assert 0.0 <= r["calm_emotional_share"] <= 1.0 and 0.0 <= r["quarrel_agitated_share"] <= 1.0
        assert r["voices"]["voices_at_end"] >= 1  # the voices measured beside the default single baseline
