"""Errors that map to the documented exit codes (sysexits.h)."""

from __future__ import annotations

EX_OK = 0
EX_USAGE = 2
EX_DATAERR = 65  # unreadable audio
EX_NOINPUT = 66  # missing input
EX_UNAVAILABLE = 69  # audio device unavailable
EX_CONFIG = 78  # bad configuration or model


class SerStreamError(Exception):
    """Base: ``exit_code`` is what the CLI exits with; the message names the file, key or value."""

    exit_code = 1


class AudioReadError(SerStreamError):
    exit_code = EX_DATAERR


class InputMissingError(SerStreamError):
    exit_code = EX_NOINPUT


class DeviceError(SerStreamError):
    exit_code = EX_UNAVAILABLE


class ModelError(SerStreamError):
    exit_code = EX_CONFIG
