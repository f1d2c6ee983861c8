"""ser-stream against the seed recipe, side by side in one run, on the same audio.

    .venv/bin/python benchmarks/bench.py [--data ../shared/data/ravdess] [--minutes 30] [--hops 300] [--repeat 3]

Measures (see README "Performance"):
- per-hop CPU time (median, p95) at 16 kHz and 48 kHz input;
- whole-process wall time of streaming MINUTES of audio with --fast, also against
  the per-hop compute (the stream's hops times ser-stream's per-hop median);
- peak resident memory of those two processes;
- time from process start to the first window result (real-time file input);
- classifying every corpus file (ser-stream classify) against the seed recipe's
  feature extraction of the same files, both with 2 jobs.
The whole-process measures (stream and classify) run --repeat times each, the two
sides interleaved, after the corpus was read once into the page cache; the table
gives the medians and the JSON every run. Prints a table, then one JSON line (the last line) with the figures, ratios and targets.
Per-hop times are measured in a fresh process per run, --repeat runs per side,
interleaved like the whole-process measures (median of the runs' medians): ser-stream with one BLAS
thread (what `run` sets for itself), the seed recipe as a user would run it
(the environment's BLAS threads) and, for transparency, also with one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import seed_recipe  # noqa: E402

RAVDESS = re.compile(r"^03-01-(\d\d)-")


def corpus_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*.flac") if RAVDESS.match(p.name))


def build_stream_audio(files: list[Path], minutes: float) -> np.ndarray:
    need = int(minutes * 60 * 16000)
    parts, total = [], 0
    i = 0
    while total < need:
        y, sr = sf.read(files[i % len(files)], dtype="float32")
        assert sr == 16000
        parts.append(y)
        total += len(y)
        i += 1
    return np.concatenate(parts)[:need]


def run_timed(cmd: list[str], env=None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a child, measured by the small _rss.py parent."""
    out = subprocess.run([sys.executable, str(HERE / "_rss.py"), *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise RuntimeError(f"{cmd[:4]} failed with {r['rc']}")
    return r["wall_s"], r["maxrss_mb"]


def run_interleaved(cmds: dict[str, tuple[list[str], dict | None]], repeat: int) -> dict[str, dict]:
    """Each command ``repeat`` times, interleaved (a, b, a, b, ...) so that drifts of the machine hit
    both sides alike: median and every wall time (s), and the largest peak RSS (MB)."""
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    rss: dict[str, float] = {name: 0.0 for name in cmds}
    for _ in range(repeat):
        for name, (cmd, env) in cmds.items():
            w, r = run_timed(cmd, env=env)
            walls[name].append(w)
            rss[name] = max(rss[name], r)
    return {name: {"median_s": float(np.median(w)), "runs_s": [round(x, 2) for x in w], "maxrss_mb": rss[name]}
            for name, w in walls.items()}


def first_result_seconds(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.terminate()
    proc.wait(10)
    if not line:
        raise RuntimeError(f"{cmd[:4]} printed nothing")
    return elapsed


def start_broker(tmp: Path):
    """A mosquitto on a free loopback port, so the measured daemon runs its MQTT sink too (None if absent)."""
    import shutil
    import socket

    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if exe is None:
        print("[bench] mosquitto not found: measuring without the MQTT sink", file=sys.stderr)
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None


def per_hop_ours(audio: Path, hops: int) -> list[float]:
    from ser_stream.capture.resample import Resampler
    from ser_stream.config import Config
    from ser_stream.model import load_model
    from ser_stream.moodstep import MoodStep
    from ser_stream.pipeline import make_analyzer

    y, sr = sf.read(audio, dtype="float32")
    model = load_model(None)
    config = Config()
    an = make_analyzer(config, None, fdef=model.features)  # as `run` does: adapting, window -> mood
    step = MoodStep(model, config)
    rs = Resampler(sr, 16000)
    for res in an.push(rs.process(y[: 3 * sr])):
        step.step(res, hop_seconds=an.hop_seconds)
    times, vectors = [], []
    for k in range(hops):
        block = y[3 * sr + k * sr : 3 * sr + (k + 1) * sr]
        t = time.process_time()
        out = [step.step(res, hop_seconds=an.hop_seconds) for res in an.push(rs.process(block))]
        times.append(time.process_time() - t)
        assert len(out) == 1
        if out[0][0].speech:
            vectors.append(out[0][0].vector)
    return times, voice_times(model, config, vectors)


def voice_times(model, config, vectors: list) -> list[float]:
    """What telling voices apart costs alone, on each speech hop (the only hops it runs on): the
    embedding and the choice of a voice (already inside the per-hop times above); nothing when the
    configuration (``adaptation.max_voices``, e.g. from the environment) or the model has no voices."""
    from ser_stream.moodstep import make_adapter

    household = make_adapter(config, model)
    if household is None or household.embedding is None:
        return []
    times = []
    for v in vectors:
        t = time.perf_counter()
        household.voice_of(v)
        times.append(time.perf_counter() - t)
    return times


def per_hop_seed(audio: Path, hops: int, model: Path) -> list[float]:
    import joblib

    clf = joblib.load(model)
    y, sr = sf.read(audio, dtype="float32")
    times = []
    for k in range(hops):
        window = y[k * sr : k * sr + 3 * sr]
        t = time.process_time()
        clf.predict_proba(seed_recipe.seed_features(window, sr)[None, :])
        times.append(time.process_time() - t)
    return times


def per_hop(kind: str, audio: Path, hops: int, model: Path, *, blas_threads: str | None) -> dict[str, float]:
    """Per-hop CPU times measured in a fresh process (its own imports, its own BLAS setting)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if blas_threads:
        env["OPENBLAS_NUM_THREADS"] = blas_threads
    out = subprocess.run([sys.executable, str(HERE / "bench.py"), "--worker", kind, "--audio", str(audio),
                          "--hops", str(hops), "--model", str(model)], capture_output=True, text=True, env=env, check=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {**stats_ms(times["hop"]), **({"voice_ms": stats_ms(times["voice"])} if times["voice"] else {})}


def stats_ms(times: list[float]) -> dict[str, float]:
    a = np.asarray(times) * 1000
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def median_of_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median over runs of each run's median and p95, and every run's median."""
    return {"median_ms": round(float(np.median([r["median_ms"] for r in runs])), 3),
            "p95_ms": round(float(np.median([r["p95_ms"] for r in runs])), 3),
            "runs_median_ms": [r["median_ms"] for r in runs]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ravdess")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--hops", type=int, default=300)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="runs of each measure, interleaved (median reported)")
    p.add_argument("--worker", choices=["ours", "seed"], help=argparse.SUPPRESS)
    p.add_argument("--audio", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        times, voices = per_hop_ours(args.audio, args.hops) if args.worker == "ours" else \
            (per_hop_seed(args.audio, args.hops, args.model), [])
        print(json.dumps({"hop": times, "voice": voices}))
        return
    py = sys.executable
    files = corpus_files(args.data)
    labels = np.array([int(RAVDESS.match(f.name).group(1)) - 1 for f in files])
    tmp = Path(tempfile.mkdtemp(prefix="ser-bench-"))
    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()}}

    # 1. classify every file vs the seed recipe's feature extraction (both with --jobs)
    log(f"classify {len(files)} files, {args.jobs} jobs, {args.repeat} times each")
    for f in files:  # the page cache holds the corpus before either side is timed
        f.read_bytes()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    feats_path = tmp / "seed_feats.npy"
    cls = run_interleaved({
        "ours": ([py, "-m", "ser_stream", "classify", "--jobs", str(args.jobs), *map(str, files)], None),
        "seed": ([py, str(HERE / "seed_recipe.py"), "features", str(feats_path), "--jobs", str(args.jobs), *map(str, files)], None),
    }, args.repeat)
    ours_cls, seed_cls = cls["ours"]["median_s"], cls["seed"]["median_s"]
    res["classify_corpus"] = {"files": len(files), "jobs": args.jobs, "ser_stream_s": round(ours_cls, 2),
                              "seed_features_s": round(seed_cls, 2), "ratio": round(seed_cls / ours_cls, 2),
                              "ser_stream_runs_s": cls["ours"]["runs_s"], "seed_runs_s": cls["seed"]["runs_s"]}

    # the seed MLP, trained on those features (setup, not timed)
    import joblib

    clf = seed_recipe.train(np.load(feats_path), labels)
    seed_model = tmp / "seed_mlp.joblib"
    joblib.dump(clf, seed_model)

    # 2. per-hop CPU time, same audio, each in a fresh process
    log(f"per-hop CPU over {args.hops} hops")
    y16 = build_stream_audio(files, max(args.minutes, (args.hops + 4) / 60))
    import soxr

    hop = {}
    for sr in (16000, 48000):
        clip = tmp / f"hops{sr}.wav"
        y = y16[: (args.hops + 4) * 16000]
        sf.write(clip, y if sr == 16000 else soxr.resample(y, 16000, sr), sr, subtype="FLOAT")
        # each side --repeat times, interleaved (a fresh process each), so that the machine's drifts hit both
        runs: dict[str, list[dict[str, float]]] = {"ser_stream": [], "seed": [], "seed_1_blas_thread": []}
        for _ in range(args.repeat):
            runs["ser_stream"].append(per_hop("ours", clip, args.hops, seed_model, blas_threads="1"))
            runs["seed"].append(per_hop("seed", clip, args.hops, seed_model, blas_threads=None))
            runs["seed_1_blas_thread"].append(per_hop("seed", clip, args.hops, seed_model, blas_threads="1"))
        h = {name: median_of_runs(r) for name, r in runs.items()}
        if all("voice_ms" in r for r in runs["ser_stream"]):
            h["ser_stream"]["voice_alone"] = median_of_runs([r["voice_ms"] for r in runs["ser_stream"]])
        h["ratio_median"] = round(h["seed"]["median_ms"] / h["ser_stream"]["median_ms"], 1)
        h["ratio_median_1_blas_thread"] = round(h["seed_1_blas_thread"]["median_ms"] / h["ser_stream"]["median_ms"], 1)
        hop[f"{sr // 1000}k"] = h
    res["per_hop_cpu"] = hop

    # 3. whole stream, --fast, whole process: stdout only, then with the MQTT sink too; peak RSS
    audio = tmp / "stream.wav"
    sf.write(audio, y16[: int(args.minutes * 60 * 16000)], 16000, subtype="PCM_16")
    log(f"stream {args.minutes:.0f} min --fast, {args.repeat} times each")
    run_cmd = [py, "-m", "ser_stream", "run", "--input", str(audio), "--fast", "--format", "json"]
    cmds = {"ours": (run_cmd, run_env)}
    broker = start_broker(tmp)
    mqtt_env = None
    if broker is not None:
        mqtt_env = {**run_env, "SER_STREAM_MQTT__ENABLED": "true", "SER_STREAM_MQTT__HOST": "127.0.0.1",
                    "SER_STREAM_MQTT__PORT": str(broker[1]), "SER_STREAM_STATE__DIRECTORY": str(tmp / "state")}
        cmds["ours_mqtt"] = (run_cmd, mqtt_env)
    cmds["seed"] = ([py, str(HERE / "seed_recipe.py"), "stream", str(audio), str(seed_model), "--fast"], None)
    fast = run_interleaved(cmds, args.repeat)
    ours_wall, ours_rss = fast["ours"]["median_s"], fast["ours"]["maxrss_mb"]
    seed_wall, seed_rss = fast["seed"]["median_s"], fast["seed"]["maxrss_mb"]
    if broker is not None:
        mqtt_wall, mqtt_rss = fast["ours_mqtt"]["median_s"], fast["ours_mqtt"]["maxrss_mb"]
    secs = args.minutes * 60
    res["fast_stream"] = {"audio_minutes": args.minutes,
                          "ser_stream_s": round(ours_wall, 2), "ser_stream_x_realtime": round(secs / ours_wall, 1),
                          "seed_s": round(seed_wall, 2), "seed_x_realtime": round(secs / seed_wall, 1),
                          "ratio": round(seed_wall / ours_wall, 1),
                          "ser_stream_runs_s": fast["ours"]["runs_s"], "seed_runs_s": fast["seed"]["runs_s"]}
    res["peak_rss_mb"] = {"ser_stream_run": round(ours_rss, 1), "seed_stream": round(seed_rss, 1)}
    res["mqtt_sink_on"] = broker is not None
    if broker is not None:
        res["fast_stream"]["ser_stream_with_mqtt_s"] = round(mqtt_wall, 2)
        res["fast_stream"]["ratio_with_mqtt"] = round(seed_wall / mqtt_wall, 1)
        res["peak_rss_mb"]["ser_stream_run_with_mqtt"] = round(mqtt_rss, 1)

    # 4. start to first result, real-time file input (window 3 s)
    log("start to first result")
    res["first_result_s"] = {
        "ser_stream": round(first_result_seconds([py, "-m", "ser_stream", "run", "--input", str(audio), "--format", "json"],
                                                 env=mqtt_env or run_env), 2),
        "seed": round(first_result_seconds([py, str(HERE / "seed_recipe.py"), "stream", str(audio), str(seed_model)]), 2),
        "window_s": 3.0,
    }

    if broker is not None:
        broker[0].terminate()
    h16 = res["per_hop_cpu"]["16k"]
    res["targets"] = {
        "per_hop_ratio_ge_20": h16["ratio_median"] >= 20,
        "per_hop_ratio_ge_15_with_voices": h16["ratio_median"] >= 15,  # issue 29: the embedding included
        "per_hop_median_lt_1ms": h16["ser_stream"]["median_ms"] < 1.0,
        "fast_stream_ratio_ge_10": res["fast_stream"]["ratio"] >= 10,
        "rss_le_100mb": max(res["peak_rss_mb"].get("ser_stream_run_with_mqtt", 0), res["peak_rss_mb"]["ser_stream_run"]) <= 100,
        "first_result_le_window_plus_1s": res["first_result_s"]["ser_stream"] <= 4.0,
        "classify_ratio_ge_5": res["classify_corpus"]["ratio"] >= 5,
    }
    # issue 12: per-hop CPU at least 25x below the seed's; issue 14: the whole --fast stream within
    # 1.5x of the per-hop compute (the stream's hops times the per-hop median)
    stream_hops = int(args.minutes * 60) - 2
    res["fast_stream"]["per_hop_compute_s"] = round(stream_hops * h16["ser_stream"]["median_ms"] / 1000, 2)
    res["fast_stream"]["whole_over_per_hop"] = round(ours_wall / res["fast_stream"]["per_hop_compute_s"], 2)
    res["targets"]["per_hop_ratio_ge_25"] = h16["ratio_median"] >= 25
    res["targets"]["whole_stream_within_1_5x_per_hop"] = res["fast_stream"]["whole_over_per_hop"] <= 1.5
    res["all_targets_met"] = all(res["targets"].values())

    rows = [
        ("per-hop CPU, 16 kHz, median / p95 (ms)", f"{h16['ser_stream']['median_ms']} / {h16['ser_stream']['p95_ms']}",
         f"{h16['seed']['median_ms']} / {h16['seed']['p95_ms']}", f"{h16['ratio_median']}x"),
        ("  of it: telling voices apart (speech hops only), median / p95 (ms)",
         f"{h16['ser_stream']['voice_alone']['median_ms']} / {h16['ser_stream']['voice_alone']['p95_ms']}"
         if "voice_alone" in h16["ser_stream"] else "(voices off: SER_STREAM_ADAPTATION__MAX_VOICES=6 turns them on)", "", ""),
        ("  seed recipe with 1 BLAS thread", "", f"{h16['seed_1_blas_thread']['median_ms']} / {h16['seed_1_blas_thread']['p95_ms']}",
         f"{h16['ratio_median_1_blas_thread']}x"),
        ("per-hop CPU, 48 kHz, median / p95 (ms)",
         f"{hop['48k']['ser_stream']['median_ms']} / {hop['48k']['ser_stream']['p95_ms']}",
         f"{hop['48k']['seed']['median_ms']} / {hop['48k']['seed']['p95_ms']}", f"{hop['48k']['ratio_median']}x"),
        (f"{args.minutes:.0f} min stream --fast, wall (s)", f"{ours_wall:.2f} ({secs / ours_wall:.0f}x rt)",
         f"{seed_wall:.2f} ({secs / seed_wall:.0f}x rt)", f"{seed_wall / ours_wall:.1f}x"),
        ("  against the per-hop compute (hops x median)", f"{res['fast_stream']['whole_over_per_hop']}x", "", ""),
        *([("  with the MQTT sink too, wall (s)", f"{mqtt_wall:.2f}", "", f"{seed_wall / mqtt_wall:.1f}x"),
           ("peak RSS with stdout + MQTT sinks (MB)", f"{mqtt_rss:.0f}", f"{seed_rss:.0f}", f"{seed_rss / mqtt_rss:.1f}x")]
          if broker is not None else []),
        ("peak RSS, stdout sink only (MB)", f"{ours_rss:.0f}", f"{seed_rss:.0f}", f"{seed_rss / ours_rss:.1f}x"),
        ("start to first result (s)", f"{res['first_result_s']['ser_stream']}", f"{res['first_result_s']['seed']}", ""),
        (f"classify {len(files)} files, {args.jobs} jobs (s)", f"{ours_cls:.2f}", f"{seed_cls:.2f} (features only)",
         f"{seed_cls / ours_cls:.1f}x"),
    ]
    print(f"{'measure':<44} {'ser-stream':>18} {'seed recipe':>26} {'ratio':>7}")
    for r in rows:
        print(f"{r[0]:<44} {r[1]:>18} {r[2]:>26} {r[3]:>7}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
