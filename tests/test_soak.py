"""The soak benchmark, test-sized: 4 minutes of audio, the broker killed and restarted every minute."""

import json
import subprocess
import sys

from .conftest import ROOT, mosquitto_binary, need


def test_soak_four_minutes_with_three_broker_restarts(ravdess, tmp_path):
    need(mosquitto_binary() is not None, "mosquitto (Debian package mosquitto) is not installed")
    r = subprocess.run([sys.executable, "benchmarks/soak.py", "--minutes", "4", "--restart-every", "1",
                        "--down-seconds", "20", "--data", str(ravdess), "--workdir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    figures = json.loads(r.stdout.splitlines()[-1])
    print(figures)
    assert figures["broker_restarts"] == 3 and figures["exit_code"] == 0
    assert figures["windows_emitted"] == figures["windows_expected"] == 238 and figures["window_gaps"] == 0
    assert figures["states_received"] >= figures["states_queued"] > 0
    assert figures["fds_end"] == figures["fds_1min"] and figures["threads_end"] == figures["threads_1min"]
    assert figures["rss_growth_kb"] < 5 * 1024 and figures["tracebacks"] == 0
    assert r.returncode == 0 and figures["targets_met"]
