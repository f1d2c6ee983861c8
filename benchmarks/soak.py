"""Soak: hours of audio through `ser-stream run --input - --fast` with MQTT on, the broker killed and
restarted every RESTART_EVERY minutes of stream time.

    .venv/bin/python benchmarks/soak.py [--hours 6] [--restart-every 10] [--data ../shared/data/ravdess]

The audio (RAVDESS clips of six actors with 0.5-6 s pauses, looped) is written to the daemon's stdin
as one 16-bit WAV. Before each broker restart the feeder waits until the daemon has printed every
window of what it was fed, stops the broker (a real mosquitto on 127.0.0.1 with persistence, so the
subscriber's QoS-1 session survives it), feeds one more minute while the broker is down, and starts
it again. A subscriber (clean_session=False, QoS 1) counts the retained state messages.

Prints the resident memory, open file descriptors and threads of the daemon at 1 minute of stream
time and at the end, windows emitted against expected, and state messages queued by the daemon
(its exit log) against received, then one JSON line (the last) with the figures and targets:
RSS growth under 5 MB, fds and threads flat, no window missing from stdout, no state message lost.
Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Mosquitto  # noqa: E402

SR = 16000


def proc_figures(pid: int) -> dict[str, int]:
    """Resident memory (kB), open file descriptors and threads of process ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def audio_blocks(data: Path, seconds: float, seed: int = 0):
    """int16 blocks (about 10 s each) of looped speech with pauses, ``seconds`` in all."""
    rng = np.random.default_rng(seed)
    clips = [sf.read(f, dtype="int16")[0] for a in ("01", "04", "08", "12", "15", "20")
             for f in sorted((data / f"Actor_{a}").glob("*.flac"))[::4]]
    total, left = int(seconds * SR), int(seconds * SR)
    buf: list[np.ndarray] = []
    have = 0
    while left > 0:
        part = clips[int(rng.integers(0, len(clips)))]
        pause = np.zeros(int(rng.uniform(0.5, 6.0) * SR), dtype=np.int16)
        for piece in (part, pause):
            piece = piece[:left]
            buf.append(piece)
            have += piece.size
            left -= piece.size
        if have >= 10 * SR or left <= 0:
            yield np.concatenate(buf)
            buf, have = [], 0
    assert left == 0 and total > 0


def wav_header(n_samples: int) -> bytes:
    data = n_samples * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16)
            + b"data" + struct.pack("<I", data))


