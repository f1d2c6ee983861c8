"""Per-stream adaptation: the shrunk statistics, their persistence, reset, and the daemon using them."""

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from ser_stream.adaptation import Prior, RunningStats, batch_mean, shrunk_mean
from ser_stream.bundle import read_bundle, write_bundle
from ser_stream.capture.file import FileSource
from ser_stream.config import Config
from ser_stream.errors import ModelError
from ser_stream.model import DEFAULT_MODEL_PATH, load_model
from ser_stream.pipeline import Analyzer, WindowScorer
from ser_stream.service import ADAPTATION_FILE, Controls, run_stream
from ser_stream.sinks import SafeSinks

from .conftest import CollectSink, cli

PRIOR = Prior(mean=np.array([0.0, 10.0, -3.0]), var=np.array([1.0, 4.0, 0.25]), windows=20.0)


def test_no_audio_gives_the_population_statistics():
    np.testing.assert_allclose(shrunk_mean(n=0.0, s1=np.zeros(3), prior=PRIOR), PRIOR.mean)
    np.testing.assert_allclose(PRIOR.scale, np.sqrt(PRIOR.var), atol=2e-6)  # plus the std floor
    np.testing.assert_allclose(PRIOR.normalise(np.array([1.0, 12.0, -2.0]), PRIOR.mean), [1.0, 1.0, 2.0], rtol=1e-5)


def test_statistics_move_from_the_population_to_the_stream():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[1.0, 9.0, -2.0], scale=[2.0, 0.5, 3.0], size=(5000, 3))
    few = batch_mean(x[:20], prior=PRIOR)  # 20 windows weigh as much as the prior
    np.testing.assert_allclose(few, (PRIOR.mean + x[:20].mean(axis=0)) / 2, rtol=1e-9)
    np.testing.assert_allclose(batch_mean(x, prior=PRIOR), x.mean(axis=0), atol=0.01)


def test_only_the_calmer_half_of_the_speech_joins_the_statistics():
    """A household that is calm half the time and agitated the other half: the centre is the calm voice's."""
    stats = RunningStats(prior=PRIOR)
    calm, agitated = np.array([1.0, 9.0, -2.0]), np.array([5.0, 15.0, 2.0])
    added = [stats.offer(agitated if k % 2 else calm, arousal=0.6 if k % 2 else -0.4) for k in range(200)]
    assert added[0] and not added[1]  # the first window sets the median; an agitated one above it is left out
    assert sum(added) == 100
    np.testing.assert_allclose(stats.normalise(calm) * PRIOR.scale, (calm - PRIOR.mean) * 20 / 120, atol=1e-9)
    # steady talk is never frozen out: equal arousal is at the median, and every window joins
    steady = RunningStats(prior=PRIOR)
    assert all(steady.offer(calm, arousal=0.1) for _ in range(50)) and steady.n == 50
    # without an arousal head every window joins, as before
    plain = RunningStats(prior=PRIOR)
    assert all(plain.offer(agitated, arousal=None) for _ in range(10)) and plain.n == 10


def test_running_statistics_equal_the_batch_estimate_then_forget():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3)) + [1.0, 2.0, 3.0]
    stats = RunningStats(prior=PRIOR, max_windows=400)
    for v in x:
        stats.update(v)
    z = stats.normalise(x[:2])
    np.testing.assert_allclose(z, (x[:2] - batch_mean(x, prior=PRIOR)) / PRIOR.scale, rtol=1e-9)
    # a household that changes: 2000 windows of other voices push the old ones out
    for v in rng.normal(size=(2000, 3)) - 4.0:
        stats.update(v)
    assert stats.n == pytest.approx(400)
    centre = np.full(3, -4.0) - stats.normalise(np.full(3, -4.0)) * PRIOR.scale
    np.testing.assert_allclose(centre, -4.0 + 20 / 420 * (PRIOR.mean + 4.0), atol=0.15)  # the prior's 20 windows still pull a little
    assert np.all(stats.normalise(np.array([1.0, 2.0, 3.0])) > 1.0)  # the old voices are now far off
    stats.reset()
    assert stats.n == 0 and np.allclose(stats.normalise(PRIOR.mean), 0)


def test_saved_statistics_round_trip_and_bad_ones_are_refused():
    stats = RunningStats(prior=PRIOR, max_windows=100)
    for v in np.random.default_rng(2).normal(size=(50, 3)):
        stats.update(v)
    other = RunningStats(prior=PRIOR, max_windows=100)
    other.load_arrays(stats.to_arrays())
    np.testing.assert_array_equal(other.normalise(np.ones(3)), stats.normalise(np.ones(3)))
    smaller = RunningStats(prior=PRIOR, max_windows=10)  # max_windows lowered: same statistics, less weight
    smaller.load_arrays(stats.to_arrays())
    assert smaller.n == 10
    with pytest.raises(ValueError, match="do not fit 3 dimensions"):
        other.load_arrays({"n": np.array(5.0), "s1": np.zeros(4)})
    with pytest.raises(ValueError, match="non-finite"):
        other.load_arrays({"n": np.array(5.0), "s1": np.full(3, np.nan)})


