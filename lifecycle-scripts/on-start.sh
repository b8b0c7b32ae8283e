#!/bin/bash
# shellcheck disable=SC2317  # functions run in the background script (declare -f)
# hail-emr-lab: SageMaker notebook instance lifecycle script, OnStart (runs as root on every start).
#
# Render it with `hail-emr-lab lifecycle render ...` (fills in the parameter block and strips
# comments so the base64 fits SageMaker's 16,384-character limit); check it with
# `hail-emr-lab lifecycle validate DIR`.
#
# The synchronous part only resolves the parameters and writes the config files (seconds); the
# slow work (package install, restore, seed, cron, Jupyter restart) runs in the background with
# nohup, logging to /var/log/hail-emr-lab/on-start.log, because a start that takes more than
# 5 minutes fails. A failing step is logged and skipped: it never fails the instance start.
#
# Tests run this script in a sandbox: HEL_ROOT prefixes every absolute path (/opt/ml, /home,
# /etc/os-release, /var/log), HEL_CONDA_ENV and HEL_AWS override the conda env and aws CLI.
set -euo pipefail

# --- parameters (filled in by `hail-emr-lab lifecycle render`; empty = from tags / default) ---
BUCKET=''          #@bucket
PREFIX=''          #@prefix
REGION=''          #@region
CLUSTER_ID=''      #@cluster_id
CLUSTER_NAME=''    #@cluster_name
LIVY_URL=''        #@livy_url
SERVERLESS_APP=''  #@serverless_app
SERVERLESS_ROLE='' #@serverless_execution_role
PLOTS_DIR=''       #@plots_dir
PACKAGE_SOURCE='s3'  #@package_source
WHEEL=''           #@wheel
READ_TAGS='1'      #@read_tags

R="${HEL_ROOT:-}"
NB_USER=ec2-user
EC2_HOME="$R/home/ec2-user"
NB_HOME="$EC2_HOME/SageMaker"
META="$R/opt/ml/metadata/resource-metadata.json"
OS_RELEASE="$R/etc/os-release"
CONDA_ENV="${HEL_CONDA_ENV:-$EC2_HOME/anaconda3/envs/JupyterSystemEnv}"
HEL="$CONDA_ENV/bin/hail-emr-lab"
LOG_DIR="$R/var/log/hail-emr-lab"
CACHE="$R/var/cache/hail-emr-lab"
# Lives in the persistent volume so "first start" survives stop/start.
STATE_DIR="$NB_HOME/.hail-emr-lab-lifecycle"
export PATH="${PATH:-/usr/bin:/bin}:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
cd /

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) hail-emr-lab on-start: $*"; }

# step NAME CMD...: run CMD with errexit in a child shell; log a failure and carry on.
# (The child runs asynchronously and is waited for, so errexit really applies inside it.)
FAILED=""
step() {
  local name=$1 rc=0
  shift
  log "$name ..."
  ( set -e; "$@" ) &
  wait $! || rc=$?
  if [ "$rc" -eq 0 ]; then log "$name: ok"; else log "$name: FAILED (exit $rc), continuing"; FAILED="$FAILED [$name]"; fi
  return 0
}

# valid KIND VALUE: the same rules `hail-emr-lab lifecycle render` applies (values end up in JSON);
# bucket names as hail_emr_lab/aws_names.py (Amazon S3 "Bucket naming rules").
valid() {
  local re bad
  case $1 in
    bucket) re='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
      bad='(\.\.|^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$|^(xn--|sthree-|amzn-s3-demo-)|(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$)'
      if [[ $2 =~ $bad ]]; then return 1; fi ;;
    prefix) re='^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' ;;
    region) re='^[a-z]{2}(-[a-z]+)+-[0-9]+$' ;;
    cluster_id) re='^j-[A-Z0-9]+$' ;;
    cluster_name) re="^[A-Za-z0-9 ._:@+=,/()-]{1,256}\$" ;;
    livy_url) re='^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$' ;;
    plots_dir) re='^/[A-Za-z0-9._/-]*$' ;;
    *) return 1 ;;
  esac
  [[ $2 =~ $re ]]
}

