"""Training on real RAVDESS clips (two actors, via symlinks), reproducibility and bad data."""

import json
from pathlib import Path

import numpy as np
import pytest

from ser_stream.model import LABELS, load_model

from .conftest import cli


@pytest.fixture(scope="module")
def small_corpus(ravdess: Path, wav48: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    for actor in ("Actor_01", "Actor_02"):
        (d / actor).mkdir()
        for f in sorted((ravdess / actor).glob("*.flac")):
            (d / actor / f.name).symlink_to(f)
    bad = d / "bad"
    bad.mkdir()
    (bad / "03-01-05-01-01-01-03.flac").write_bytes(b"fLaC but corrupt")  # corrupt among good ones
    (bad / "03-01-09-01-01-01-03.wav").symlink_to(wav48)  # emotion code out of range
    (bad / "notes.wav").symlink_to(wav48)  # not a RAVDESS name
    (bad / "03-01-03-01-02-01-20.wav").symlink_to(wav48)  # 48 kHz stereo among 16 kHz mono
    return d


@pytest.fixture(scope="module")
def trained(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("model")
    runs = [cli("train", "--data", str(small_corpus), "--out", str(out / f"m{i}.npz"), "--seed", "3",
                "--augment-copies", "1", timeout=600)
            for i in range(2)]
    return out, runs


def test_train_writes_a_loadable_bundle_and_skips_bad_files(trained, small_corpus: Path, ravdess: Path):
    out, runs = trained
    r = runs[0]
    log = r.stderr.decode()
    assert r.returncode == 0, log
    assert "03-01-05-01-01-01-03.flac" in log and "unreadable" in log  # the corrupt file is named
    assert "emotion code 09 is outside 01-08" in log
    assert "notes.wav" in log
    m = load_model(out / "m0.npz")
    assert m.labels == LABELS and m.meta["training"]["augment_copies"] == 1
    assert m.features.pitch and m.features.dynamics and m.features.vector_size == 348
    assert m.meta["training"]["clips"] == 121 and m.meta["training"]["actors"] == [1, 2, 20]
    r = cli("classify", str(ravdess / "Actor_01" / "03-01-05-02-01-01-01.flac"), "--model", str(out / "m0.npz"))
    assert r.returncode == 0 and json.loads(r.stdout)["label"] in LABELS


def test_same_seed_gives_the_same_model(trained):
    out, runs = trained
    assert all(r.returncode == 0 for r in runs)
    a, b = load_model(out / "m0.npz"), load_model(out / "m1.npz")
    assert a.sha256 == b.sha256  # every array of every head, bit for bit


def test_folder_without_ravdess_names_exits_66(tmp_path: Path, wav48: Path):
    (tmp_path / "hello.wav").symlink_to(wav48)
    r = cli("train", "--data", str(tmp_path), "--out", str(tmp_path / "m.npz"))
    assert r.returncode == 66 and "no RAVDESS-named audio files" in r.stderr.decode()
    r = cli("train", "--data", str(tmp_path / "missing"))
    assert r.returncode == 66 and "no such data folder" in r.stderr.decode()


def test_evaluate_prints_the_summary_as_the_last_line_and_writes_a_report(small_corpus: Path, tmp_path: Path):
    r = cli("evaluate", "--data", str(small_corpus), "--report", str(tmp_path / "rep"), "--augment-copies", "0",
            timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    last = json.loads(r.stdout.decode().splitlines()[-1])
    assert last["protocol"] == "speaker-independent" and last["n"] == 121
    assert set(last) >= {"protocol", "n", "accuracy", "uar", "per_class", "confusion"}
    conf = np.array(last["confusion"])
    assert conf.shape == (8, 8) and conf.sum() == 121
    assert abs(last["accuracy"] - np.trace(conf) / 121) < 1e-3
    assert list(last["per_class"]) == list(LABELS)
    assert (tmp_path / "rep" / "speaker-independent.json").is_file()
    png = (tmp_path / "rep" / "speaker-independent-confusion.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_evaluate_degraded_and_speaker_adaptive(small_corpus: Path, tmp_path: Path):
    r = cli("evaluate", "--data", str(small_corpus), "--degrade", "noise10", "--augment-copies", "1",
            "--report", str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    last = json.loads(r.stdout.decode().splitlines()[-1])
    assert last["degrade"] == "noise10" and last["protocol"] == "speaker-independent" and last["n"] == 121
    assert (tmp_path / "speaker-independent-noise10.json").is_file()
    r = cli("evaluate", "--data", str(small_corpus), "--protocol", "speaker-adaptive", "--augment-copies", "0", timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    last = json.loads(r.stdout.decode().splitlines()[-1])
    assert last["protocol"] == "speaker-adaptive" and 0 <= last["uar"] <= 1 and 0 <= last["uar_balanced_stats"] <= 1
    assert "neutral and calm" in last["stats_from"]


def test_evaluate_a_fixed_model_without_training(trained, small_corpus: Path):
    out, _ = trained
    r = cli("evaluate", "--data", str(small_corpus), "--model", str(out / "m0.npz"), timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    last = json.loads(r.stdout.decode().splitlines()[-1])
    assert last["protocol"] == "fixed-model" and last["n"] == 121 and last["model"].endswith("m0.npz")
    assert last["accuracy"] > 0.5  # these clips were its training data


def test_evaluate_a_fixed_models_adaptive_head(trained, small_corpus: Path):
    out, _ = trained
    r = cli("evaluate", "--data", str(small_corpus), "--model", str(out / "m0.npz"), "--protocol", "speaker-adaptive",
            timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    last = json.loads(r.stdout.decode().splitlines()[-1])
    assert last["protocol"] == "fixed-model-adaptive" and last["n"] == 121
    assert 0 <= last["uar"] <= 1 and 0 <= last["uar_balanced_stats"] <= 1 and "neutral and calm" in last["stats_from"]
    r = cli("evaluate", "--data", str(small_corpus), "--model", str(out / "m0.npz"), "--protocol", "seed4")
    assert r.returncode == 2 and "seed4 is a training split" in r.stderr.decode()
