"""The container image (Containerfile) and the Home Assistant add-on (ha-addon/), with real podman.

The image is built once per run from a Debian base made here with mmdebstrap and tagged with the
name the Containerfile's FROM uses (no image registry is reachable here); podman runs with runc,
cgroupfs and no default ulimits (what this kind of machine allows) and the host's network (the
tests' servers are on loopback). Under CI=true a missing podman or mmdebstrap fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, free_port, need
from .test_audio_device import speech_then_silence
from .test_cli import check_window_line
from .test_mqtt import DEVICE, ENTITIES, Subscriber, discovery

BASE_IMAGE = re.search(r"^ARG BASE=(\S+)$", (ROOT / "Containerfile").read_text(), re.M).group(1)
IMAGE = "localhost/ser-stream:test"
ADDON_IMAGE = "localhost/ser-stream-addon:test"
ADDON = ROOT / "ha-addon"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


class Podman:
    """The podman command with this machine's settings. Owned by the test session."""

    def __init__(self, root: Path) -> None:
        conf = root / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.root = root

    def __call__(self, *args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        return r

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["podman", *args], env=self.env, **kw)

    def has_image(self, name: str) -> bool:
        return self("image", "exists", name, check=False).returncode == 0

    def build(self, context: Path, tag: str, *extra: str) -> None:
        """``podman build`` offline from local images. Where this machine reaches the package registries
        through a TLS-inspecting proxy, the build's pip is given the host's CA bundle (a build-time mount;
        the Containerfile stays the one users build)."""
        mounts: list[str] = []
        if HOST_CA.is_file():
            pip_conf = self.root / "pip.conf"
            pip_conf.write_text("[global]\ncert = /run/host-ca.crt\n")
            mounts = ["-v", f"{HOST_CA}:/run/host-ca.crt:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
        self("build", "--pull=never", *mounts, "-t", tag, *extra, str(context), timeout=1800)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    need(shutil.which("podman") is not None and shutil.which("runc") is not None,
         "podman and runc (Debian packages podman, runc) are not installed")
    p = Podman(tmp_path_factory.mktemp("podman"))
    make_base(p, BASE_IMAGE)
    return p


def make_base(p: Podman, name: str, arch: str | None = None) -> None:
    """A slim Debian like the official image (no documentation, locales or apt lists), made with
    mmdebstrap for ``arch`` (None: this machine's) and imported as ``name``, unless it exists."""
    if p.has_image(name):
        return
    need(shutil.which("mmdebstrap") is not None, "mmdebstrap (Debian package) is not installed")
    rootfs = p.root / f"rootfs-{arch or 'native'}.tar"
    subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", *([f"--architectures={arch}"] if arch else []),
                    "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-include=/usr/share/doc/*/copyright", "--dpkgopt=path-exclude=/usr/share/locale/*",
                    "--aptopt=APT::Install-Recommends \"false\"",
                    "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
                    "bookworm", str(rootfs), "http://deb.debian.org/debian"], check=True, capture_output=True)
    p("import", *(["--arch", arch] if arch else []), str(rootfs), name)
    rootfs.unlink()


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    podman.build(ROOT, IMAGE, "-f", str(ROOT / "Containerfile"))
    return IMAGE


@pytest.fixture(scope="session")
def addon_image(podman: Podman, image: str) -> str:
    podman.build(ADDON, ADDON_IMAGE, "--build-arg", f"BUILD_FROM={image}")
    return ADDON_IMAGE