class Subscriber:
    """Counts state messages on the daemon's state topic; a persistent QoS-1 session across broker restarts."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.states: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ser-stream-soak-subscriber",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, m: self.states.append(m.payload.decode("utf-8", "replace"))
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--minutes", type=float, help="instead of --hours (the test-sized run)")
    p.add_argument("--restart-every", type=float, default=10.0, metavar="MIN", help="minutes of stream time")
    p.add_argument("--down-seconds", type=float, default=60.0, help="stream time fed while the broker is down")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ravdess")
    p.add_argument("--workdir", type=Path, default=None)
    a = p.parse_args()
    seconds = (a.minutes * 60) if a.minutes is not None else a.hours * 3600
    work = a.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"ser-stream-soak-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(work / "broker", persistence=True)
    device = "soak"
    sub = Subscriber(broker.port, f"ser_stream/{device}/state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    env.update(broker.config_args(SER_STREAM_MQTT__DEVICE_ID=device, SER_STREAM_STATE__DIRECTORY=str(work / "state"),
                                  SER_STREAM_MQTT__RECONNECT_MAX_SECONDS="2"))
    err_path = work / "daemon.log"
    with open(err_path, "wb") as err:
        daemon = subprocess.Popen([sys.executable, "-m", "ser_stream", "run", "--input", "-", "--fast", "--format", "json"],
                                  cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    times: list[float] = []
    snapshots: dict[str, dict[str, int]] = {}

    def reader() -> None:
        for line in daemon.stdout:
            t = json.loads(line)["t"]
            times.append(t)

    th = threading.Thread(target=reader, daemon=True)
    th.start()

    def wait_drained(fed: float) -> None:
        deadline = time.monotonic() + 120
        while (not times or times[-1] < fed - 3.0 - 1e-6) and fed >= 3.0:
            assert daemon.poll() is None, err_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "the daemon stopped printing windows"
            time.sleep(0.02)

    n = int(seconds * SR)
    started = time.monotonic()
    # the header declares one second more than is fed, so that at the end the reader still waits for
    # input, as it does at the 1-minute snapshot (then stdin is closed: end of input)
    daemon.stdin.write(wav_header(n + SR))
    fed, next_restart, restarts = 0, a.restart_every * 60 * SR, 0
    down_at: int | None = None  # fed samples when the broker was stopped
    for block in audio_blocks(a.data, seconds):
        daemon.stdin.write(block.tobytes())
        fed += block.size
        if "1min" not in snapshots and fed >= 60 * SR:
            daemon.stdin.flush()
            wait_drained(fed / SR)  # idle, waiting for input, connected: the same state as at the end
            snapshots["1min"] = proc_figures(daemon.pid)
        if down_at is not None and fed >= down_at + a.down_seconds * SR:
            daemon.stdin.flush()
            wait_drained(fed / SR)  # what was heard while the broker was away is queued in the daemon
            broker.start()
            down_at = None
        elif down_at is None and fed >= next_restart and fed < n:
            daemon.stdin.flush()
            wait_drained(fed / SR)
            broker.stop()  # persistence written: the subscriber's session and its queued messages survive
            restarts += 1
            down_at = fed
            next_restart += a.restart_every * 60 * SR
    if down_at is not None:
        broker.start()
    daemon.stdin.flush()
    wait_drained(n / SR)
    time.sleep(3)  # let the MQTT client reconnect after the last restart
    snapshots["end"] = proc_figures(daemon.pid)
    daemon.stdin.close()
    rc = daemon.wait(120)
    th.join(10)
    wall = time.monotonic() - started
    log = err_path.read_text()
    m = re.search(r"MQTT: (\d+) state messages queued, (\d+) messages published, (\d+) still queued", log)
    queued = int(m.group(1)) if m else -1
    deadline = time.monotonic() + 15
    while len(sub.states) < queued and time.monotonic() < deadline:
        time.sleep(0.1)
    sub.close()
    broker.stop()
    expected = max(0, int(np.floor((n / SR - 3.0) + 1e-9)) + 1)
    gaps = int(np.sum(np.abs(np.diff(times) - 1.0) > 1e-6)) if len(times) > 1 else 0
    first, end = snapshots.get("1min", {}), snapshots["end"]
    figures = {
        "stream_seconds": n / SR, "wall_seconds": round(wall, 1), "broker_restarts": restarts, "exit_code": rc,
        "rss_kb_1min": first.get("rss_kb"), "rss_kb_end": end["rss_kb"],
        "rss_growth_kb": end["rss_kb"] - first.get("rss_kb", end["rss_kb"]),
        "fds_1min": first.get("fds"), "fds_end": end["fds"], "threads_1min": first.get("threads"),
        "threads_end": end["threads"], "windows_expected": expected, "windows_emitted": len(times), "window_gaps": gaps,
        "states_queued": queued, "states_received": len(sub.states), "tracebacks": log.count("Traceback"),
    }
    figures["targets_met"] = bool(
        rc == 0 and figures["rss_growth_kb"] < 5 * 1024 and figures["fds_end"] == figures["fds_1min"]
        and figures["threads_end"] == figures["threads_1min"] and len(times) == expected and gaps == 0
        and queued > 0 and len(sub.states) >= queued and figures["tracebacks"] == 0)
    for k, v in figures.items():
        print(f"{k:>18}: {v}")
    print(json.dumps(figures))
    return 0 if figures["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
