"""Command line: argparse, logging, signals and wiring.

The only module that reads argv or YAML; everything below gets a frozen
:class:`~ser_stream.config.Config`. Data goes to stdout, logs to stderr.
Exit codes: 0 ok, 2 usage, 65 unreadable audio, 66 missing input,
69 audio device unavailable, 78 bad configuration or model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config
from .errors import EX_OK, EX_USAGE, SerStreamError

log = logging.getLogger("ser_stream")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _config_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-c", "--config", type=Path, default=None,
                   help="YAML config file (default: $SER_STREAM_CONFIG, else built-in defaults)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None,
                   help="override logging.level")
    return p


def build_parser() -> argparse.ArgumentParser:
    cfg = _config_parent()
    parser = argparse.ArgumentParser(
        prog="ser-stream", description="Real-time speech emotion recognition: microphone or file -> mood on stdout and MQTT."
    )
    parser.add_argument("--version", action="version", version=f"ser-stream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[cfg], help="stream the microphone (or a file) and print one result per hop")
    run.add_argument("--input", metavar="AUDIO|-|URL",
                     help="stream this file (WAV/FLAC/OGG, any rate), '-' for a WAV on stdin, or a network source "
                          "(rtsp://, rtsps://, http(s)://, srt://; read in real time through ffmpeg)")
    run.add_argument("--fast", action="store_true", help="with --input: as fast as possible (no window is dropped)")
    run.add_argument("--device", metavar="DEV", help="input device index or name substring (see `ser-stream devices`)")
    run.add_argument("--format", choices=["json", "text"], help="json lines (default when stdout is not a terminal) or a live view")
    run.add_argument("--max-seconds", type=float, metavar="S", help="stop after S seconds of audio")
    run.add_argument("--model", type=Path, help="model bundle (overrides model.path)")

    cls = sub.add_parser("classify", parents=[cfg], help="classify audio files, one JSON object per file")
    cls.add_argument("audio", nargs="+", metavar="AUDIO")
    cls.add_argument("--model", type=Path, help="model bundle (overrides model.path)")
    cls.add_argument("--windows", action="store_true", help="one JSON object per window instead of per file")
    cls.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")

    tr = sub.add_parser("train", parents=[cfg],
                        help="train a model bundle on one or more corpora (RAVDESS-named audio or folders with labels.csv)")
    tr.add_argument("--data", type=Path, required=True, nargs="+", metavar="DIR",
                    help="corpus folders; with several, no corpus or label dominates and the confidence is "
                         "calibrated on held-out corpora (leave-one-corpus-out)")
    tr.add_argument("--out", type=Path, default=Path("ser-stream-model.npz"), metavar="FILE")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    tr.add_argument("--augment-copies", type=int, metavar="N",
                    help="random living-room copies of each clip (noise, reverb, gain, speed, band limits); 0 = none "
                         "(default: the recipe's, see models/README.md)")

    ev = sub.add_parser("evaluate", parents=[cfg],
                        help="speaker- or corpus-grouped evaluation on RAVDESS-named audio or labels.csv corpora")
    ev.add_argument("--data", type=Path, required=True, nargs="+", metavar="DIR")
    ev.add_argument("--model", type=Path,
                    help="score this trained bundle on every clip of DIR instead of cross-validating the recipe "
                         "(protocol 'fixed-model'; e.g. the shipped model on another corpus with RAVDESS-style names; "
                         "with --protocol speaker-adaptive its adaptive head, per-speaker statistics from other clips)")
    ev.add_argument("--protocol", choices=["leave-one-corpus-out", "household", "speaker-independent",
                                           "speaker-adaptive", "seed4"],
                    default="speaker-independent",
                    help="leave-one-corpus-out (the headline; needs several --data): each corpus scored by the recipe "
                         "trained on the others, through the household protocol; household: each speaker's clips "
                         "streamed through the daemon's own path with the configured adaptation, mood and prior, "
                         "plus false triggers on neutral talk and a quarrel per speaker")
    ev.add_argument("--report", type=Path, metavar="DIR", help="also write the JSON and a confusion-matrix PNG here")
    ev.add_argument("--save-models", type=Path, metavar="DIR",
                    help="leave-one-corpus-out: also write each fold's model, calibrated as its held-out corpus was "
                         "scored, as DIR/fold-CORPUS.npz (replay the homes with other settings through "
                         "--protocol household --model DIR/fold-CORPUS.npz --data CORPUS)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ev.add_argument("--degrade", choices=["noise10", "reverb"],
                    help="test on degraded audio: pink noise at 10 dB SNR, or reverberation (RT60 0.6 s)")
    ev.add_argument("--augment-copies", type=int, metavar="N", help="as for train")

    dev = sub.add_parser("devices", parents=[cfg], help="list audio input devices")
    dev.add_argument("--json", action="store_true", help="one JSON object per device")

    cm = sub.add_parser("convert-model", parents=[cfg],
                        help="convert an old joblib (pickle) bundle into the data-only .npz format; unpickling runs "
                             "code, so only convert a file you trust")
    cm.add_argument("old", type=Path, metavar="OLD")
    cm.add_argument("new", type=Path, metavar="NEW")

    ins = sub.add_parser("install-service", parents=[cfg],
                         help="write the systemd unit (template ser-stream@.service, or --user) and a starting config, "
                              "verify it, and print the systemctl commands")
    ins.add_argument("--user", action="store_true", help="a user unit, for a microphone in the desktop session")
    ins.add_argument("--room", default="livingroom", help="the instance (and MQTT device id) of the system unit")
    ins.add_argument("--unit-dir", type=Path, help="default /etc/systemd/system, or ~/.config/systemd/user")
    ins.add_argument("--config-dir", type=Path, help="default /etc/ser-stream, or ~/.config/ser-stream")
    ins.add_argument("--network", action="store_true",
                     help="the room listens to a camera or intercom (audio.url): its instance gets no sound devices "
                          "(implied when the room's config already has audio.url)")

    sub.add_parser("check-config", parents=[cfg], help="validate the config (and model) and print the effective config")
    sub.add_parser("reset-adaptation", parents=[cfg],
                   help="forget the adaptation statistics kept in state.directory (stop the daemon first, "
                        "or use the MQTT/Home Assistant button while it runs)")
    sub.add_parser("mqtt-unregister", parents=[cfg],
                   help="remove this device from Home Assistant (empty retained discovery configs) and clear its retained topics")
    return parser


def _load(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Config:
    path = args.config
    if path is None and os.environ.get("SER_STREAM_CONFIG"):
        path = Path(os.environ["SER_STREAM_CONFIG"])
    overrides = dict(overrides or {})
    if args.log_level:
        overrides["logging"] = {"level": args.log_level}
    return load_config(path, overrides=overrides)


def _setup_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from .capture import source_opener
    from .capture.waiting import wait_for_source, waits_for_source
    from .model import load_model
    from .moodstep import adapts
    from .service import Notifier, announce_waiting, persistence, run_stream
    from .sinks import SafeSinks
    from .sinks.stdout import StdoutSink

    overrides: dict[str, Any] = {}
    if args.device is not None:
        overrides["audio"] = {"device": args.device}
    if args.format:
        overrides["output"] = {"stdout": {"format": args.format}}
    if args.model is not None:
        overrides["model"] = {"path": args.model}
    from .capture.network import is_url

    if args.fast and not args.input:
        raise UsageError("--fast needs --input")
    if args.fast and is_url(args.input):
        raise UsageError("--fast is for files: a network stream is read in real time")
    config = _load(args, overrides)
    _setup_logging(config.logging.level)
    model = load_model(config.model.path)
    stop = threading.Event()
    _install_signals(stop)
    notifier = Notifier()
    open_source, source_name, live = source_opener(config, input=args.input, fast=args.fast)
    source, late = None, None
    try:
        source = open_source()
    except SerStreamError as exc:
        if not (exc.late and waits_for_source(config.audio.wait_for_source, live=live)):
            raise
        late = exc  # a service waits for it (below), with its sinks up: MQTT and discovery go ahead
    sinks = []
    if config.output.stdout.enabled:
        fmt = config.output.stdout.format
        if fmt == "auto":
            fmt = "text" if sys.stdout.isatty() else "json"
        sinks.append(StdoutSink(fmt=fmt, labels=model.labels, stop=stop))
    controls, adaptation_dir = persistence(config, model, live=live)
    adapting = adapts(config, model)
    mqtt = None
    if config.mqtt.enabled:
        from .sinks.mqtt import MqttSink

        mqtt = MqttSink(config.mqtt, labels=model.labels, on_mute=controls.set_muted, muted=controls.muted,
                        on_reset_adaptation=controls.request_adaptation_reset if adapting else None)
        sinks.append(mqtt)
    metrics = None
    if config.metrics.enabled:
        from .sinks.metrics import MetricsSink

        metrics = MetricsSink(config.metrics, labels=model.labels, model_sha256=model.sha256, model_path=str(model.path),
                              version=__version__, mqtt=mqtt)
        sinks.append(metrics)
    safe_sinks = SafeSinks(sinks)
    if late is not None:
        try:
            announce_waiting(safe_sinks, model=model, config=config, muted=controls.muted)
            source = wait_for_source(open_source, name=source_name, failed=late, stop=stop, heartbeat=notifier)
        except BaseException:
            safe_sinks.close()
            raise
        if source is None:  # stopped (SIGTERM) before the source came
            notifier.send("STOPPING=1")
            safe_sinks.close()
            return EX_OK
    log.info("ser-stream %s: model %s, window %.2f s, hop %.2f s, source %s (%d Hz)", __version__,
             model.path, config.window.length_seconds, config.window.hop_seconds, source.name, source.sample_rate_hz)
    stats = run_stream(config=config, model=model, source=source, sinks=safe_sinks, stop=stop, controls=controls,
                       max_seconds=args.max_seconds, adaptation_dir=adaptation_dir, metrics=metrics, notifier=notifier)
    log.info("stream ended: %.1f s of audio, %d windows (%d speech), %d samples lost to overflow",
             stats.seconds, stats.windows, stats.speech_windows, stats.overflow_samples)
    return EX_OK


def cmd_classify(args: argparse.Namespace) -> int:
    from .classify import classify_many
    from .model import load_model

    overrides = {"model": {"path": args.model}} if args.model is not None else {}
    config = _load(args, overrides)
    _setup_logging(config.logging.level)
    model = load_model(config.model.path)
    code = EX_OK
    for objs, error, exit_code in classify_many(args.audio, config=config, model=model, per_window=args.windows, jobs=args.jobs):
        for obj in objs:
            sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
        if error is not None:
            log.error("%s", error)
            code = code or exit_code
    return code


def cmd_train(args: argparse.Namespace) -> int:
    from .training.train import train_command

    config = _load(args)
    _setup_logging(config.logging.level)
    train_command(data_dirs=args.data, out=args.out, seed=args.seed, jobs=args.jobs, augment_copies=args.augment_copies)
    return EX_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .training.protocols import evaluate_command, evaluate_model

    config = _load(args)
    _setup_logging(config.logging.level)
    if args.model is not None:
        from .model import load_model

        if args.protocol == "seed4":
            raise UsageError("--model scores every clip of DIR; --protocol seed4 is a training split")
        if args.protocol == "leave-one-corpus-out":
            raise UsageError("--model scores every clip of DIR; --protocol leave-one-corpus-out trains its own models")
        summary = evaluate_model(load_model(args.model), data_dirs=args.data, jobs=args.jobs, report=args.report,
                                 degrade=args.degrade, seed=args.seed, adaptive=args.protocol == "speaker-adaptive",
                                 household=config if args.protocol == "household" else None)
        sys.stdout.write(json.dumps(summary) + "\n")
        return EX_OK
    if args.protocol == "leave-one-corpus-out" and len(args.data) < 2:
        raise UsageError("--protocol leave-one-corpus-out needs two or more corpora: --data DIR DIR ...")
    if args.save_models is not None and args.protocol != "leave-one-corpus-out":
        raise UsageError("--save-models is for --protocol leave-one-corpus-out")
    summary = evaluate_command(data_dirs=args.data, protocol=args.protocol, seed=args.seed, jobs=args.jobs,
                               report=args.report, degrade=args.degrade, augment_copies=args.augment_copies,
                               config=config, save_models=args.save_models)
    sys.stdout.write(json.dumps(summary) + "\n")
    return EX_OK


def cmd_devices(args: argparse.Namespace) -> int:
    from .capture.microphone import list_input_devices

    config = _load(args)
    _setup_logging(config.logging.level)
    devices = list_input_devices()
    if args.json:
        for d in devices:
            sys.stdout.write(json.dumps(d) + "\n")
    else:
        if not devices:
            sys.stdout.write("no input devices found\n")
        for d in devices:
            mark = "*" if d["default"] else " "
            sys.stdout.write(f"{mark} {d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['channels']} ch, {d['sample_rate_hz']} Hz)\n")
    return EX_OK


def cmd_convert_model(args: argparse.Namespace) -> int:
    from .model import convert_pickle

    config = _load(args)
    _setup_logging(config.logging.level)
    if args.new.suffix.lower() != ".npz":
        raise UsageError(f"{args.new}: the converted bundle must end in .npz")
    log.warning("unpickling %s: this runs whatever code the file holds; only convert files you trust", args.old)
    digest = convert_pickle(args.old, args.new)
    log.info("wrote %s (arrays sha256 %s)", args.new, digest)
    return EX_OK


def cmd_install_service(args: argparse.Namespace) -> int:
    from .install import install_service

    config = _load(args)
    _setup_logging(config.logging.level)
    for line in install_service(user=args.user, room=args.room, unit_dir=args.unit_dir, config_dir=args.config_dir,
                                network=args.network):
        sys.stdout.write(line + "\n")
    return EX_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    import yaml

    from .model import load_model

    config = _load(args)
    _setup_logging(config.logging.level)
    model = load_model(config.model.path)
    data = config.model_dump(mode="json")
    if data["audio"].get("url"):
        from .capture.network import mask_url

        data["audio"]["url"] = mask_url(data["audio"]["url"])
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    log.info("configuration is valid; model %s has %d labels", model.path, len(model.labels))
    return EX_OK


def cmd_reset_adaptation(args: argparse.Namespace) -> int:
    from .service import ADAPTATION_FILE, state_dir_of

    config = _load(args)
    _setup_logging(config.logging.level)
    path = state_dir_of(config) / ADAPTATION_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        log.info("%s does not exist: nothing to reset", path)
        return EX_OK
    except OSError as exc:
        from .config import ConfigError

        raise ConfigError(f"state.directory: cannot remove {path}: {exc}") from None
    log.info("removed %s: adaptation starts from the population at the next start", path)
    return EX_OK


def cmd_mqtt_unregister(args: argparse.Namespace) -> int:
    from .model import LABELS
    from .sinks.mqtt import base_topic_of, unregister

    config = _load(args)
    _setup_logging(config.logging.level)
    n = unregister(config.mqtt, labels=LABELS)
    log.info("cleared %d retained topics of %s", n, base_topic_of(config.mqtt))
    return EX_OK


COMMANDS = {
    "run": cmd_run,
    "classify": cmd_classify,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "devices": cmd_devices,
    "convert-model": cmd_convert_model,
    "install-service": cmd_install_service,
    "check-config": cmd_check_config,
    "reset-adaptation": cmd_reset_adaptation,
    "mqtt-unregister": cmd_mqtt_unregister,
}


class UsageError(SerStreamError):
    exit_code = EX_USAGE


# The run path multiplies small matrices: BLAS worker threads only add wake-ups and
# contend with the capture thread (and with classify's worker processes).
SINGLE_THREADED_COMMANDS = {"run", "classify"}
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in SINGLE_THREADED_COMMANDS and "numpy" not in sys.modules:
        for var in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(var, "1")
    _setup_logging("INFO")
    try:
        return COMMANDS[args.command](args)
    except SerStreamError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
