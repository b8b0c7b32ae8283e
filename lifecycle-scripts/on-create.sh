#!/bin/bash
# hail-emr-lab: SageMaker notebook instance lifecycle script, OnCreate (runs as root, once,
# when the instance is created, before the first OnStart).
#
# Everything that must happen on every start (the conda env and crontabs are reset on each
# stop/start) lives in on-start.sh; this script only prepares the persistent home so that
# the first OnStart restores it from S3, and records what it was created with.
#
# Tests run this script in a sandbox: HEL_ROOT prefixes every absolute path.
set -euo pipefail

# --- parameters (filled in by `hail-emr-lab lifecycle render`) ---
BUCKET=''          #@bucket
PREFIX=''          #@prefix
PACKAGE_SOURCE='s3'  #@package_source

R="${HEL_ROOT:-}"
NB_USER=ec2-user
NB_HOME="$R/home/ec2-user/SageMaker"
META="$R/opt/ml/metadata/resource-metadata.json"
STATE_DIR="$NB_HOME/.hail-emr-lab-lifecycle"
export PATH="${PATH:-/usr/bin:/bin}:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
cd /

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) hail-emr-lab on-create: $*"; }

NAME=$(grep -o '"ResourceName" *: *"[^"]*"' "$META" 2>/dev/null | sed 's/.*: *"\(.*\)"/\1/' || true)
log "creating ${NAME:-an unknown instance}: bucket=${BUCKET:-<from tags>} prefix=${PREFIX:-${NAME:-?}} packages=$PACKAGE_SOURCE"

# The persistent home must exist and belong to the user before OnStart restores into it.
mkdir -p "$NB_HOME"
chown "$NB_USER:$NB_USER" "$NB_HOME" || log "chown $NB_HOME failed, continuing"
if [ ! -d "$STATE_DIR" ]; then
  mkdir -p "$STATE_DIR"
  # No "restored" marker yet: OnStart restores the home from S3 on this first start.
  date -u +%Y-%m-%dT%H:%M:%SZ >"$STATE_DIR/created"
  chown -R "$NB_USER:$NB_USER" "$STATE_DIR" || log "chown $STATE_DIR failed, continuing"
fi
log "done"
exit 0
