"""Fuzzing with figures: seeded bad audio, configs, model bundles and MQTT payloads.

Each must end in a documented exit code (through SerStreamError) or a logged rejection, never a
traceback, never a stopped daemon. The suite runs SER_STREAM_FUZZ_CASES cases of each kind (default 200);
`benchmarks/fuzz.py` runs the full counts. Case numbers reproduce a failure (seed 2026).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np

from ser_stream.classify import classify_file
from ser_stream.capture.file import FileSource
from ser_stream.config import Config, ConfigError, load_config
from ser_stream.errors import EX_CONFIG, EX_DATAERR, EX_NOINPUT, SerStreamError
from ser_stream.model import DEFAULT_MODEL_PATH, load_model
from ser_stream.service import run_stream
from ser_stream.sinks import SafeSinks

from . import fuzzcases
from .conftest import ROOT

SEED = 2026
CASES = int(os.environ.get("SER_STREAM_FUZZ_CASES", "200"))


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def publish_window(self, msg) -> None:
        self.lines.append(json.dumps(msg, allow_nan=False))  # what stdout and MQTT would send: strict JSON

    def publish_state(self, state) -> None:
        json.dumps(state.to_dict(), allow_nan=False)

    def publish_event(self, msg) -> None:
        json.dumps(msg, allow_nan=False)

    def close(self) -> None:
        pass


def audio_outcome(path: Path, *, model, config: Config, stream: bool) -> int:
    """The exit code `classify --windows` (or `run --input --fast`) would end with; raises on anything else."""
    try:
        if stream:
            run_stream(config=config, model=model, source=FileSource(path, realtime=False), sinks=SafeSinks([_Collect()]),
                       stop=threading.Event())
        else:
            for obj in classify_file(path, config=config, model=model, per_window=True):
                json.dumps(obj, allow_nan=False)
    except SerStreamError as exc:
        assert str(path) in str(exc), exc  # the message names the file
        return exc.exit_code
    return 0


def run_audio_fuzz(n: int, tmp: Path, clip: Path) -> collections.Counter:
    model, config = load_model(None), Config()
    outcomes: collections.Counter = collections.Counter()
    for i in range(n):
        kind, data = fuzzcases.audio_case(i, seed=SEED, clip=clip)
        path = tmp / f"case{i}.wav"
        path.write_bytes(data)
        code = audio_outcome(path, model=model, config=config, stream=i % 4 == 0)
        assert code in (0, EX_DATAERR, EX_NOINPUT), (i, kind, code)
        outcomes[(kind, code)] += 1
        path.unlink()
    return outcomes


def run_config_fuzz(n: int, tmp: Path) -> collections.Counter:
    base = (ROOT / "config.yaml").read_text()
    outcomes: collections.Counter = collections.Counter()
    for i in range(n):
        kind, text = fuzzcases.config_case(i, seed=SEED, base_text=base)
        path = tmp / f"config{i}.yaml"
        path.write_text(text, encoding="utf-8", errors="replace")
        try:
            load_config(path)
            code = 0
        except ConfigError as exc:
            assert str(path) in str(exc) and exc.exit_code == EX_CONFIG, exc
            code = exc.exit_code
        outcomes[(kind, code)] += 1
    return outcomes


def run_bundle_fuzz(n: int, tmp: Path) -> collections.Counter:
    outcomes: collections.Counter = collections.Counter()
    x = np.random.default_rng(0).normal(size=(2, load_model(None).features.vector_size))
    for i in range(n):
        kind, data = fuzzcases.bundle_case(i, seed=SEED, model=DEFAULT_MODEL_PATH)
        path = tmp / f"bundle{i}.npz"
        path.write_bytes(data)
        try:
            m = load_model(path)
            p = m.predict_proba(x)  # a bundle that loads must also run
            assert p.shape == (2, len(m.labels))
            code = 0
        except SerStreamError as exc:
            assert str(path) in str(exc) and exc.exit_code == EX_CONFIG, exc
            code = exc.exit_code
        outcomes[(kind, code)] += 1
    return outcomes


def report(name: str, outcomes: collections.Counter) -> None:
    total = sum(outcomes.values())
    by = ", ".join(f"{k}->{c}: {v}" for (k, c), v in sorted(outcomes.items()))
    print(f"\nfuzz {name}: {total} cases ({by})")


def test_fuzz_audio_files(clip: Path, tmp_path: Path):
    outcomes = run_audio_fuzz(max(CASES, 200), tmp_path, clip)
    report("audio", outcomes)
    assert sum(outcomes.values()) >= 200
    codes = {c for _, c in outcomes}
    assert 0 in codes and EX_DATAERR in codes  # both accepted and refused files were among them


def test_fuzz_configs(tmp_path: Path):
    outcomes = run_config_fuzz(max(CASES, 200), tmp_path)
    report("config", outcomes)
    assert {c for _, c in outcomes} == {0, EX_CONFIG}


def test_fuzz_model_bundles(tmp_path: Path):
    outcomes = run_bundle_fuzz(max(CASES, 200), tmp_path)
    report("bundle", outcomes)
    assert EX_CONFIG in {c for _, c in outcomes}


def test_fuzz_mqtt_payloads(broker, long_wav: Path, tmp_path: Path):
    from .test_mqtt import BASE, Daemon, Subscriber

    n = max(CASES, 200)
    sub = Subscriber(broker)
    d = Daemon(["--input", str(long_wav)], broker.config_args(), tmp_path)
    d.wait_lines(3)
    topics = [f"{BASE}/mute/set", f"{BASE}/adaptation/reset", "homeassistant/status"]
    for i in range(n):
        for topic in topics:
            sub.client.publish(topic, fuzzcases.mqtt_payload(i, seed=SEED), qos=0)
    sub.publish(f"{BASE}/mute/set", "OFF")  # leave it listening
    sub.wait_for(lambda: d.proc.poll() is not None or len(d.lines) >= 6, timeout=60)
    assert d.proc.poll() is None, d.log  # still running after every payload
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log
    sub.close()
    log = d.log
    assert "Traceback" not in log
    assert "MQTT: ignoring" in log  # rejections are logged
    print(f"\nfuzz mqtt: {n * len(topics)} payloads on {len(topics)} topics; daemon alive, exit 0")