def lines_of(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def test_image_streams_a_file(podman: Podman, image: str, long_wav: Path):
    r = podman("run", "--rm", "--network", "host", "-v", f"{long_wav}:/in.wav:ro", image,
               "run", "--input", "/in.wav", "--fast")
    windows = lines_of(r.stdout)
    assert len(windows) == 28, r.stderr  # t = 3 .. 30
    for w in windows:
        check_window_line(w)
    assert sum(w["speech"] for w in windows) >= 20
    assert "stream ended" in r.stderr


IMAGE_MAX_BYTES = 300_000_000  # 277,100,112 measured 2026-12-05 on the mmdebstrap base (877,009,938, then 525,034,784 before)


def test_the_image_leaves_out_what_the_daemon_never_loads(podman: Podman, image: str):
    """Issue 27: scipy but its FFT module and numpy's tests are gone, and ffmpeg is the image's own
    build (container/build-ffmpeg.sh) instead of Debian's package and its codec libraries; the FFT
    module still loads on its own, ffmpeg starts with its network protocols; a late source is waited
    for (issue 28)."""
    size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
    assert size <= IMAGE_MAX_BYTES, size
    env = podman("image", "inspect", image, "--format", "{{json .Config.Env}}").stdout
    assert "SER_STREAM_AUDIO__WAIT_FOR_SOURCE=true" in env
    r = podman("run", "--rm", "--entrypoint", "/opt/ser-stream/bin/python", image, "-c",
               "import ser_stream.fft as f, importlib.util as u, pathlib as p; "
               "print(f.BACKEND, (p.Path(u.find_spec('scipy').origin).parent / 'special').exists())")
    assert r.stdout.split() == ["pypocketfft", "False"], r.stdout + r.stderr
    r = podman("run", "--rm", "--entrypoint", "ffmpeg", image, "-hide_banner", "-protocols")
    assert {"http", "https", "srt", "tls", "tcp", "rtp"} <= set(r.stdout.split()), r.stdout  # rtsp is a demuxer over tcp/rtp
    r = podman("run", "--rm", "--entrypoint", "sh", image, "-c",
               "command -v ffmpeg; ls /usr/lib/*-linux-gnu | grep -c -e '^libav' -e '^libLLVM' || true")
    assert r.stdout.split() == ["/usr/local/bin/ffmpeg", "0"], r.stdout + r.stderr  # no codec libraries came back


NETWORK_SOURCES = {  # what cameras, intercoms, relays and radio streams send, as the image's ffmpeg must read it
    "rtsp-l16": None,  # GStreamer's RTSP server, 16 kHz L16 over RTP
    "http-wav": ("pcm_s16le", "wav", "live.wav"),
    "http-aac-mpegts": ("aac", "mpegts", "live.ts"),  # a camera relay's usual stream
    "http-opus-ogg": ("libopus", "ogg", "live.opus"),
    "http-mp3": ("libmp3lame", "mp3", "live.mp3"),  # an Icecast-style stream
    "srt-aac-mpegts": ("aac", "mpegts", None),
}


@pytest.mark.parametrize("kind", list(NETWORK_SOURCES))
def test_the_image_reads_network_sources(podman: Podman, image: str, long_wav: Path, tmp_path: Path, kind: str):
    """Issue 27: the image's own ffmpeg (built with only what the daemon asks of it) reads the network
    sources and codecs users have, served by real servers on loopback: speech is heard."""
    from .test_network import HttpAudioServer, RtspAudioServer

    server = srt = None
    try:
        if kind == "rtsp-l16":
            server = RtspAudioServer(long_wav, tmp_path)
            url = server.url
        elif kind.startswith("srt"):
            port = free_port()
            codec, container, _ = NETWORK_SOURCES[kind]
            srt = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i",
                                    str(long_wav), "-c:a", codec, "-f", container,
                                    f"srt://127.0.0.1:{port}?mode=listener"], stderr=subprocess.PIPE)
            url = f"srt://127.0.0.1:{port}"  # UDP: the daemon waits for it (the image's wait_for_source)
        else:
            server = HttpAudioServer(long_wav, tmp_path, encode=NETWORK_SOURCES[kind])
            url = server.url()
        r = podman("run", "--rm", "--network", "host", image, "run", "--input", url, "--max-seconds", "12",
                   timeout=120)
    finally:
        if server is not None:
            server.stop()
        if srt is not None:
            srt.kill()
            srt.wait(5)
    windows = lines_of(r.stdout)
    assert len(windows) >= 8, r.stderr[-3000:]
    for w in windows:
        check_window_line(w)
    assert sum(w["speech"] for w in windows) >= 4, r.stderr[-3000:]
    assert "through ffmpeg" in r.stderr, r.stderr[-3000:]


def test_config_from_the_mounted_file_and_the_environment(podman: Podman, image: str, tmp_path: Path):
    (tmp_path / "config.yaml").write_text("mqtt:\n  device_id: fromfile\nwindow:\n  hop_seconds: 0.5\n")
    tmp_path.chmod(0o700)
    unreadable = podman("run", "--rm", "--network", "host", "-v", f"{tmp_path}:/config:ro", image, "check-config")
    assert "/config is not readable by ser-stream" in unreadable.stderr  # said, not silently ignored
    tmp_path.chmod(0o755)
    (tmp_path / "config.yaml").chmod(0o644)
    r = podman("run", "--rm", "--network", "host", "-v", f"{tmp_path}:/config:ro",
               "-e", "SER_STREAM_WINDOW__HOP_SECONDS=0.25", image, "check-config")
    effective = yaml.safe_load(r.stdout)
    assert effective["mqtt"]["device_id"] == "fromfile"  # the file
    assert effective["window"]["hop_seconds"] == 0.25  # the environment over the file
    bad = podman("run", "--rm", "--network", "host", "-e", "SER_STREAM_WINDOW__HOP_SECONDS=fast", image, "check-config",
                 check=False)
    assert bad.returncode == 78 and "hop_seconds" in bad.stderr


