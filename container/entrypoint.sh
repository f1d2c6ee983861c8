#!/bin/sh
# The container's entry point: `ser-stream ARGS`, reading /config/config.yaml when one is mounted
# (unless SER_STREAM_CONFIG names another file). exec: the daemon is PID 1 and gets SIGTERM itself.
set -eu
if [ -z "${SER_STREAM_CONFIG:-}" ]; then
  if [ -d /config ] && { ! [ -r /config ] || ! [ -x /config ]; }; then
    echo "ser-stream-entrypoint: /config is not readable by $(id -un) (uid $(id -u)): a config.yaml there is not read" >&2
  elif [ -f /config/config.yaml ]; then
    export SER_STREAM_CONFIG=/config/config.yaml
  fi
fi
exec ser-stream "$@"
