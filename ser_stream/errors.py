"""Errors that map to the documented exit codes (sysexits.h)."""

from __future__ import annotations

EX_OK = 0
EX_USAGE = 2
EX_DATAERR = 65  # unreadable audio
EX_NOINPUT = 66  # missing input
EX_UNAVAILABLE = 69  # audio device unavailable
EX_CONFIG = 78  # bad configuration or model

# Exit codes that will not fix themselves by a restart: a bad command line, a bad configuration or
# model. The systemd units name exactly these in RestartPreventExitStatus= (tests/test_systemd.py
# reads both). Every other failure (a device or stream that vanished, a source that is not there
# yet with waiting off) is worth another start.
PERMANENT_EXIT_CODES = frozenset({EX_USAGE, EX_CONFIG})


class SerStreamError(Exception):
    """Base: ``exit_code`` is what the CLI exits with; the message names the file, key or value."""

    exit_code = 1
    late = False  # True: the source is not there *yet* (a camera still booting); worth waiting for


class AudioReadError(SerStreamError):
    exit_code = EX_DATAERR


class InputMissingError(SerStreamError):
    exit_code = EX_NOINPUT


class DeviceError(SerStreamError):
    exit_code = EX_UNAVAILABLE


class SourceUnreachableError(InputMissingError):
    """A network source that does not answer (yet): refused, timed out, no route, no name."""

    late = True


class SourceAbsentError(DeviceError):
    """A device or stream that is not there (yet): a microphone not plugged in or enumerated, a
    camera's stream path not served yet. Not: a missing PortAudio or ffmpeg, refused credentials,
    a stream without audio (those will not come by waiting)."""

    late = True


class ModelError(SerStreamError):
    exit_code = EX_CONFIG
