"""Several corpora: RAVDESS names, labels.csv folders, Ogg Opus clips, labels a corpus lacks, and
leave-one-corpus-out on a small seeded subset of the three real corpora (symlinks, never copies)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ser_stream.model import LABELS, load_model
from ser_stream.training.corpora import Clip
from ser_stream.training.fit import clip_weights

from .conftest import cli, need


def _labels_csv_subset(src: Path, dest: Path, *, speakers: tuple[str, ...], per_label: int) -> int:
    """``per_label`` clips of each emotion of each speaker of a labels.csv corpus, as symlinks."""
    need((src / "labels.csv").is_file(), f"corpus not found under {src}")
    with open(src / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    kept, count = [], {}
    for row in rows:
        key = (row["speaker"], row["emotion"])
        if row["speaker"] in speakers and count.get(key, 0) < per_label:
            count[key] = count.get(key, 0) + 1
            target = dest / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(src / row["path"])
            kept.append(row)
    with open(dest / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)


@pytest.fixture(scope="module")
def corpora(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three corpora named as the real ones: RAVDESS (2 actors, every clip), nEMO (Opus; 3 speakers,
    4 clips of each of its 6 emotions) and EmoDB (3 speakers, 5 clips per emotion)."""
    root = tmp_path_factory.mktemp("corpora")
    ravdess = root / "ravdess"
    for actor in ("Actor_03", "Actor_04"):
        (ravdess / actor).mkdir(parents=True)
        for f in sorted((data_dir / "ravdess" / actor).glob("*.flac")):
            (ravdess / actor / f.name).symlink_to(f)
    assert _labels_csv_subset(data_dir / "nemo", root / "nemo", speakers=("EB0", "KD0", "MK0"), per_label=4) == 68  # MK0 has no surprised
    assert _labels_csv_subset(data_dir / "emodb", root / "emodb", speakers=("03", "08", "16"), per_label=5) > 60
    return [ravdess, root / "nemo", root / "emodb"]


@pytest.fixture(scope="module")
def multi_model(corpora: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("model") / "m.npz"
    r = cli("train", "--data", *map(str, corpora), "--out", str(out), "--augment-copies", "0", "--jobs", "2",
            timeout=900)
    return out, r


def test_train_on_three_corpora_reads_opus_and_records_each_corpus(multi_model):
    out, r = multi_model
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    m = load_model(out)
    t = m.meta["training"]
    assert set(t["corpora"]) == {"ravdess", "nemo", "emodb"} and [Path(d).name for d in t["data"]] == ["ravdess", "nemo", "emodb"]
    assert t["corpora"]["nemo"]["clips"] == 68  # every Ogg Opus clip was read
    assert "disgust" not in t["corpora"]["nemo"]["labels"] and "calm" not in t["corpora"]["emodb"]["labels"]
    assert t["corpora"]["ravdess"]["labels"] == list(LABELS)
    assert "ravdess/3" in t["actors"] and "emodb/03" in t["actors"]  # speakers named per corpus
    loco = m.meta["metrics"]["leave-one-corpus-out"]
    assert [f["held_out"] for f in loco] == [["ravdess"], ["nemo"], ["emodb"]]
    assert m.meta["calibration"]["method"].startswith("temperature scaling, fitted on the held-out corpora")
    assert "CC BY-NC-SA" in m.meta["license"] and "nemo" in m.meta["license"]


def test_no_corpus_and_no_label_dominates_and_a_missing_label_is_absent():
    def clips(corpus: str, counts: dict[str, int]) -> list[Clip]:
        return [Clip(Path(f"{corpus}{lab}{i}"), LABELS.index(lab), "s", corpus=corpus)
                for lab, n in counts.items() for i in range(n)]

    big = clips("big", {"neutral": 400, "angry": 100, "surprised": 50})
    small = clips("small", {"neutral": 10, "angry": 30})  # no "surprised" at all
    all_clips = big + small
    w = clip_weights(all_clips)
    assert w.mean() == pytest.approx(1.0)

    def total(corpus: str | None, lab: str) -> float:
        return sum(wi for wi, c in zip(w, all_clips) if LABELS[c.label] == lab and (corpus is None or c.corpus == corpus))

    # every label weighs the same in all, whatever its clip count ...
    assert total(None, "neutral") == pytest.approx(total(None, "angry")) == pytest.approx(total(None, "surprised"))
    # ... shared equally by the corpora that have it; 10 clips of "small" weigh as much as 400 of "big"
    assert total("big", "neutral") == pytest.approx(total("small", "neutral"))
    assert total("big", "surprised") == pytest.approx(total(None, "surprised"))  # only "big" has it
    assert total("small", "surprised") == 0.0
    # within a corpus's label every clip weighs the same
    assert len({round(x, 12) for x, c in zip(w, all_clips) if c.corpus == "big" and LABELS[c.label] == "neutral"}) == 1


def test_leave_one_corpus_out_prints_a_row_per_corpus_and_their_mean(corpora: list[Path], tmp_path: Path):
    r = cli("evaluate", "--protocol", "leave-one-corpus-out", "--data", *map(str, corpora), "--augment-copies", "0",
            "--jobs", "2", "--report", str(tmp_path), "--save-models", str(tmp_path / "folds"), timeout=900)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    s = json.loads(r.stdout.decode().splitlines()[-1])
    assert s["protocol"] == "leave-one-corpus-out"
    assert set(s) >= {"n", "accuracy", "uar", "per_class", "confusion", "rows", "mean"}
    rows = {row["corpus"]: row for row in s["rows"]}
    assert list(rows) == ["ravdess", "nemo", "emodb"]
    assert sum(row["n"] for row in rows.values()) == s["n"] == np.array(s["confusion"]).sum()
    for row in rows.values():
        for key in ("uar", "activation_uar", "neutral_recall", "ece", "false_trigger_share", "quarrel_agitated_share"):
            assert 0.0 <= row[key] <= 1.0, (row["corpus"], key)
        assert row["adaptation"] is True and set(row["adaptation_off"]) >= {"uar", "activation_uar", "quarrel_agitated_share"}
    assert rows["nemo"]["valence_uar"] is not None and s["mean"]["uar"] == pytest.approx(
        np.mean([row["uar"] for row in rows.values()]), abs=1e-4)
    assert (tmp_path / "leave-one-corpus-out-confusion.png").stat().st_size > 1000
    # each fold's model as its held-out corpus was scored: a bundle the household protocol replays as it is
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["fold-emodb.npz", "fold-nemo.npz", "fold-ravdess.npz"]
    replay = cli("evaluate", "--protocol", "household", "--model", str(tmp_path / "folds" / "fold-emodb.npz"),
                 "--data", str(corpora[2]), "--jobs", "2", timeout=600)
    assert replay.returncode == 0, replay.stderr.decode()[-3000:]
    again = json.loads(replay.stdout.decode().splitlines()[-1])
    assert again["households"] == rows["emodb"]["households"]  # the same homes, the same answers


def test_leave_one_corpus_out_needs_two_corpora_and_distinct_names(corpora: list[Path], tmp_path: Path):
    r = cli("evaluate", "--protocol", "leave-one-corpus-out", "--data", str(corpora[1]))
    assert r.returncode == 2 and "needs two or more corpora" in r.stderr.decode()
    twin = tmp_path / "x" / "nemo"
    twin.parent.mkdir()
    twin.symlink_to(corpora[1])
    r = cli("train", "--data", str(corpora[1]), str(twin), "--out", str(tmp_path / "m.npz"))
    assert r.returncode == 66 and "two corpus folders named nemo" in r.stderr.decode()
