"""Print the Python requirements Home Assistant would install at its first start for the configuration
tests/home_assistant.py writes (its integrations, their dependencies, the MQTT integration, the login's
multi-factor modules), so that `./dev.sh test` installs them with Home Assistant itself.
Run with the Python of Home Assistant's own virtual environment."""

import json
from pathlib import Path

import homeassistant

COMPONENTS = Path(homeassistant.__file__).parent / "components"
# configuration.yaml's integrations, those Home Assistant always sets up, and the MQTT config entry
WANTED = ["homeassistant", "http", "api", "config", "onboarding", "logger", "automation", "mqtt",
          "frontend", "persistent_notification", "system_log", "repairs", "auth", "person"]


def manifest(domain: str) -> dict:
    path = COMPONENTS / domain / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    seen: set[str] = set()
    todo = list(WANTED)
    reqs: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        m = manifest(domain)
        reqs.update(m.get("requirements", []))
        todo.extend(m.get("dependencies", []) + m.get("after_dependencies", []))
    for module in ("totp", "notify"):  # the login flow's multi-factor modules
        try:
            mod = __import__(f"homeassistant.auth.mfa_modules.{module}", fromlist=["REQUIREMENTS"])
            reqs.update(getattr(mod, "REQUIREMENTS", []))
        except ImportError:
            pass
    print("\n".join(sorted(reqs)))


if __name__ == "__main__":
    main()