def test_a_pulse_microphone_through_the_socket(podman: Podman, image: str, pulse, wav48: Path, tmp_path: Path):
    err = tmp_path / "stderr.log"
    with open(err, "wb") as e:
        proc = podman.popen("run", "--rm", "--network", "host", "-v", f"{pulse.socket}:/run/pulse/native",
                            "-e", "PULSE_SERVER=unix:/run/pulse/native", "-e", f"PULSE_SOURCE={pulse.env['PULSE_SOURCE']}",
                            image, "run", "--device", "pulse", "--max-seconds", "12", stdout=subprocess.PIPE, stderr=e)
        deadline = time.monotonic() + 60
        while b"capturing" not in err.read_bytes():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        assert pulse.play(wav48).wait(20) == 0
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.read_text()
    speech = [w["speech"] for w in lines_of(out.decode())]
    assert len(speech) == 10, err.read_text()
    speech_then_silence(speech)


def test_mqtt_discovery_then_offline_on_podman_stop_as_a_non_root_user(podman: Podman, image: str, broker,
                                                                      long_wav: Path):
    sub = Subscriber(broker)
    name = f"ser-stream-test-{os.getpid()}"
    podman("run", "-d", "--name", name, "--network", "host", "-v", f"{long_wav}:/in.wav:ro",
           "-e", "SER_STREAM_MQTT__ENABLED=true", "-e", "SER_STREAM_MQTT__HOST=127.0.0.1",
           "-e", f"SER_STREAM_MQTT__PORT={broker.port}", "-e", f"SER_STREAM_MQTT__DEVICE_ID={DEVICE}",
           image, "run", "--input", "/in.wav")
    try:
        sub.wait_for(lambda: len(discovery(sub)) == len(ENTITIES))
        sub.wait_for(lambda: sub.on(f"ser_stream/{DEVICE}/state"))
        status = podman("exec", name, "cat", "/proc/1/status").stdout
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
        assert uid != "0" and "ser-stream" in podman("exec", name, "id", "-un").stdout
        podman("stop", "-t", "10", name)
        code = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        logs = podman("logs", name).stderr
        assert code == "0", logs  # SIGTERM is a clean stop
        assert "MQTT:" in logs and "state messages queued" in logs  # offline sent by close(), not the last will
        sub.wait_for(lambda: [p for _, p, _ in sub.on(f"ser_stream/{DEVICE}/availability")][-1:] == ["offline"])
    finally:
        podman("rm", "-f", name, check=False)
        sub.close()


# ------------------------------------------------------------------ the add-on


