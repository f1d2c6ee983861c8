"""Typed, frozen configuration tree.

Sources, strongest first: command-line flags (passed in by the CLI as a nested
dict), environment variables (``SER_STREAM_MQTT__HOST=broker``: prefix
``SER_STREAM_``, ``__`` between levels), the YAML file, the defaults below.
Unknown keys anywhere are errors. Nothing below the CLI sees a dict or argv:
they get a :class:`Config`.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .labels import LABELS as EMOTION_LABELS
from .errors import EX_CONFIG, SerStreamError

ENV_PREFIX = "SER_STREAM_"
# Environment variables with the prefix that are not config keys.
NON_CONFIG_ENV = {"SER_STREAM_CONFIG", "SER_STREAM_DATA_DIR", "SER_STREAM_FUZZ_CASES"}
MAX_CONFIG_CHARS = 256_000  # a real config is a few kB


class ConfigError(SerStreamError):
    """A configuration problem; the message names the file, key and value."""

    exit_code = EX_CONFIG


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AudioConfig(_Section):
    device: str | int | None = None
    """Input device name (substring) or index; null = the system default."""
    url: str | None = None
    """A network source instead of a device: rtsp://, rtsps://, http(s):// or srt:// (IP cameras,
    intercoms), decoded by ffmpeg. Credentials in it are never logged or printed."""

    @model_validator(mode="after")
    def _url_scheme(self) -> "AudioConfig":
        if self.url is not None:
            from .capture.network import UrlError, check_url

            try:
                check_url(self.url)
            except UrlError as exc:
                raise ValueError(str(exc)) from None
        return self
    sample_rate_hz: int | None = Field(default=None, ge=8000, le=384000)
    """Rate the device is opened at; null = the device's native rate. Audio is
    resampled to the model's rate on the way in."""
    channels: int = Field(default=1, ge=1, le=32)
    """Channels captured from the device; they are mixed to mono."""
    block_seconds: float = Field(default=0.05, gt=0.0, le=1.0)
    """Capture block length: the capture thread reads the device at least this much at a time."""
    buffer_seconds: float = Field(default=30.0, ge=5.0, le=600.0)
    """Ring buffer capacity; older unread audio is overwritten (and counted)."""
    stall_seconds: float = Field(default=5.0, ge=0.5, le=600.0)
    """A device that delivers no audio this long is closed, PortAudio re-initialised and the device reopened."""
    watchdog_budget_seconds: float = Field(default=60.0, ge=1.0, le=3600.0)
    """Reopen attempts keep the systemd watchdog fed this long; a capture dead for longer gets the service restarted."""
    wait_for_source: bool | None = None
    """A microphone or network source that is not there at start (a camera still booting after a
    power cut, a USB microphone enumerated late) is waited for, retried with backoff up to 30 s,
    instead of exiting 66 or 69. null = wait when running as a service (under systemd; the
    container sets true), exit at once in an interactive ``run``."""


class WindowConfig(_Section):
    length_seconds: float = Field(default=3.0, ge=0.5, le=30.0)
    hop_seconds: float = Field(default=1.0, ge=0.05, le=30.0)

    @model_validator(mode="after")
    def _hop_within_window(self) -> "WindowConfig":
        if self.hop_seconds > self.length_seconds:
            raise ValueError(
                f"hop_seconds ({self.hop_seconds}) must not exceed length_seconds ({self.length_seconds})"
            )
        return self


# The default absolute threshold. -60 dBFS hears a soft voice two or three metres from a
# microphone: at -50 dBFS, 83 of RAVDESS's 1440 clips (soft calm and sad ones, peaks near
# -40 dBFS, frames above -50 dBFS adding up to less than 0.5 s) were never heard, and the
# household protocol's UAR on one fold rose from 0.51 to 0.60 at -60 (models/README.md).
# Steady noise above it is still refused by the noise margin.
VAD_THRESHOLD_DBFS = -60.0
# The band whose level the noise margin is measured on (ser_stream/vad.py; models/README.md).
VAD_BAND_HZ: tuple[float, float] | None = (300.0, 3400.0)