def test_default_model_has_an_adaptive_head_and_a_bad_one_is_a_model_error(tmp_path: Path):
    model = load_model(None)
    assert model.adaptive is not None and model.adaptive.prior.mean.shape == (model.features.vector_size,)
    bundle, _ = read_bundle(DEFAULT_MODEL_PATH)
    bundle["adaptive"]["prior"]["var"] = bundle["adaptive"]["prior"]["var"][:-1]
    write_bundle(bundle, tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="adaptive.prior"):
        load_model(tmp_path / "bad.npz")
    del bundle["adaptive"]
    write_bundle(bundle, tmp_path / "plain.npz")
    assert load_model(tmp_path / "plain.npz").adaptive is None
    with pytest.raises(ValueError, match="adaptive head"):
        Analyzer(fdef=model.features, model=load_model(tmp_path / "plain.npz"), window_seconds=3.0, hop_seconds=1.0,
                 adapter=RunningStats(prior=model.adaptive.prior))


def test_the_calmer_half_is_ranked_by_the_heads_own_arousal():
    """The statistics keep the calmer half of the speech by the arousal the head answers, not by the
    relative arousal published: that one moves with the baseline, and a voice below the head's boundary
    (its median falling, each new window above it) was once never admitted."""
    model = load_model(None)
    stats = RunningStats(prior=model.adaptive.prior)
    scorer = WindowScorer(model, adapter=stats)
    given: list[float] = []
    offer = stats.offer
    stats.offer = lambda vector, *, arousal: (given.append(arousal), offer(vector, arousal=arousal))[1]
    rng = np.random.default_rng(0)
    prior = model.adaptive.prior
    relative = []
    for vector in prior.mean + rng.normal(size=(40, prior.mean.size)) * np.sqrt(prior.var):
        own = model.adaptive.heads.answer(stats.normalise(vector))[1]
        relative.append(scorer.score(vector)[1])
        assert given[-1] == pytest.approx(own)
    assert not np.allclose(relative, given)
    assert 0 < stats.n < 40


class Heard(list):
    """A run's speech windows, and ``admitted``: how many of them joined the statistics (the calmer
    half by the head's own arousal, which the per-hop JSON does not carry: counted as RunningStats.offer
    answered)."""

    admitted = 0


def _run(path: Path, state: Path | None, controls: Controls | None = None, config: Config | None = None) -> Heard:
    sink = CollectSink()
    taken: list[bool] = []
    offer = RunningStats.offer

    def counted(stats, vector, *, arousal):
        taken.append(offer(stats, vector, arousal=arousal))
        return taken[-1]

    RunningStats.offer = counted
    try:
        run_stream(config=config or Config(), model=load_model(None), source=FileSource(path, realtime=False),
                   sinks=SafeSinks([sink]), stop=threading.Event(), controls=controls, adaptation_dir=state)
    finally:
        RunningStats.offer = offer
    heard = Heard(w for w in sink.windows if w["speech"])
    heard.admitted = sum(taken)
    return heard


def _saved_windows(state: Path) -> float:
    with np.load(state / ADAPTATION_FILE) as data:
        return float(data["n"])


