"""The seed recipe this product started from, applied faithfully: the baseline.

Features (the classic librosa tutorial's ``extract_feature``): mean MFCC(40),
mean chroma(12) and mean mel(128) over the window, each call recomputing the
STFT (``stft`` for chroma, ``mfcc(y=...)`` and ``melspectrogram(y=...)``
internally). Classifier: ``MLPClassifier(hidden_layer_sizes=(300,),
alpha=0.01, batch_size=256, learning_rate='adaptive', max_iter=500)``.

    python benchmarks/seed_recipe.py stream AUDIO MODEL [--fast]   # one JSON line per hop, like `ser-stream run`
    python benchmarks/seed_recipe.py features OUT.npy FILE...       # per-file features (for classify timing)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import joblib
import librosa
import numpy as np
import soundfile as sf

from ser_stream.labels import LABELS

WINDOW_SECONDS, HOP_SECONDS = 3.0, 1.0
MLP_PARAMS = dict(hidden_layer_sizes=(300,), alpha=0.01, batch_size=256, epsilon=1e-08,
                  learning_rate="adaptive", max_iter=500)


def seed_features(y: np.ndarray, sr: int) -> np.ndarray:
    stft = np.abs(librosa.stft(y))
    mfccs = np.mean(librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40).T, axis=0)
    chroma = np.mean(librosa.feature.chroma_stft(S=stft, sr=sr).T, axis=0)
    mel = np.mean(librosa.feature.melspectrogram(y=y, sr=sr).T, axis=0)
    return np.hstack([mfccs, chroma, mel])


def file_features(path: str) -> np.ndarray:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return seed_features(y.mean(axis=1), sr)


def train(X: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(random_state=seed, **MLP_PARAMS).fit(X, y)


def stream(path: str, model_path: str, fast: bool) -> None:
    """Slide a 3 s window by 1 s over the file (read in blocks), classify each, print JSON."""
    clf = joblib.load(model_path)
    f = sf.SoundFile(path)
    sr = f.samplerate
    win, hop = int(WINDOW_SECONDS * sr), int(HOP_SECONDS * sr)
    buf = np.zeros(0, dtype=np.float32)
    t0, consumed, next_end = time.monotonic(), 0, win
    for block in f.blocks(blocksize=hop // 10, dtype="float32", always_2d=True):
        if not fast:
            delay = t0 + consumed / sr - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        buf = np.concatenate([buf, block.mean(axis=1)])[-(win + hop):]
        consumed += block.shape[0]
        while consumed >= next_end:
            window = buf[len(buf) - win - (consumed - next_end): len(buf) - (consumed - next_end)]
            probs = clf.predict_proba(seed_features(window, sr)[None, :])[0]
            best = int(np.argmax(probs))
            sys.stdout.write(json.dumps({"t": next_end / sr, "label": LABELS[best], "confidence": float(probs[best])}) + "\n")
            sys.stdout.flush()
            next_end += hop


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stream")
    s.add_argument("audio")
    s.add_argument("model")
    s.add_argument("--fast", action="store_true")
    f = sub.add_parser("features")
    f.add_argument("out")
    f.add_argument("files", nargs="+")
    f.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    if a.cmd == "stream":
        stream(a.audio, a.model, a.fast)
    else:
        feats = joblib.Parallel(n_jobs=a.jobs, batch_size=16)(joblib.delayed(file_features)(x) for x in a.files)
        np.save(a.out, np.stack(feats))


if __name__ == "__main__":
    main()