class FakeSupervisor:
    """The Supervisor's ``/services/mqtt`` endpoint on loopback (no Supervisor runs outside Home Assistant OS)."""

    def __init__(self, token: str, service: dict) -> None:
        outer = self
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_error(401)
                    return
                body = json.dumps({"result": "ok", "data": service}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


OPTIONS = {"device_id": "kitchen", "source": "microphone", "microphone": "", "adaptation": True, "log_level": "info",
           "mqtt_host": "", "mqtt_port": 1883, "mqtt_username": "", "mqtt_password": ""}


def addon_check_config(podman: Podman, addon_image: str, tmp_path: Path, options: dict, *env: str) -> tuple[dict, str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "options.json").write_text(json.dumps(options))
    args = [x for e in env for x in ("-e", e)]
    r = podman("run", "--rm", "--network", "host", "-v", f"{data}:/data", *args, addon_image, "check-config")
    return yaml.safe_load(r.stdout), r.stderr


def test_addon_options_with_the_supervisors_mqtt_service(podman: Podman, addon_image: str, tmp_path: Path):
    service = {"host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1",
               "username": "addons", "password": "service-secret-9"}
    supervisor = FakeSupervisor("token-1", service)
    try:
        effective, err = addon_check_config(
            podman, addon_image, tmp_path, {**OPTIONS, "mqtt_host": "ignored.lan", "log_level": "debug"},
            "SUPERVISOR_TOKEN=token-1", f"SER_STREAM_SUPERVISOR_URL=http://127.0.0.1:{supervisor.port}")
    finally:
        supervisor.close()
    assert supervisor.requests == ["/services/mqtt"]
    mqtt = effective["mqtt"]
    assert (mqtt["enabled"], mqtt["host"], mqtt["port"], mqtt["username"]) == (True, "core-mosquitto", 1883, "addons")
    assert mqtt["device_id"] == "kitchen" and mqtt["tls"]["enabled"] is False
    assert mqtt["password"] == "**********"  # it reached the daemon (from the environment) ...
    assert "service-secret-9" not in err and "service-secret-9" not in json.dumps(effective)  # ... and no log
    assert effective["audio"]["device"] is None and effective["audio"]["url"] is None  # Home Assistant's audio
    assert effective["adaptation"]["enabled"] is True and effective["logging"]["level"] == "DEBUG"
    assert "from the Supervisor's MQTT service" in err
    # the configuration file in /data holds no secret; the state lives under /data
    assert "service-secret-9" not in (tmp_path / "data" / "ser-stream.yaml").read_text()
    assert (tmp_path / "data" / "ser-stream").is_dir()


def test_addon_options_without_an_mqtt_service(podman: Podman, addon_image: str, tmp_path: Path):
    effective, err = addon_check_config(
        podman, addon_image, tmp_path,
        {**OPTIONS, "source": "rtsp://192.168.1.20:554/stream1", "adaptation": False, "mqtt_host": "broker.lan",
         "mqtt_port": 8883, "mqtt_username": "ha", "mqtt_password": "option-secret-7"})
    mqtt = effective["mqtt"]
    assert (mqtt["enabled"], mqtt["host"], mqtt["port"], mqtt["username"]) == (True, "broker.lan", 8883, "ha")
    assert mqtt["password"] == "**********" and "option-secret-7" not in err
    assert effective["audio"]["url"] == "rtsp://192.168.1.20:554/stream1"
    assert effective["adaptation"]["enabled"] is False
    assert "from the add-on's options" in err

    effective, err = addon_check_config(podman, addon_image, tmp_path, {**OPTIONS, "microphone": "USB"})
    assert effective["mqtt"]["enabled"] is False and "MQTT is off" in err
    assert effective["audio"]["device"] == "USB"


def test_addon_runs_the_daemon_as_the_supervisor_starts_it(podman: Podman, addon_image: str, pulse, broker,
                                                           wav48: Path, tmp_path: Path):
    """The add-on's own command (run), started as root like the Supervisor does, with Home Assistant's
    audio stood in for by the host's PulseAudio (its socket, PULSE_SERVER and an asound.conf whose
    default device is PulseAudio, which is what `audio: true` provides) and the MQTT broker from the
    options: discovery for the room, speech heard, the daemon as ser-stream, state kept in /data."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "options.json").write_text(json.dumps({**OPTIONS, "mqtt_host": "127.0.0.1", "mqtt_port": broker.port}))
    asound = tmp_path / "asound.conf"
    asound.write_text("pcm.!default { type pulse }\nctl.!default { type pulse }\n")
    sub = Subscriber(broker)
    name = f"ser-stream-addon-test-{os.getpid()}"
    podman("run", "-d", "--name", name, "--network", "host", "-v", f"{data}:/data",
           "-v", f"{pulse.socket}:/run/audio/pulse.sock", "-e", "PULSE_SERVER=unix:/run/audio/pulse.sock",
           "-e", f"PULSE_SOURCE={pulse.env['PULSE_SOURCE']}", "-v", f"{asound}:/etc/asound.conf:ro", addon_image)
    try:
        base = "ser_stream/kitchen"
        sub.wait_for(lambda: len([t for t in {m[1] for m in sub.messages} if t.startswith("homeassistant/")
                                  and "ser_stream_kitchen" in t]) == len(ENTITIES), timeout=60)
        sub.wait_for(lambda: sub.on(f"{base}/state"), timeout=30)
        assert pulse.play(wav48).wait(20) == 0
        sub.wait_for(lambda: any(json.loads(p)["speech"] for _, p, _ in sub.on(f"{base}/state")), timeout=30)
        assert podman("exec", name, "id", "-un").stdout.strip() == "root"  # podman exec: the container's user
        status = podman("exec", name, "cat", "/proc/1/status").stdout
        assert re.search(r"^Uid:\s+(\d+)", status, re.M).group(1) != "0"  # the daemon dropped to ser-stream
        podman("stop", "-t", "10", name)
        logs = podman("logs", name).stderr
        assert podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip() == "0", logs
        assert "MQTT broker 127.0.0.1" in logs and "from the add-on's options" in logs
        sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{base}/availability")][-1:] == ["offline"])
        kept = data / "ser-stream" / "kitchen"
        assert (kept / "adaptation.npz").is_file(), sorted(p.name for p in (data / "ser-stream").rglob("*"))
    finally:
        podman("rm", "-f", name, check=False)
        sub.close()


def test_addon_refuses_a_bad_source(podman: Podman, addon_image: str, tmp_path: Path):
    (tmp_path / "options.json").write_text(json.dumps({**OPTIONS, "source": "ftp://x"}))
    r = podman("run", "--rm", "-v", f"{tmp_path}:/data", addon_image, "check-config", check=False)
    assert r.returncode != 0 and "option source" in r.stderr and "ftp://x" in r.stderr


def test_addon_folder_is_complete_and_its_options_mapped():
    """What an add-on repository needs, every option with a schema entry, a translation, and a use in run.py."""
    for name in ("config.yaml", "build.yaml", "Dockerfile", "run.py", "DOCS.md", "README.md", "translations/en.yaml"):
        assert (ADDON / name).is_file(), name
    assert (ROOT / "repository.yaml").is_file()
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    for key in ("name", "version", "slug", "description", "arch", "options", "schema"):
        assert key in config, key
    assert set(config["arch"]) == {"amd64", "aarch64"} and config["audio"] is True and "mqtt:want" in config["services"]
    build = yaml.safe_load((ADDON / "build.yaml").read_text())
    assert set(build["build_from"]) == set(config["arch"])
    assert set(config["options"]) == set(config["schema"]) == set(OPTIONS)
    translated = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())["configuration"]
    assert set(translated) == set(config["options"])
    run_py = (ADDON / "run.py").read_text()
    for key in config["options"]:
        assert f'"{key}"' in run_py, f"option {key} is not read by run.py"
    from ser_stream import __version__

    assert config["version"] == __version__
    assert all(ref.endswith(f":{__version__}") for ref in build["build_from"].values())  # the image of this release


# The aarch64 image (a Raspberry Pi 4/5), built and run here under emulation: Debian's qemu-user-static
# registered with binfmt_misc (README "Run in a container"). About 27 minutes on 2 cores (ffmpeg is
# compiled under emulation), so it runs when asked: SER_STREAM_TEST_ARM64=1.
ARM64_BASE = "localhost/debian-arm64:bookworm-slim"
ARM64_IMAGE = "localhost/ser-stream:test-arm64"


def lines_of_run(podman: Podman, image: str, audio: Path, *platform: str) -> list[dict]:
    r = podman("run", "--rm", *platform, "-v", f"{audio}:/a.wav:ro", image, "run", "--input", "/a.wav", "--fast",
               "--format", "json", timeout=1200)
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.mark.skipif(os.environ.get("SER_STREAM_TEST_ARM64") != "1", reason="the arm64 image takes ~27 min under "
                    "emulation (ffmpeg is compiled): SER_STREAM_TEST_ARM64=1 runs it")
def test_the_arm64_image_streams_as_the_amd64_one(podman: Podman, image: str, long_wav: Path, tmp_path: Path):
    need(Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file()
         and "enabled" in Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").read_text(),
         "no aarch64 emulation: apt-get install qemu-user-static binfmt-support arch-test, then "
         "update-binfmts --enable qemu-aarch64 (binfmt_misc mounted)")
    make_base(podman, ARM64_BASE, "arm64")
    podman.build(ROOT, ARM64_IMAGE, "--platform", "linux/arm64", "--build-arg", f"BASE={ARM64_BASE}",
                 "-f", str(ROOT / "Containerfile"))
    assert podman("image", "inspect", ARM64_IMAGE, "--format", "{{.Architecture}}").stdout.strip() == "arm64"
    native = lines_of_run(podman, image, long_wav)
    emulated = lines_of_run(podman, ARM64_IMAGE, long_wav, "--platform", "linux/arm64")
    assert len(native) == len(emulated) > 20
    for a, b in zip(native, emulated):
        assert (a["t"], a["speech"], a["label"], a["mood"]) == (b["t"], b["speech"], b["label"], b["mood"])
        for key in ("confidence", "arousal", "valence"):  # printed with 3 decimals: one unit of the last
            assert (a[key] is None) == (b[key] is None) and (a[key] is None or abs(a[key] - b[key]) <= 1e-3 + 1e-9)
        assert (a["probs"] is None) == (b["probs"] is None)
        if a["probs"] is not None:
            assert max(abs(a["probs"][k] - b["probs"][k]) for k in a["probs"]) <= 1e-4 + 1e-9  # the JSON's rounding
    podman.build(ADDON, ADDON_IMAGE + "-arm64", "--platform", "linux/arm64", "--build-arg", f"BUILD_FROM={ARM64_IMAGE}")
    effective, err = addon_check_config(podman, ADDON_IMAGE + "-arm64", tmp_path, {**OPTIONS, "microphone": "USB"})
    assert effective["audio"]["device"] == "USB" and "MQTT is off" in err
