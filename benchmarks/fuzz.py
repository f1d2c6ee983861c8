"""The fuzzers at their full counts (the test suite runs a budget of each): bad audio, configs, bundles, MQTT.

    .venv/bin/python benchmarks/fuzz.py [--audio 1000] [--configs 500] [--bundles 300] [--mqtt 500]

Runs tests/test_fuzz.py with those counts through pytest (the MQTT fuzzer needs mosquitto, as in the
suite) and prints each fuzzer's outcome table. Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio", type=int, default=1000)
    p.add_argument("--configs", type=int, default=500)
    p.add_argument("--bundles", type=int, default=300)
    p.add_argument("--mqtt", type=int, default=500)
    a = p.parse_args()
    code = 0
    for test, n in (("audio_files", a.audio), ("configs", a.configs), ("model_bundles", a.bundles),
                    ("mqtt_payloads", a.mqtt)):
        env = {**os.environ, "SER_STREAM_FUZZ_CASES": str(n)}
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            f"tests/test_fuzz.py::test_fuzz_{test}"], cwd=ROOT, env=env, capture_output=True, text=True)
        lines = [x for x in r.stdout.splitlines() if x.startswith("fuzz ") or "passed" in x or "failed" in x]
        print("\n".join(lines) if lines else r.stdout[-2000:])
        code = code or r.returncode
    return code


if __name__ == "__main__":
    sys.exit(main())
