"""The opt-in Prometheus endpoint, scraped during a real run; nothing of it loaded when off."""

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .conftest import ROOT, free_port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def value(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in:\n{text[:3000]}"
    return float(m.group(1))


def test_metrics_endpoint_during_a_run(long_wav: Path, tmp_path: Path):
    from ser_stream.model import load_model

    port = free_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SER_STREAM_")}
    env.update({"SER_STREAM_METRICS__ENABLED": "true", "SER_STREAM_METRICS__PORT": str(port)})
    err = tmp_path / "err.log"
    with open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "ser_stream", "run", "--input", str(long_wav), "--max-seconds", "9",
                                 "--format", "json"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=e)
    try:
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            try:
                text = scrape(port)
                if value(text, "ser_stream_windows_total") >= 4:
                    break
            except (OSError, AssertionError):
                pass
            time.sleep(0.2)
        assert value(text, "ser_stream_windows_total") >= 4, err.read_text()
        assert 1 <= value(text, "ser_stream_speech_windows_total") <= value(text, "ser_stream_windows_total")
        hops = value(text, "ser_stream_hop_processing_seconds_count")
        assert hops >= 4 and 0 < value(text, "ser_stream_hop_processing_seconds_sum") / hops < 0.5
        assert value(text, "ser_stream_ring_overflow_samples") == 0
        assert value(text, "ser_stream_capture_restarts") == 0
        assert re.search(r'^ser_stream_mood\{ser_stream_mood="(neutral|calm|happy|sad|angry|fearful|disgust|surprised|idle)"\} 1\.0$',
                         text, re.M)
        sha = load_model(None).sha256
        assert f'sha256="{sha}"' in text and 'ser_stream_model_info{' in text
        assert "ser_stream_arousal" in text and "ser_stream_mood_confidence" in text
        assert proc.wait(30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"metrics: Prometheus endpoint on http://127.0.0.1:{port}/metrics" in err.read_text()


def test_metrics_off_loads_nothing_and_a_busy_port_is_a_clear_error(long_wav: Path):
    code = ("import sys; sys.argv = ['ser-stream', 'run', '--input', sys.argv[1], '--fast', '--max-seconds', '4'];\n"
            "from ser_stream.cli import main\nrc = main()\n"
            "sys.stderr.write('LOADED=%s\\n' % ('prometheus_client' in sys.modules)); sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code, str(long_wav)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "LOADED=False" in r.stderr
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "ser_stream", "run", "--input", str(long_wav), "--fast"], cwd=ROOT,
                           capture_output=True, text=True,
                           env={**__import__("os").environ, "SER_STREAM_METRICS__ENABLED": "true",
                                "SER_STREAM_METRICS__PORT": str(port)})
    assert r.returncode == 69 and f"metrics: cannot listen on 127.0.0.1:{port}" in r.stderr
