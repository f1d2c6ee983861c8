"""A real Home Assistant Core for the tests: its own virtual environment (made by `./dev.sh test`
under ``.venv-ha/<release>``), started on loopback against a test mosquitto, onboarded through
its REST API as a new user would (owner account, then a token), with the MQTT integration added
through the config flow the UI uses. Everything is asked of Home Assistant's own REST API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import ROOT, Mosquitto, free_port
from .servers import wait_until_listening

HA_ROOT = Path(os.environ.get("SER_STREAM_HA_DIR", ROOT / ".venv-ha"))


def wanted_releases() -> list[str]:
    """The Home Assistant releases `./dev.sh test` installs (its HA_RELEASES)."""
    text = (ROOT / "dev.sh").read_text()
    line = re.search(r"^HA_RELEASES=\((.*)\)$", text, re.M)
    assert line, "dev.sh: no HA_RELEASES=(...) line"
    return [entry.split(":")[0] for entry in re.findall(r'"([^"]+)"', line.group(1))]


def installed(release: str) -> bool:
    return (HA_ROOT / release / ".installed").is_file() and (HA_ROOT / release / "bin" / "hass").is_file()


def readme_automations() -> str:
    """The README's example automations (the YAML block after "example automations")."""
    text = (ROOT / "README.md").read_text()
    start = text.index("example automations")
    block = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert block, "README: no ```yaml block after 'example automations'"
    return block.group(1)


CONFIGURATION = """\
homeassistant:
  name: ser-stream test
  latitude: 52.2
  longitude: 21.0
  elevation: 100
  unit_system: metric
  time_zone: UTC
  country: PL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
automation: !include automations.yaml
"""


class HomeAssistant:
    """One Home Assistant Core process and its configuration folder. Owned by the test module."""

    def __init__(self, release: str, root: Path, *, broker: Mosquitto) -> None:
        self.release = release
        self.hass = HA_ROOT / release / "bin" / "hass"
        self.root = root
        self.config = root / "config"
        self.config.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (self.config / "automations.yaml").write_text(readme_automations())
        self.log_path = self.config / "home-assistant.log"
        self.token: str | None = None
        self.proc: subprocess.Popen | None = None
        self.broker = broker  # the test mosquitto both Home Assistant and the daemon use

    # ------------------------------------------------------------ process
    def start(self, timeout: float = 240) -> None:
        out = open(self.root / "hass.out", "ab")
        self.proc = subprocess.Popen([str(self.hass), "-c", str(self.config), "--log-file", str(self.log_path)],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        wait_until_listening(self.port, proc=self.proc, what=f"Home Assistant {self.release}", log=self.root / "hass.out",
                             timeout=timeout)  # then its API, which answers once setup is done
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"Home Assistant {self.release} exited: {self.tail()}"
            try:
                if self.request("GET", "/api/onboarding", auth=False) is not None and self._running():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"Home Assistant {self.release} did not start in {timeout} s: {self.tail()}")

    def _running(self) -> bool:
        if self.token is None:
            return True  # before onboarding the API answers only once setup is done
        return self.request("GET", "/api/config").get("state") == "RUNNING"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n: int = 30) -> str:
        text = (self.root / "hass.out").read_text(errors="replace") if (self.root / "hass.out").exists() else ""
        return "\n".join(text.splitlines()[-n:])

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []

    # ------------------------------------------------------------ REST
    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False) -> Any:
        """JSON from Home Assistant's REST API; None for 404."""
        headers = {}
        data = None
        if body is not None:
            if form:
                data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if "json" in ctype else raw.decode()

    def onboard(self) -> None:
        """Create the owner account as the onboarding page does, and trade its code for a token."""
        client_id = self.url + "/"
        code = self.request("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "Test", "username": "test", "password": "ser-stream-test-1",
            "language": "en"}, auth=False)["auth_code"]
        self.token = self.request("POST", "/auth/token", {"grant_type": "authorization_code", "code": code,
                                                          "client_id": client_id}, auth=False, form=True)["access_token"]

    def add_mqtt(self) -> None:
        """Settings > Devices & services > Add integration > MQTT, broker on loopback."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        answer = {"broker": "127.0.0.1", "port": self.broker.port}
        while flow["type"] == "form":  # the broker step (older releases may ask again with the same fields)
            flow = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer)
        assert flow["type"] == "create_entry", flow

    def state(self, entity_id: str) -> dict | None:
        return self.request("GET", f"/api/states/{entity_id}")

    def states(self, containing: str) -> dict[str, dict]:
        """The states of every entity whose id contains ``containing``."""
        return {s["entity_id"]: s for s in self.request("GET", "/api/states") if containing in s["entity_id"]}

    def call(self, domain: str, service: str, entity_id: str) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", {"entity_id": entity_id})

    def template(self, text: str) -> str:
        return self.request("POST", "/api/template", {"template": text})

    def wait(self, predicate, timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.25)
        raise AssertionError(f"Home Assistant {self.release}: timed out waiting for {what}; last: {last!r}")