def test_the_daemon_keeps_adapting_across_restarts_and_resets(long_wav: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    first = _run(long_wav, tmp_path)
    assert len(first) > 5
    saved = _saved_windows(tmp_path)
    assert 0 < saved < len(first) and saved == first.admitted  # the calmer half, saved at the end
    second = _run(long_wav, tmp_path)
    assert "speech windows of household statistics" in caplog.text and "restored from" in caplog.text
    assert _saved_windows(tmp_path) == first.admitted + second.admitted
    # statistics heard before change the first windows' probabilities
    assert first[0]["probs"] != second[0]["probs"]
    controls = Controls(state_dir=None)
    controls.request_adaptation_reset()
    third = _run(long_wav, tmp_path, controls)
    assert _saved_windows(tmp_path) == first.admitted  # reset at the start: this run's windows only
    assert [w["probs"] for w in third] == [w["probs"] for w in first]
    off = _run(long_wav, tmp_path, config=Config(adaptation={"enabled": False}))
    assert _saved_windows(tmp_path) == first.admitted  # adaptation off: the file is left alone
    assert [w["probs"] for w in off] != [w["probs"] for w in first]


def test_statistics_of_another_model_are_not_used(long_wav: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    np.savez(tmp_path / ADAPTATION_FILE, model_key=np.array("0123456789abcdef"), n=np.array(5.0),
             s1=np.zeros(227))
    _run(long_wav, tmp_path)
    assert "statistics of another model" in caplog.text
    (tmp_path / ADAPTATION_FILE).write_bytes(b"not a numpy file")
    speech = _run(long_wav, tmp_path)
    assert "adaptation starts from the population" in caplog.text
    assert _saved_windows(tmp_path) == speech.admitted


def test_reset_adaptation_command(tmp_path: Path):
    env = {"SER_STREAM_STATE__DIRECTORY": str(tmp_path)}
    (tmp_path / ADAPTATION_FILE).write_bytes(b"x")
    r = cli("reset-adaptation", env=env)
    assert r.returncode == 0 and "removed" in r.stderr.decode()
    assert not (tmp_path / ADAPTATION_FILE).exists()
    r = cli("reset-adaptation", env=env)
    assert r.returncode == 0 and "nothing to reset" in r.stderr.decode()


def test_file_input_adapts_in_memory_only(long_wav: Path, tmp_path: Path):
    env = {"SER_STREAM_STATE__DIRECTORY": str(tmp_path)}
    runs = [cli("run", "--input", str(long_wav), "--fast", "--format", "json", env=env) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs)
    assert runs[0].stdout.splitlines()[-1] != b""
    probs = [[json.loads(line)["probs"] for line in r.stdout.splitlines()] for r in runs]
    assert probs[0] == probs[1]  # each run starts from the population: a test file is not the household
    assert not (tmp_path / ADAPTATION_FILE).exists()


def test_arousal_is_relative_to_the_households_median_logit():
    from ser_stream.adaptation import ArousalBaseline, arousal_logit

    b = ArousalBaseline(max_windows=50, prior_windows=20)
    assert b.median() == 0.0 and b.relative(0.3) == pytest.approx(0.3)  # no speech yet: the head's own boundary
    rng = np.random.default_rng(3)
    logits = rng.normal(2.0, 1.0, size=200)  # a home whose talk the head hears as agitated throughout
    for z in logits:
        b.add(float(np.tanh(z / 2)))
    recent = 2 * np.arctanh(np.tanh(logits[-50:] / 2))
    assert b.median() == pytest.approx(float(np.median(recent)), abs=1e-9)  # the last 50 only, no more zeros
    assert abs(b.relative(float(np.tanh(b.median() / 2)))) < 1e-9  # its usual voice is the boundary now
    few = ArousalBaseline(max_windows=50, prior_windows=20)
    for z in (3.0, 4.0, 5.0):
        few.add(float(np.tanh(z / 2)))
    assert few.median() == 0.0  # 3 windows against 20 pseudo-windows at the boundary
    assert arousal_logit(1.0) < 80 and arousal_logit(-1.0) > -80  # saturated answers stay finite
    # saved and restored with the statistics
    stats = RunningStats(prior=PRIOR)
    for z in logits[:30]:
        stats.relative_arousal(float(np.tanh(z / 2)))
    again = RunningStats(prior=PRIOR)
    again.load_arrays(stats.to_arrays())
    assert again.arousal.median() == pytest.approx(stats.arousal.median())
    with pytest.raises(ValueError, match="non-finite"):
        again.load_arrays({**stats.to_arrays(), "arousal_logits": np.array([np.nan])})


def test_thirty_seconds_of_speech_are_not_idle(long_wav: Path):
    """idle means nobody is talking: 30 s of speech through run's own loop sets a mood within the dwell."""
    speech = _run(long_wav, None)
    assert len(speech) >= 25
    dwell = int(round(Config().mood.min_dwell_seconds / Config().window.hop_seconds))  # hops
    assert all(w["mood"] != "idle" for w in speech[dwell:]), [w["mood"] for w in speech]


def test_each_room_and_source_keeps_its_own_statistics(long_wav: Path, tmp_path: Path, caplog, monkeypatch):
    """Issue 20: two daemons of one user with different device ids get different state folders, and
    statistics learnt on another source are set aside."""
    import shutil

    from ser_stream.service import default_state_dir

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir("kitchen") == tmp_path / "xdg" / "ser-stream" / "kitchen"
    assert default_state_dir("kitchen") != default_state_dir("hallway")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "unit"))  # systemd: one per unit instance
    assert default_state_dir("kitchen") == tmp_path / "unit"
    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    first = _run(long_wav, state)
    assert _saved_windows(state) == first.admitted
    other = tmp_path / "other-camera.wav"
    shutil.copy(long_wav, other)
    again = _run(other, state)  # the same audio from another source: not the household's statistics
    assert "statistics of another source" in caplog.text
    assert [w["probs"] for w in again] == [w["probs"] for w in first]
