"""The installed package carries its default model: a wheel built from the checkout, installed into a
fresh virtual environment outside it, classifies and streams with no models/ folder in sight."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp / "dist")],
                   check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("ser_stream-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies come from this environment's site-packages (appended after the new one, and its
    # .pth files, among them the checkout's editable install, are not processed): no network needed
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
                    str(wheel)], check=True, capture_output=True)
    return venv


def test_wheel_contains_the_model_and_its_card(installed: Path):
    code = ("import ser_stream, ser_stream.model as m; "
            "print(ser_stream.__file__); print(m.DEFAULT_MODEL_PATH); print(m.load_model(None).sha256)")
    out = subprocess.run([str(installed / "bin" / "python"), "-c", code], cwd=installed, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out[0].startswith(str(installed)) and out[1].startswith(str(installed))  # not the checkout
    assert (Path(out[1]).parent / "README.md").is_file()
    from ser_stream.model import load_model

    assert out[2] == load_model(None).sha256


def test_installed_command_classifies_and_streams(installed: Path, clip: Path):
    exe = str(installed / "bin" / "ser-stream")
    r = subprocess.run([exe, "classify", str(clip)], cwd=installed, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["speech"] is True
    r = subprocess.run([exe, "run", "--input", str(clip), "--fast"], cwd=installed, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert any(json.loads(x)["speech"] for x in r.stdout.splitlines())


def test_installed_package_writes_the_service_from_its_own_units(installed: Path, tmp_path: Path):
    r = subprocess.run([str(installed / "bin" / "ser-stream"), "install-service", "--room", "hall", "--unit-dir",
                        str(tmp_path / "u"), "--config-dir", str(tmp_path / "c")], cwd=installed, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"ExecStart={installed / 'bin' / 'ser-stream'} run" in (tmp_path / "u" / "ser-stream@.service").read_text()
