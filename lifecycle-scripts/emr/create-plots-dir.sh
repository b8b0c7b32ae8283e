#!/bin/bash
# hail-emr-lab: create the plot directory Livy sessions save plots to, owned by the Livy user.
#
# Replaces the Quick Start's three steps (mkdir /var/www/html/plots, ln -s, chown livy:livy).
# hail-emr-lab pulls plots over the Livy session itself, so no web server or port 80 is needed;
# --web keeps the Quick Start layout (/var/www/html/plots, symlinked from the plot directory)
# for `%hail connect --plots-url http://<master>/plots/`.
#
# Use it as
#   an EMR step:  command-runner.jar bash -c "aws s3 cp s3://B/scripts/emr/create-plots-dir.sh
#                 /tmp/hel-plots.sh && bash /tmp/hel-plots.sh --plots-dir /plots"
#                 (or script-runner.jar with this script's S3 path and its arguments);
#   a bootstrap action: s3://B/scripts/emr/create-plots-dir.sh --plots-dir /plots
#                 (Livy is not installed yet then: the chown waits in the background, --wait s);
#   CloudFormation: `hail-emr-lab lifecycle emr-steps` prints an AWS::EMR::Step for it.
#
# usage: create-plots-dir.sh [--plots-dir DIR] [--owner USER] [--mode MODE] [--web] [--wait SECONDS]
# Tests: HEL_ROOT prefixes every absolute path.
set -euo pipefail

R="${HEL_ROOT:-}"
PLOTS_DIR=/plots
OWNER=livy
MODE=0755
WEB=0
WAIT=900

usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --plots-dir) PLOTS_DIR=${2:?}; shift 2 ;;
    --owner) OWNER=${2:?}; shift 2 ;;
    --mode) MODE=${2:?}; shift 2 ;;
    --web) WEB=1; shift ;;
    --wait) WAIT=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "create-plots-dir.sh: unknown argument $1" >&2; usage ;;
  esac
done
if [[ ! $PLOTS_DIR =~ ^/[A-Za-z0-9._/-]+$ ]] || [[ $PLOTS_DIR == *..* ]] || [ "$PLOTS_DIR" = / ]; then
  echo "create-plots-dir.sh: --plots-dir must be an absolute path like /plots, got '$PLOTS_DIR'" >&2
  exit 2
fi
[[ $OWNER =~ ^[a-z_][a-z0-9_-]*$ ]] || { echo "create-plots-dir.sh: bad --owner '$OWNER'" >&2; exit 2; }
[[ $MODE =~ ^[0-7]{3,4}$ ]] || { echo "create-plots-dir.sh: bad --mode '$MODE'" >&2; exit 2; }
[[ $WAIT =~ ^[0-9]+$ ]] || { echo "create-plots-dir.sh: bad --wait '$WAIT'" >&2; exit 2; }

# EMR steps run as hadoop, bootstrap actions as hadoop too: root work goes through sudo.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
log() { echo "create-plots-dir.sh: $*"; }

TARGET="$R$PLOTS_DIR"
if [ "$WEB" = 1 ]; then
  TARGET="$R/var/www/html/plots"
  $SUDO mkdir -p "$TARGET"
  if [ -L "$R$PLOTS_DIR" ] || [ ! -e "$R$PLOTS_DIR" ]; then
    $SUDO mkdir -p "$(dirname "$R$PLOTS_DIR")"
    $SUDO ln -sfn "$TARGET" "$R$PLOTS_DIR"
  else
    log "$PLOTS_DIR exists and is not a symlink: left as it is, plots go to $TARGET"
  fi
else
  $SUDO mkdir -p "$TARGET"
fi
$SUDO chmod "$MODE" "$TARGET"

own() { $SUDO chown "$OWNER:$OWNER" "$TARGET" && log "$TARGET owned by $OWNER:$OWNER, mode $MODE"; }
if id "$OWNER" >/dev/null 2>&1; then
  own
else
  # Bootstrap actions run before applications are installed: wait for the user in the background.
  log "user $OWNER does not exist yet: chown in the background once it does (up to ${WAIT}s)"
  (
    end=$((SECONDS + WAIT))
    while ! id "$OWNER" >/dev/null 2>&1; do
      if [ "$SECONDS" -ge "$end" ]; then log "gave up waiting for user $OWNER"; exit 1; fi
      sleep 5
    done
    own
  ) </dev/null >>"${HEL_LOG:-$R/tmp/hail-emr-lab-plots-dir.log}" 2>&1 &
fi