class VadConfig(_Section):
    enabled: bool = True
    threshold_dbfs: float = Field(default=VAD_THRESHOLD_DBFS, ge=-100.0, le=0.0)
    """A 10 ms frame is active when its level exceeds this (dB full scale)..."""
    noise_margin_db: float = Field(default=10.0, ge=0.0, le=60.0)
    """...and exceeds the window's quietest frames by this much..."""
    band_hz: tuple[float, float] | None = VAD_BAND_HZ
    """...in this band of the spectrum, [low, high] Hz (null: the whole spectrum's level)."""
    min_active_seconds: float = Field(default=0.5, ge=0.0)
    """A window is speech when it holds at least this much active audio."""

    @field_validator("band_hz")
    @classmethod
    def _band(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0.0 <= v[0] < v[1] <= 8000.0:
            raise ValueError(f"band_hz {list(v)}: expected [low, high] with 0 <= low < high <= 8000 (Hz)")
        return v




class ModelConfig(_Section):
    path: Path | None = None
    """Model bundle (.npz, data only); null = the bundled default model."""
    household_prior: dict[str, float] | None = None
    """How often each emotion is heard in this home (relative weights; labels left out get 0.01).
    Applied to every window's probabilities by Bayes' rule, from the training corpus's label shares.
    null = off (the probabilities are the model's own)."""

    @model_validator(mode="after")
    def _prior_labels(self) -> "ModelConfig":
        if self.household_prior is not None:
            unknown = sorted(set(self.household_prior) - set(EMOTION_LABELS))
            if unknown:
                raise ValueError(f"household_prior: unknown label(s) {', '.join(unknown)}; use {', '.join(EMOTION_LABELS)}")
            bad = {k: v for k, v in self.household_prior.items() if not (v > 0 and v < float("inf"))}
            if bad:
                raise ValueError(f"household_prior: weights must be positive and finite, got {bad}")
        return self


class MoodConfig(_Section):
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    """A new mood must reach this smoothed probability..."""
    min_dwell_seconds: float = Field(default=6.0, ge=0.0)
    """...and stay the leading label for this long before the mood changes."""
    smoothing_seconds: float = Field(default=8.0, ge=0.0)
    """Time constant of the moving average of probabilities over speech windows."""
    idle_after_seconds: float = Field(default=60.0, gt=0.0)
    """After this much continuous silence the mood returns to ``idle``."""
    arousal_on: float | None = Field(default=0.45, ge=-1.0, le=1.0)
    """Smoothed arousal (the model's arousal head, [-1, 1]) from which the voice counts as agitated:
    the most probable agitated emotion becomes the mood without ``min_confidence``; null = off."""
    arousal_off: float | None = Field(default=0.1, ge=-1.0, le=1.0)
    """An agitated mood holds until the smoothed arousal falls below this (null = ``arousal_on``)."""

    @model_validator(mode="after")
    def _arousal_hysteresis(self) -> "MoodConfig":
        if self.arousal_off is not None and self.arousal_on is not None and self.arousal_off > self.arousal_on:
            raise ValueError(f"arousal_off ({self.arousal_off}) must not be above arousal_on ({self.arousal_on})")
        return self


class StdoutConfig(_Section):
    enabled: bool = True
    format: Literal["auto", "json", "text"] = "auto"
    """auto = text on a terminal, JSON lines otherwise."""


class OutputConfig(_Section):
    stdout: StdoutConfig = StdoutConfig()


class TlsConfig(_Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class HomeAssistantConfig(_Section):
    discovery: bool = True
    prefix: str = "homeassistant"


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    device_id: str | None = None
    base_topic: str = "ser_stream"
    username: str | None = None
    password: SecretStr | None = None
    """Prefer ``password_file`` or SER_STREAM_MQTT__PASSWORD; never logged or printed."""
    password_file: Path | None = None
    """File holding the password. A relative name is looked up in systemd's
    ``$CREDENTIALS_DIRECTORY`` first (LoadCredential=); with neither password
    nor file, ``$CREDENTIALS_DIRECTORY/mqtt_password`` is used when present."""
    client_id: str | None = None
    """null = ser-stream-<device_id>."""
    tls: TlsConfig = TlsConfig()
    keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    publish_windows: bool = True
    queue_size: int = Field(default=1000, ge=10, le=1_000_000)
    """Per-hop messages kept while the broker is away; the oldest are dropped (and counted) beyond it."""
    reconnect_max_seconds: int = Field(default=60, ge=1, le=3600)
    """Cap of the exponential reconnect backoff."""
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()


class AdaptationConfig(_Section):
    enabled: bool = True
    """Normalise each speech window with running statistics of the voices and microphone this
    stream hears, starting from the training population's (needs a model with an adaptive head)."""
    max_windows: int = Field(default=1000, ge=10, le=1_000_000)
    """Speech windows the statistics remember; older ones fade out exponentially."""
    max_voices: int = Field(default=0, ge=0, le=32)
    """Voices of the home told apart, each judged against its own calm (the least recently heard is
    forgotten beyond it); 0 (the default until the embedding follows a voice into anger:
    models/README.md) = one baseline for every voice. Needs a model with a voice embedding; 6 is
    what the measurements used."""
    arousal_spread: float | None = Field(default=1.0, gt=0.0, le=10.0)
    """Scale the relative arousal so that the household's own spread of arousal (the interquartile
    range of its recent speech's logits, once 60 windows were heard; floored at half this value)
    counts as this many logit units: distance, noise and a flat calibration shrink the range, a
    lively home widens it (models/README.md, "Homes of K voices"). null = unscaled."""
    persist: bool = True
    """Keep the statistics in ``state.directory`` across restarts (microphone input only;
    ``run --input`` adapts within the file and starts from the population)."""


class StateConfig(_Section):
    directory: Path | None = None
    """Where the mute switch and the adaptation statistics are persisted; null = $STATE_DIRECTORY (systemd),
    else $XDG_STATE_HOME/ser-stream or ~/.local/state/ser-stream."""


class MetricsConfig(_Section):
    enabled: bool = False
    """Serve Prometheus metrics over HTTP (nothing of it is loaded when off)."""
    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 keeps it on this machine (0.0.0.0 or :: for a Prometheus elsewhere)."""
    port: int = Field(default=9723, ge=1, le=65535)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(BaseSettings):
    """The whole configuration; frozen after validation."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    audio: AudioConfig = AudioConfig()
    window: WindowConfig = WindowConfig()
    vad: VadConfig = VadConfig()
    model: ModelConfig = ModelConfig()
    mood: MoodConfig = MoodConfig()
    adaptation: AdaptationConfig = AdaptationConfig()
    output: OutputConfig = OutputConfig()
    mqtt: MqttConfig = MqttConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags (init) > environment > YAML file > defaults
        return (init_settings, env_settings, _FileSource(settings_cls, _FILE_DATA.get()))


_FILE_DATA: ContextVar[dict[str, Any]] = ContextVar("_FILE_DATA", default={})


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed YAML file as a settings source."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{path}: {len(text)} characters; a config file is at most {MAX_CONFIG_CHARS}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def _env_overrides() -> list[str]:
    return sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in NON_CONFIG_ENV)


def _format_error(exc: ValidationError, source: str, env_names: list[str]) -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        secret = any("password" in str(p) for p in err["loc"])
        shown = "" if isinstance(value, dict) or secret else f" (value {value!r})"
        if isinstance(value, dict) and isinstance(value.get("url"), str) or any(str(p) == "url" for p in err["loc"]):
            from .capture.network import mask_url

            url = value.get("url") if isinstance(value, dict) else value
            msg = msg.replace(str(url), mask_url(str(url)))
            shown = f" (url {mask_url(str(url))!r})"
        lines.append(f"  {key}: {msg}{shown}")
    if env_names:
        lines.append("  environment overrides in effect: " + ", ".join(env_names))
    return "\n".join(lines)


def load_config(path: Path | None = None, *, overrides: dict[str, Any] | None = None) -> Config:
    """Build the frozen config: ``overrides`` (flags) > environment > ``path`` > defaults.

    Raises :class:`ConfigError` naming the file, key and value on any problem.
    """
    file_data = _read_yaml(path) if path is not None else {}
    token = _FILE_DATA.set(file_data)
    try:
        return Config(**(overrides or {}))
    except ValidationError as exc:
        source = f"file {path}" if path is not None else "defaults"
        raise ConfigError(_format_error(exc, source, _env_overrides())) from None
    finally:
        _FILE_DATA.reset(token)