find_aws() {
  local c
  for c in "${HEL_AWS:-}" "$(command -v aws || true)" /usr/local/bin/aws /usr/bin/aws \
    "$EC2_HOME/anaconda3/bin/aws" "$CONDA_ENV/bin/aws"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

meta_field() { grep -o "\"$1\" *: *\"[^\"]*\"" "$META" 2>/dev/null | head -n1 | sed 's/.*: *"\(.*\)"/\1/'; }

# Instance tags hail-emr-lab:<key> override the rendered values, so one configuration
# can serve many users (e.g. tag each user's instance with hail-emr-lab:cluster-id).
read_tags() {
  [ -n "$ARN" ] && [ -n "$AWS" ] || return 0
  # Bounded: without a route to the SageMaker API (private subnet, no VPC endpoint) the CLI's
  # default retries would outlast the 5-minute limit.
  # shellcheck disable=SC2016
  AWS_MAX_ATTEMPTS=2 timeout 60 "$AWS" sagemaker list-tags --resource-arn "$ARN" --output text \
    --cli-connect-timeout 10 --cli-read-timeout 20 \
    --query 'Tags[?starts_with(Key, `hail-emr-lab:`)].[Key,Value]'
}

apply_tag() {
  local key=${1#hail-emr-lab:} value=$2
  key=${key//-/_}
  case $key in
    bucket | prefix | region | cluster_id | cluster_name | livy_url | plots_dir) ;;
    *) log "ignoring unknown tag hail-emr-lab:${1#hail-emr-lab:}"; return 0 ;;
  esac
  if ! valid "$key" "$value"; then log "ignoring tag $1: invalid value"; return 0; fi
  case $key in
    bucket) BUCKET=$value ;;
    prefix) PREFIX=$value ;;
    region) REGION=$value ;;
    cluster_id) CLUSTER_ID=$value ;;
    cluster_name) CLUSTER_NAME=$value ;;
    livy_url) LIVY_URL=$value ;;
    plots_dir) PLOTS_DIR=$value ;;
  esac
  log "tag $1 = $value"
}

