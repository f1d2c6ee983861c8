"""Labelled corpora (labels.csv) and the household protocol through the daemon's streaming path."""

import json
from pathlib import Path

import numpy as np
import pytest

from ser_stream.training.metrics import binary_uar, expected_calibration_error

from .conftest import cli, need


@pytest.fixture(scope="module")
def emodb_small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two EmoDB speakers (evaluation only: never trained on), as a labels.csv folder of symlinks."""
    src = data_dir / "emodb"
    need((src / "labels.csv").is_file(), f"EmoDB not found under {src}")
    d = tmp_path_factory.mktemp("emodb")
    rows = [r.split(",") for r in (src / "labels.csv").read_text().splitlines()[1:]]
    keep = [r for r in rows if r[2] in ("03", "08")]
    for path, _, _ in keep:
        (d / path).symlink_to(src / path)
    (d / "labels.csv").write_text("path,emotion,speaker,extra\n" + "".join(f"{p},{e},{s},x\n" for p, e, s in keep))
    return d


def test_household_protocol_scores_a_fixed_model_on_a_labels_csv_corpus(emodb_small: Path, tmp_path: Path):
    r = cli("evaluate", "--protocol", "household", "--data", str(emodb_small), "--model", "models/default.npz",
            "--report", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    s = json.loads(r.stdout.decode().splitlines()[-1])
    assert s["protocol"] == "household" and s["n"] == len((emodb_small / "labels.csv").read_text().splitlines()) - 1
    assert set(s["per_class"]) == {"neutral", "happy", "sad", "angry", "fearful", "disgust"}  # what the corpus has
    assert 0.0 <= s["uar"] <= 1.0 and s["clips_without_speech"] == 0
    assert 0.5 < s["activation_uar"] <= 1.0  # trained activation transfers to German speech
    assert s["valence_uar"] is not None and 0.0 <= s["ece"] <= 1.0
    ft = s["false_triggers"]
    assert ft["windows"] > 20 and 0.0 <= ft["emotional_mood_share"] <= 1.0 and ft["changes_per_hour"] >= 0
    assert (tmp_path / "household-confusion.png").stat().st_size > 1000
    assert (tmp_path / "household-reliability.png").stat().st_size > 1000
    assert sum(row[1] for row in s["reliability"]) == s["windows"]


def test_labels_outside_the_eight_are_refused_with_file_and_line(emodb_small: Path, tmp_path: Path):
    bad = tmp_path / "corpus"
    bad.mkdir()
    first = sorted(p for p in emodb_small.iterdir() if p.suffix == ".flac")[0]
    (bad / first.name).symlink_to(first.resolve())
    (bad / "labels.csv").write_text(f"path,emotion,speaker\n{first.name},angry,03\n{first.name},boredom,03\n")
    r = cli("evaluate", "--protocol", "household", "--data", str(bad), "--model", "models/default.npz")
    assert r.returncode == 65
    assert f"{bad / 'labels.csv'}: line 3: emotion 'boredom' is not one of" in r.stderr.decode()
    (bad / "labels.csv").write_text(f"path,label\n{first.name},angry\n")
    r = cli("evaluate", "--protocol", "household", "--data", str(bad), "--model", "models/default.npz")
    assert r.returncode == 65 and "missing column(s) emotion, speaker" in r.stderr.decode()


def test_calibration_error_and_binary_uar():
    conf = np.array([0.9, 0.9, 0.9, 0.9, 0.6, 0.6])
    right = np.array([1, 1, 1, 0, 1, 0], dtype=float)
    # bin 0.9: accuracy 0.75 vs 0.9 (4/6 of windows); bin 0.6: 0.5 vs 0.6 (2/6)
    assert expected_calibration_error(conf, right) == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.1)
    assert expected_calibration_error(np.array([0.8] * 5), np.array([1, 1, 1, 1, 0.0])) == pytest.approx(0.0)
    assert binary_uar(np.array([1, 1, 0, 0]), np.array([0.5, -0.1, -0.3, -0.2])) == 0.75
    assert binary_uar(np.array([1, 1]), np.array([0.5, 0.1])) is None  # one class only


def test_the_daemon_and_the_household_protocol_share_the_window_to_mood_step(emodb_small: Path, tmp_path: Path):
    """One speaker's stream of clips, as the household protocol builds it, streamed through ``run``'s
    own loop (run_stream, a file source) and scored by the protocol: the same moods, probabilities,
    arousal and valence, window by window."""
    import threading

    import soundfile as sf

    from ser_stream.capture.file import FileSource
    from ser_stream.config import Config
    from ser_stream.model import load_model
    from ser_stream.service import run_stream
    from ser_stream.sinks import SafeSinks
    from ser_stream.training.corpora import scan_corpus
    from ser_stream.training.scoring import score_stream
    from ser_stream.training.streams import GAP_SECONDS, analyse_streams, speaker_order, stream_audio

    from .conftest import CollectSink

    model, config = load_model(None), Config()
    clips = scan_corpus(emodb_small)
    order = speaker_order(clips, "03", seed=0)[:12]
    stream = analyse_streams(clips, {"03": order}, gap=GAP_SECONDS, fdef=model.features, config=config, jobs=1,
                             seed=0)[0]
    scored = score_stream(model, config, stream)
    audio, _, _ = stream_audio("03", [str(clips[i].path) for i in order], gap=GAP_SECONDS,
                               sample_rate_hz=model.sample_rate_hz, seed=0)
    wav = tmp_path / "stream.wav"
    sf.write(wav, audio, model.sample_rate_hz, subtype="FLOAT")
    sink = CollectSink()
    run_stream(config=config, model=model, source=FileSource(wav, realtime=False), sinks=SafeSinks([sink]),
               stop=threading.Event())
    daemon = sink.windows
    assert len(daemon) == stream.t.size > 30
    assert [w["mood"] for w in daemon] == scored.moods
    assert len(set(scored.moods)) > 1  # the moods move: the comparison says something
    for k, w in enumerate(daemon):
        assert w["speech"] == bool(stream.speech[k])
        if w["speech"]:
            assert [w["probs"][lab] for lab in model.labels] == [round(float(p), 4) for p in scored.probs[k]]
            assert w["arousal"] == round(float(scored.arousal[k]), 3)
            assert w["valence"] == round(float(scored.valence[k]), 3)
