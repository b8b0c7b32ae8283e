#!/usr/bin/env bash
# The two set-up commands of the README, on a fresh machine:
#   ./dev.sh lab    install everything, start JupyterLab on the embedded default
#   ./dev.sh test   install everything, run the checks and the whole test suite
# Everything goes into ./.venv; system packages (Chromium for the browser tests, the
# Kerberos headers for requests-kerberos, shellcheck) are installed with apt when missing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
export PIP_DISABLE_PIP_VERSION_CHECK=1

need_apt=()
command -v krb5-config >/dev/null || need_apt+=(libkrb5-dev)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v java >/dev/null || need_apt+=(default-jre-headless)

install_system() {
  [ ${#need_apt[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing system packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
  fi
  echo "==> installing hail-emr-lab and its dependencies (first time: several minutes)"
  # jlpm (from jupyterlab) builds the labextension during the install: it must be on PATH.
  local log="$VENV/pip-install.log"
  if ! PATH="$VENV/bin:$PATH" "$VENV/bin/pip" install -q -e ".[dev]" >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" | tail -40 >&2
    echo "pip install failed (full log: $log)" >&2
    exit 1
  fi
  # Register the editable labextension with JupyterLab (a symlink to hail_emr_lab/labextension).
  PATH="$VENV/bin:$PATH" "$VENV/bin/jupyter" labextension develop --overwrite . >/dev/null
  PATH="$VENV/bin:$PATH" "$VENV/bin/jupyter" server extension enable hail_emr_lab --sys-prefix >/dev/null
}

build_labextension() {
  echo "==> building the labextension"
  (cd labextension && PATH="$VENV/bin:$PATH" jlpm install >/dev/null && PATH="$VENV/bin:$PATH" jlpm build:prod >/dev/null)
}

case "${1:-}" in
  lab)
    shift
    install_system
    install_python
    [ -f hail_emr_lab/labextension/package.json ] || build_labextension
    exec "$VENV/bin/hail-emr-lab" lab "$@"
    ;;
  test)
    shift
    install_system
    install_python
    build_labextension
    echo "==> ruff"
    "$VENV/bin/ruff" check .
    echo "==> pytest"
    export PATH="$VENV/bin:$PATH"
    exec "$VENV/bin/python" -m pytest -ra "$@"
    ;;
  *)
    echo "usage: ./dev.sh lab|test [args]" >&2
    exit 2
    ;;
esac
