#!/usr/bin/env bash
# The two set-up commands of the README, on a fresh machine:
#   ./dev.sh lab    install what the lab needs, start JupyterLab on the embedded default
#   ./dev.sh test   install everything (test tools too), run the checks and the whole test suite
# Everything goes into ./.venv (HAIL_EMR_LAB_VENV=DIR for another place); system packages
# (Java, Node.js; for `test` also Chromium, the Kerberos headers, shellcheck) are installed with
# apt when missing. The pip install is skipped when nothing it depends on changed since the last
# one (a stamp in the venv holds the hash of INSTALL_INPUTS).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=${HAIL_EMR_LAB_VENV:-$ROOT/.venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# What `pip install -e .[EXTRA]` depends on (the package's code is linked, not copied).
INSTALL_INPUTS=(pyproject.toml setup.py labextension/package.json labextension/yarn.lock)

install_system() {  # $1: lab|test
  local need_apt=()
  command -v java >/dev/null || need_apt+=(default-jre-headless)
  command -v node >/dev/null || need_apt+=(nodejs npm)
  if [ "$1" = test ]; then
    # requests-kerberos (the Kerberos auth tests) compiles against these; the lab does not need it.
    command -v krb5-config >/dev/null || need_apt+=(libkrb5-dev)
    command -v chromium >/dev/null || need_apt+=(chromium)
    command -v shellcheck >/dev/null || need_apt+=(shellcheck)
  fi
  [ ${#need_apt[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> installing system packages: ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
}

inputs_hash() {
  sha256sum "${INSTALL_INPUTS[@]}" | sha256sum | cut -d' ' -f1
}

stamp() {  # the stamp file of an extra
  echo "$VENV/.hail-emr-lab-installed-$1"
}

up_to_date() {  # $@: extras, any of which would do
  local hash extra
  hash=$(inputs_hash)
  [ -x "$VENV/bin/hail-emr-lab" ] || return 1
  for extra in "$@"; do
    [ "$(cat "$(stamp "$extra")" 2>/dev/null)" = "$hash" ] && return 0
  done
  return 1
}

# pip's output, shortened to one line per package and per long step (build dependencies,
# metadata, wheels: pip prints ": started" and then ": still running..." while one lasts).
# A bash loop, not awk: mawk (Debian's awk) reads its input in blocks, which held these lines
# back for minutes; pip itself runs with PYTHONUNBUFFERED for the same reason.
show_progress() {
  local line n=0 words
  while IFS= read -r line; do
    case $line in
      "Collecting "*) n=$((n + 1)); read -r -a words <<<"$line"; printf '    %4d  %s\n' "$n" "${words[1]-}" ;;
      *": started"* | *": still running"*) printf '    %s\n' "${line#"${line%%[! ]*}"}" ;;
      "Installing collected packages:"*) read -r -a words <<<"$line"; printf '    installing %d packages\n' $((${#words[@]} - 3)) ;;
      "Successfully installed"*) read -r -a words <<<"$line"; printf '    installed %d packages\n' $((${#words[@]} - 2)) ;;
    esac
  done
}

install_python() {  # $1: the extra to install (lab or dev); further arguments: extras that also do
  local extra=$1
  if up_to_date "$@"; then
    echo "==> $VENV is up to date (${INSTALL_INPUTS[*]} unchanged since its install)"
    return 0
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV (and upgrading pip, setuptools, wheel in it)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
  fi
  local log="$VENV/pip-install.log"
  echo "==> installing hail-emr-lab[$extra] and its dependencies (first time: several minutes; log: $log)"
  rm -f "$VENV"/.hail-emr-lab-installed-*
  # jlpm (from jupyterlab) builds the labextension during the install: it must be on PATH.
  local rc=0
  PYTHONUNBUFFERED=1 PATH="$VENV/bin:$PATH" "$VENV/bin/pip" install --progress-bar off -e ".[$extra]" 2>&1 \
    | tee "$log" | show_progress || rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    grep -v "is ignored: it is neither" "$log" | tail -40 >&2
    echo "pip install failed (full log: $log)" >&2
    exit 1
  fi
  # Register the editable labextension (a symlink to hail_emr_lab/labextension) and the server
  # extension with JupyterLab; their chatter goes to the log, shown only when they fail.
  if ! { PATH="$VENV/bin:$PATH" "$VENV/bin/jupyter" labextension develop --overwrite . &&
         PATH="$VENV/bin:$PATH" "$VENV/bin/jupyter" server extension enable hail_emr_lab --sys-prefix; } \
       >>"$log" 2>&1; then
    tail -20 "$log" >&2
    echo "registering the JupyterLab extensions failed (full log: $log)" >&2
    exit 1
  fi
  inputs_hash >"$(stamp "$extra")"
}

build_labextension() {
  echo "==> building the labextension"
  (cd labextension && PATH="$VENV/bin:$PATH" jlpm install >/dev/null && PATH="$VENV/bin:$PATH" jlpm build:prod >/dev/null)
}

case "${1:-}" in
  lab)
    shift
    install_system lab
    install_python lab dev  # what `test` installs (dev) includes everything the lab needs
    [ -f hail_emr_lab/labextension/package.json ] || build_labextension
    exec "$VENV/bin/hail-emr-lab" lab "$@"
    ;;
  test)
    shift
    install_system test
    install_python dev
    build_labextension
    echo "==> labextension: lint:check (prettier, eslint) and jest"
    (cd labextension && PATH="$VENV/bin:$PATH" jlpm lint:check && PATH="$VENV/bin:$PATH" jlpm test)
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