# json KEY VALUE ...: a flat JSON object of the non-empty values (values are pre-validated).
json() {
  local out="" sep=""
  while [ $# -ge 2 ]; do
    if [ -n "$2" ]; then out="$out$sep  \"$1\": \"$2\""; sep=$',\n'; fi
    shift 2
  done
  printf '{\n%s\n}' "$out"
}

sparkmagic_json() {
  local creds="{\"username\": \"\", \"password\": \"\", \"url\": \"$1\", \"auth\": \"None\"}"
  printf '{\n  "kernel_python_credentials": %s,\n  "kernel_scala_credentials": %s,\n' "$creds" "$creds"
  printf '  "kernel_r_credentials": %s,\n  "livy_session_startup_timeout_seconds": 300,\n' "$creds"
  printf '  "livy_server_heartbeat_timeout_seconds": 600,\n  "heartbeat_refresh_seconds": 30,\n'
  printf '  "ignore_ssl_errors": false\n}'
}

# put_user_file DEST CONTENT: atomically, only when the content changed, mode 600, owned by the user.
put_user_file() {
  local dest=$1 dir tmp
  dir=$(dirname "$dest")
  mkdir -p "$dir"
  chown "$NB_USER:$NB_USER" "$dir"
  if [ -f "$dest" ] && [ "$(cat "$dest")" = "$2" ]; then return 0; fi
  tmp=$(mktemp "$dest.XXXXXX")
  printf '%s\n' "$2" >"$tmp"
  chmod 600 "$tmp"
  chown "$NB_USER:$NB_USER" "$tmp"
  mv -f "$tmp" "$dest"
  log "wrote $dest"
}

write_config() {
  put_user_file "$EC2_HOME/.hail-emr-lab/config.json" "$(json bucket "$BUCKET" prefix "$PREFIX" \
    region "$REGION" cluster_id "$CLUSTER_ID" cluster_name "$CLUSTER_NAME" livy_url "$LIVY_URL" \
    plots_dir "$PLOTS_DIR" serverless_app "$SERVERLESS_APP" serverless_execution_role "$SERVERLESS_ROLE")"
}

write_sparkmagic() { put_user_file "$EC2_HOME/.sparkmagic/config.json" "$(sparkmagic_json "$1")"; }

# ---------------------------------------------------------------- background steps
as_user() {
  sudo -u "$NB_USER" -H env HOME="$EC2_HOME" PATH="$CONDA_ENV/bin:$PATH" \
    ${REGION:+AWS_DEFAULT_REGION="$REGION"} "$@"
}

installed_version() { "$HEL" --version 2>/dev/null | awk '{print $2}'; }

install_pkg() {
  #@if package_source=s3
  if [ "$PACKAGE_SOURCE" = s3 ]; then
    local dir="$CACHE/packages" whl f want
    # No internet needed: the wheel (and any missing dependencies) come from s3://BUCKET/packages/.
    mkdir -p "$dir"
    "$AWS" s3 sync "s3://$BUCKET/packages/" "$dir/" --only-show-errors
    whl=$WHEEL
    if [ -z "$whl" ]; then
      whl=$(for f in "$dir"/hail_emr_lab-*.whl; do if [ -e "$f" ]; then echo "${f##*/}"; fi; done | sort -V | tail -n1)
    fi
    if [ -z "$whl" ] || [ ! -f "$dir/$whl" ]; then
      log "no hail_emr_lab wheel in s3://$BUCKET/packages/"
      return 1
    fi
    want=$(echo "$whl" | cut -d- -f2)
    if [ "$(installed_version)" = "$want" ]; then log "hail-emr-lab $want already installed"; return 0; fi
    "$CONDA_ENV/bin/pip" install --no-index --find-links "$dir" "$dir/$whl"
  fi
  #@endif
  #@if package_source=pypi
  if [ "$PACKAGE_SOURCE" = pypi ]; then
    # From the package index: needs internet access (DirectInternetAccess or a NAT / proxy).
    if [ -n "$(installed_version)" ]; then log "hail-emr-lab already installed"; return 0; fi
    "$CONDA_ENV/bin/pip" install "${WHEEL:-hail-emr-lab}"
  fi
  #@endif
  touch "$LOG_DIR/.installed"
}

#@if ssm=1
# The Session Manager plugin, which `aws ssm start-session` (and so `hail-emr-lab ssm`) needs for a
# shell on the cluster's nodes. Installed on every start: the root volume is reset on stop/start.
install_ssm_plugin() {
  local rpm="$CACHE/session-manager-plugin.rpm"
  if [ -x "$R/usr/local/bin/session-manager-plugin" ]; then log "session-manager-plugin already installed"; return 0; fi
  mkdir -p "$CACHE"
  #@if package_source=s3
  # No internet needed: an admin uploads the plugin's rpm (from its documented download URL, see
  # lifecycle-scripts/README.md) to s3://BUCKET/packages/session-manager-plugin.rpm.
  "$AWS" s3 cp "s3://$BUCKET/packages/session-manager-plugin.rpm" "$rpm" --only-show-errors
  #@endif
  #@if package_source=pypi
  # Its documented source (Session Manager user guide, "Install the Session Manager plugin on Linux").
  local arch=linux_64bit
  if [ "$(uname -m)" = aarch64 ]; then arch=linux_arm64; fi
  curl -fsSL --retry 2 -o "$rpm" "https://s3.amazonaws.com/session-manager-downloads/plugin/latest/$arch/session-manager-plugin.rpm"
  #@endif
  yum install -y "$rpm"
}
#@endif

enable_ext() {
  "$CONDA_ENV/bin/jupyter" server extension enable --sys-prefix hail_emr_lab
  "$CONDA_ENV/bin/jupyter" labextension enable hail-emr-lab
}

# What the Quick Start set on the notebook side, as it applies to JupyterLab 4 / Notebook 7:
# - The IOPub data rate: Jupyter drops output above 1 MB/s averaged over 3 s ("IOPub data rate
#   exceeded"), and one pulled plot or table of a few MB is a single message. On jupyter_server 2
#   the setting is ZMQChannelsWebsocketConnection.iopub_data_rate_limit (ServerApp's is only a
#   deprecated alias; config.d files carry extension switches only, so it goes into
#   jupyter_server_config.json, merged, never clobbered). NotebookApp's is set only where the classic
#   notebook server (notebook < 7, JupyterLab 1-3 instances) still runs.
# - The ipywidgets lab extension needs no step: ipywidgets 8 (a dependency of hail-emr-lab) ships it
#   prebuilt (jupyterlab_widgets); `jupyter labextension install` would need node and internet.
jupyter_settings() {
  "$CONDA_ENV/bin/python" - "$CONDA_ENV/etc/jupyter" "$LOG_DIR/.restart" <<'PY'
import json, os, sys
from importlib import metadata
conf_dir, restart = sys.argv[1], sys.argv[2]
try:
    classic = int(metadata.version("notebook").split(".")[0]) < 7
except (metadata.PackageNotFoundError, ValueError):
    classic = False
targets = [("jupyter_server_config.json", "ZMQChannelsWebsocketConnection")]
if classic:
    targets.append(("jupyter_notebook_config.json", "NotebookApp"))
for name, section in targets:
    path = os.path.join(conf_dir, name)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        data = {}
    if data.get(section, {}).get("iopub_data_rate_limit") == 1e10:
        continue
    data.setdefault(section, {})["iopub_data_rate_limit"] = 1e10
    os.makedirs(conf_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"set {section}.iopub_data_rate_limit = 1e10 in {path}")
    open(restart, "w").close()
PY
}

restart_jupyter() {
  # Amazon Linux 1 (VERSION_ID="2018.03") uses upstart; Amazon Linux 2 uses systemd.
  if grep -Eqs 'amazon-linux-ami|VERSION_ID="?20[0-9]{2}\.[0-9]' "$OS_RELEASE"; then
    initctl restart jupyter-server --no-wait
  else
    systemctl --no-block restart jupyter-server.service
  fi
}

# Only the cluster id or name is known: point sparkmagic at the master's Livy (if it runs now).
discover_livy() {
  local id=$CLUSTER_ID host
  if [ -z "$id" ]; then
    id=$("$AWS" emr list-clusters --active --output text \
      --query "Clusters[?Name=='$CLUSTER_NAME'].Id | [0]")
  fi
  if ! valid cluster_id "$id"; then log "no active cluster named '$CLUSTER_NAME'"; return 1; fi
  host=$("$AWS" emr describe-cluster --cluster-id "$id" --output text --query Cluster.MasterPublicDnsName)
  if [[ ! $host =~ ^[A-Za-z0-9.-]+$ ]] || [ "$host" = None ]; then log "cluster $id has no master yet"; return 1; fi
  write_sparkmagic "http://$host:8998"
}

sync_args() { echo --home "$NB_HOME" --bucket "$BUCKET" --prefix "$PREFIX"; }

restore_home() {
  # First start only: bring the user's files back (the sync engine never clobbers local edits).
  # shellcheck disable=SC2046
  as_user "$HEL" sync restore $(sync_args)
  as_user mkdir -p "$STATE_DIR"
  as_user touch "$STATE_DIR/restored"
}

# shellcheck disable=SC2046
seed() { as_user "$HEL" sync seed $(sync_args); }
# shellcheck disable=SC2046
install_cron() { as_user "$HEL" sync install-cron $(sync_args); }

bg_main() {
  log "background work started"
  rm -f "$LOG_DIR/.installed" "$LOG_DIR/.restart"
  step "install hail-emr-lab ($PACKAGE_SOURCE)" install_pkg
  step "enable the Jupyter extensions" enable_ext
  #@if ssm=1
  step "install the Session Manager plugin" install_ssm_plugin
  #@endif
  step "Jupyter settings (IOPub data rate)" jupyter_settings
  if [ -e "$LOG_DIR/.installed" ] || [ -e "$LOG_DIR/.restart" ]; then step "restart Jupyter" restart_jupyter; fi
  if [ -z "$LIVY_URL" ] && [ -n "$CLUSTER_ID$CLUSTER_NAME" ]; then step "sparkmagic config" discover_livy; fi
  if [ -n "$BUCKET" ] && [ -n "$PREFIX" ]; then
    if [ ! -e "$STATE_DIR/restored" ]; then step "restore home from s3://$BUCKET/$PREFIX/" restore_home; fi
    step "seed common-notebooks and scripts" seed
    step "install the backup cron job" install_cron
  fi
  log "background work done; failed steps:${FAILED:- none}"
  # Last, and atomically: tests and admins wait for this file.
  echo "done failed=${FAILED:-none}" >"$LOG_DIR/on-start.done.tmp"
  mv -f "$LOG_DIR/on-start.done.tmp" "$LOG_DIR/on-start.done"
}

# ---------------------------------------------------------------- synchronous part
ARN=$(meta_field ResourceArn || true)
NAME=$(meta_field ResourceName || true)
log "starting on ${NAME:-an unknown instance}"
if [ -z "$REGION" ]; then REGION=$(echo "$ARN" | cut -s -d: -f4); fi
if [ -n "$REGION" ]; then export AWS_DEFAULT_REGION="$REGION"; fi
AWS=$(find_aws || true)
if [ -z "$AWS" ]; then log "aws CLI not found: tags, S3 install and cluster discovery skipped"; fi

if [ "$READ_TAGS" = 1 ]; then
  if TAGS=$(read_tags); then
    while IFS=$'\t' read -r key value; do
      if [ -n "$key" ]; then apply_tag "$key" "$value"; fi
    done <<<"$TAGS"
  else
    log "could not read the instance tags (sagemaker:ListTags allowed?); using rendered values"
  fi
fi
# One cluster selector: the most specific wins.
if [ -n "$LIVY_URL" ]; then CLUSTER_ID="" CLUSTER_NAME=""; elif [ -n "$CLUSTER_ID" ]; then CLUSTER_NAME=""; fi
if [ -z "$PREFIX" ]; then PREFIX=$NAME; fi
if [ -z "$BUCKET" ]; then log "WARNING: no bucket (render --bucket or tag hail-emr-lab:bucket): no sync"; fi
if [ -n "$REGION" ]; then export AWS_DEFAULT_REGION="$REGION"; fi

mkdir -p "$LOG_DIR" "$NB_HOME"
step "write ~/.hail-emr-lab/config.json" write_config
if [ -n "$LIVY_URL" ]; then step "write ~/.sparkmagic/config.json" write_sparkmagic "$LIVY_URL"; fi

# The background script: this script's functions and resolved parameters, then bg_main.
BG="$LOG_DIR/on-start-background.sh"
{
  echo 'set -uo pipefail'
  declare -p R NB_USER EC2_HOME NB_HOME OS_RELEASE CONDA_ENV HEL LOG_DIR CACHE STATE_DIR PATH AWS \
    BUCKET PREFIX REGION CLUSTER_ID CLUSTER_NAME LIVY_URL PLOTS_DIR PACKAGE_SOURCE WHEEL FAILED
  declare -f
  echo bg_main
} >"$BG"
chmod 700 "$BG"
rm -f "$LOG_DIR/on-start.done"
nohup bash "$BG" >>"$LOG_DIR/on-start.log" 2>&1 </dev/null &
log "background work started (pid $!), log: $LOG_DIR/on-start.log"
log "done:${FAILED:- no failed steps}"
exit 0
