#!/usr/bin/env bash
# A real S3-compatible server for the tests: a one-node Ceph cluster (one
# monitor, one in-memory OSD, one RADOS Gateway) bound to 127.0.0.1.
#
# Usage:
#   scripts/rgw.sh start      install Ceph if needed, start the cluster, create an
#                             S3 user; the last line on stdout is the path of an env
#                             file with `export S3_ENDPOINT=...` etc. to source.
#                             Reuses an instance that is already up and healthy.
#   scripts/rgw.sh stop       kill every daemon started here, remove the state dir
#                             (idempotent; only the tiny $STATE_DIR.lock stays).
#   scripts/rgw.sh requests   print RGW's own request counter (perf dump rgw.req).
#   scripts/rgw.sh install    only make sure the Ceph binaries are there.
#   scripts/rgw.sh env        print the env file path of the running instance.
#
# Exit codes: 0 ok; 1 failure; 2 usage; 3 Ceph cannot be installed here (the
# caller decides whether that means "skip" or "fail").
#
# Tunables (environment):
#   RGW_STATE_DIR    where the running cluster lives   (default .cache/rgw-run)
#   RGW_CEPH_CACHE   where Debian's packages are unpacked (default .cache/ceph)
#   RGW_PORT         S3 port (default 7480 when free, else any free port)
#   RGW_START_TIMEOUT seconds to wait for each step     (default 90)
#   RGW_MEMSTORE_BYTES size the in-memory OSD reports  (default 1 GiB)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${RGW_STATE_DIR:-$REPO_ROOT/.cache/rgw-run}"
CEPH_CACHE="${RGW_CEPH_CACHE:-$REPO_ROOT/.cache/ceph}"
TIMEOUT="${RGW_START_TIMEOUT:-90}"
MEMSTORE_BYTES="${RGW_MEMSTORE_BYTES:-1073741824}"
# What Debian's packages must provide; apt resolves the rest of the closure.
CEPH_PACKAGES=(radosgw ceph-mon ceph-osd ceph-common)
# The S3 user the tests act as, and the name of the gateway daemon.
S3_UID="baa-test"
RGW_NAME="client.rgw.test"
# Ceph's CLI and python bindings are built for Debian's python, not pyenv's.
SYS_PYTHON="/usr/bin/python3"

log() { echo "rgw.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Loud on purpose: a skipped S3 suite must be visible in the test output.
cannot_install() {
  {
    echo "################################################################"
    echo "## rgw.sh: Ceph RADOS Gateway is NOT available on this machine."
    echo "## $*"
    echo "## The S3 integration tests cannot run against a real server."
    echo "################################################################"
  } >&2
  exit 3
}

# ---------------------------------------------------------------- binaries

# Sets CEPH_PREFIX ("" for a system-wide install, else the unpacked root),
# CEPH_LIBDIR (the multiarch lib dir holding ceph/ and rados-classes/).
locate_ceph() {
  local prefix
  for prefix in "" "$CEPH_CACHE/root"; do
    if [[ -x "$prefix/usr/bin/radosgw" && -x "$prefix/usr/bin/ceph-mon" &&
      -x "$prefix/usr/bin/ceph-osd" && -x "$prefix/usr/bin/radosgw-admin" &&
      -f "$prefix/usr/bin/ceph" ]]; then
      # An unpacked tree counts only once its unpacking finished.
      if [[ -n "$prefix" && ! -f "$CEPH_CACHE/.complete" ]]; then continue; fi
      # The multiarch lib dir (x86_64-linux-gnu, aarch64-linux-gnu, ...).
      local cls=("$prefix"/usr/lib/*/rados-classes)
      [[ -d "${cls[0]}" ]] || continue
      CEPH_PREFIX="$prefix"
      CEPH_LIBDIR="$(dirname "${cls[0]}")"
      return 0
    fi
  done
  return 1
}

# Unpacks Debian's Ceph packages (and whatever of their dependencies this
# machine lacks) into $CEPH_CACHE/root with `apt-get download` + `dpkg -x`:
# no maintainer scripts, no services, no system changes, a few seconds, and
# nothing but apt's package lists needs root.
install_ceph() {
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    cannot_install "radosgw is not installed and there is no apt-get/dpkg to get it."
  fi

  # apt-cache has no candidate before the first `apt-get update`.
  if ! apt-cache show radosgw >/dev/null 2>&1 ||
    [[ "$(apt-cache policy radosgw 2>/dev/null | awk '/Candidate:/{print $2}')" == "(none)" ]]; then
    [[ "$(id -u)" == 0 ]] ||
      cannot_install "radosgw is not installed, apt knows no candidate for it and we are not root (cannot run apt-get update)."
    log "apt-get update (package lists are empty)"
    apt-get update -qq >/dev/null 2>&1 || cannot_install "apt-get update failed."
  fi

  mkdir -p "$CEPH_CACHE"
  local work="$CEPH_CACHE/tmp.$$"
  rm -rf "$work" && mkdir -p "$work/debs"
  # The closure of packages this machine is missing, as apt would install them.
  local pkgs
  pkgs="$(apt-get install -s --no-install-recommends "${CEPH_PACKAGES[@]}" 2>/dev/null |
    awk '/^Inst /{print $2}')" || true
  [[ -n "$pkgs" ]] || cannot_install "apt-get cannot resolve ${CEPH_PACKAGES[*]}."
  log "downloading $(wc -w <<<"$pkgs") Debian packages for Ceph into $CEPH_CACHE"
  # APT::Sandbox::User=root: the _apt user may not be able to write here.
  # shellcheck disable=SC2086 # word splitting of the package list is wanted
  if ! (cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root $pkgs \
    >"$work/download.log" 2>&1); then
    tail -n 20 "$work/download.log" >&2 || true
    rm -rf "$work"
    cannot_install "apt-get download of the Ceph packages failed."
  fi
  local deb
  for deb in "$work"/debs/*.deb; do
    dpkg -x "$deb" "$work/root" || { rm -rf "$work"; cannot_install "dpkg -x $deb failed."; }
  done
  # Swap in atomically so a half-unpacked tree is never used.
  rm -rf "$CEPH_CACHE/root" "$CEPH_CACHE/.complete"
  mv "$work/root" "$CEPH_CACHE/root"
  rm -rf "$work"
  echo "$pkgs" >"$CEPH_CACHE/.complete"
  log "Ceph unpacked ($(du -sh "$CEPH_CACHE/root" | cut -f1))"
}

ensure_ceph() {
  [[ -x "$SYS_PYTHON" ]] || cannot_install "$SYS_PYTHON (Debian's python, needed by the ceph CLI) is missing."
  locate_ceph && return 0
  mkdir -p "$CEPH_CACHE"
  # Parallel test runs may all call `start`: one installs, the others wait.
  exec 8>"$CEPH_CACHE/.lock"
  flock 8
  locate_ceph || install_ceph
  exec 8>&-
  locate_ceph || cannot_install "Ceph binaries still missing after unpacking."
}

# Environment under which the unpacked binaries find their libraries and
# the ceph CLI finds its python modules. Harmless for a system install.
ceph_env() {
  # Some dependencies (libnl, libdevmapper) ship in /lib/<arch>, not /usr/lib/<arch>.
  CEPH_LD_PATH="$CEPH_LIBDIR/ceph:$CEPH_LIBDIR"
  if [[ -n "$CEPH_PREFIX" ]]; then
    CEPH_LD_PATH="$CEPH_LD_PATH:$CEPH_PREFIX/lib/$(basename "$CEPH_LIBDIR")"
  fi
  export LD_LIBRARY_PATH="$CEPH_LD_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$CEPH_PREFIX/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
  export CEPH_CONF="$STATE_DIR/ceph.conf"
}

# ------------------------------------------------------------------ helpers

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port the kernel considers free right now; the tiny race with other
# processes until our daemon binds it is acceptable for tests.
kernel_port() {
  "$SYS_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The preferred port if nothing listens there, else any free one.
free_port() {
  if port_free "$1"; then echo "$1"; else kernel_port; fi
}

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# Poll "$@" until it succeeds or $TIMEOUT seconds pass.
wait_for() {
  local what="$1"; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${TIMEOUT}s waiting for $what"
      return 1
    fi
    sleep 0.3
  done
}

# Run the ceph CLI (a python script) with Debian's python.
ceph_cli() { "$SYS_PYTHON" "$CEPH_PREFIX/usr/bin/ceph" --connect-timeout 10 "$@"; }

# True if the process exists and is not a zombie: the daemons are reparented
# to pid 1, which may take its time to reap them.
proc_running() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z ]]
}

# True if the pid is running and still one of our Ceph daemons (pids from a
# state dir left over by a rebooted machine may belong to anything by now).
is_ceph_daemon() {
  proc_running "$1" &&
    [[ "$(cat "/proc/$1/comm" 2>/dev/null || true)" =~ ^(ceph-mon|ceph-osd|radosgw)$ ]]
}

pid_alive() { [[ -f "$1" ]] && is_ceph_daemon "$(cat "$1")"; }

# ------------------------------------------------------------------ config

write_conf() {
  local fsid="$1" mon_port="$2" rgw_port="$3" run_dir="$4"
  cat >"$STATE_DIR/ceph.conf" <<EOF
# Generated by scripts/rgw.sh: a throwaway one-node cluster for tests.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
# No cephx anywhere: this cluster only ever listens on loopback.
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
# Without crc mode radosgw loops on "get_initial_auth_request returned -13".
ms mon client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
# Everything lives in the state dir; nothing touches /etc, /var or /run.
run dir = $run_dir
admin socket = $run_dir/\$name.asok
pid file = $run_dir/\$name.pid
log file = $STATE_DIR/log/\$name.log
mon data = $STATE_DIR/mon/\$name
osd data = $STATE_DIR/osd/\$name
keyring = $STATE_DIR/keyring
crash dir = $STATE_DIR/crash
# Plugins and object classes come from wherever the binaries are.
plugin dir = $CEPH_LIBDIR/ceph
erasure code dir = $CEPH_LIBDIR/ceph/erasure-code
osd class dir = $CEPH_LIBDIR/rados-classes
osd class load list = *
osd class default list = *
# One OSD: pools of one replica, few PGs, no autoscaler, no warnings about it.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# Loopback-only test cluster: the disk-space checks only get in the way.
mon data avail warn = 1
mon data avail crit = 0
log to stderr = false
err to stderr = true
debug ms = 0

[mon]
mon initial members = a
mon cluster log file = $STATE_DIR/log/cluster.log
# Each osdmap change (RGW makes ~8 pools at first start) waits for the next
# paxos proposal, 1 s apart by default: that alone was 9 s of startup.
paxos propose interval = 0.05
paxos min wait = 0.01
mon warn on insecure global id reclaim allowed = false

[osd]
# The OSD keeps every object in memory: fast, and gone with the process.
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd op num shards = 1
osd op num threads per shard = 2
osd max object name len = 460
osd max object namespace len = 64

[$RGW_NAME]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $STATE_DIR/rgw
rgw thread pool size = 64
rgw dynamic resharding = false
rgw enable usage log = false
EOF
}

# -------------------------------------------------------------- subcommands

# True if the instance in $STATE_DIR is up and answers S3.
healthy() {
  [[ -f "$STATE_DIR/env" && -f "$STATE_DIR/rundir" ]] || return 1
  local run_dir p
  run_dir="$(cat "$STATE_DIR/rundir")"
  for p in mon.a osd.0 "$RGW_NAME"; do pid_alive "$run_dir/$p.pid.keep" || return 1; done
  # shellcheck disable=SC1091
  (source "$STATE_DIR/env" && curl -fsS -m 5 -o /dev/null "$S3_ENDPOINT/")
}

cmd_start() {
  mkdir -p "$(dirname "$STATE_DIR")"
  # Serialise concurrent `start`/`stop` on the same state dir.
  exec 9>"$STATE_DIR.lock"
  flock 9

  if healthy; then
    log "already running"
    echo "$STATE_DIR/env"
    return 0
  fi
  cmd_stop_locked

  ensure_ceph
  ceph_env
  local t0=$SECONDS

  mkdir -p "$STATE_DIR"/{log,mon,osd,rgw,crash}
  # Unix socket paths are limited to 107 bytes: fall back to /tmp when the
  # state dir is deep (e.g. a CI clone).
  local run_dir="$STATE_DIR/run"
  if ((${#run_dir} + ${#RGW_NAME} + 6 > 100)); then
    run_dir="$(mktemp -d "${TMPDIR:-/tmp}/rgw-run.XXXXXX")"
  fi
  mkdir -p "$run_dir"
  echo "$run_dir" >"$STATE_DIR/rundir"

  local fsid mon_port rgw_port
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  mon_port="$(free_port 3300)"
  rgw_port="$(free_port "${RGW_PORT:-7480}")"
  [[ "$mon_port" != "$rgw_port" ]] || rgw_port="$(kernel_port)"
  write_conf "$fsid" "$mon_port" "$rgw_port" "$run_dir"

  # Any failure from here on (set -e, die, timeout) tears down what was started.
  trap start_failed EXIT

  local bin="$CEPH_PREFIX/usr/bin"
  # --- monitor
  "$bin/ceph-authtool" --create-keyring "$STATE_DIR/keyring" --gen-key -n mon. \
    --cap mon 'allow *' >/dev/null
  "$bin/monmaptool" --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
    "$STATE_DIR/monmap" >/dev/null
  "$bin/ceph-mon" --mkfs -i a --monmap "$STATE_DIR/monmap" --keyring "$STATE_DIR/keyring"
  spawn mon.a "$bin/ceph-mon" -i a
  keep_pid mon.a "$run_dir"
  wait_for "the monitor" ceph_cli mon stat

  # --- OSD (registering it needs the python CLI, hence PYTHONPATH above)
  local osd_uuid osd_id
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  osd_id="$(ceph_cli osd new "$osd_uuid")"
  [[ "$osd_id" == 0 ]] || die "unexpected OSD id '$osd_id'"
  mkdir -p "$STATE_DIR/osd/osd.0"
  "$bin/ceph-osd" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$STATE_DIR/log/osd.0.stderr" 2>&1
  spawn osd.0 "$bin/ceph-osd" -i 0
  keep_pid osd.0 "$run_dir"
  wait_for "the OSD to come up" osd_up

  # --- gateway (creates its pools on first start, then listens)
  spawn "$RGW_NAME" "$bin/radosgw" -n "$RGW_NAME"
  keep_pid "$RGW_NAME" "$run_dir"
  wait_for "radosgw on port $rgw_port" curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$rgw_port/"

  # --- S3 user with generated keys
  local access secret
  access="$(rand_hex 10 | tr 'a-f' 'A-F')"
  secret="$(rand_hex 20)"
  "$bin/radosgw-admin" -n client.admin user create --uid="$S3_UID" --display-name="baa tests" \
    --access-key="$access" --secret="$secret" >/dev/null

  write_wrappers
  local asok="$run_dir/$RGW_NAME.asok"
  cat >"$STATE_DIR/env" <<EOF
# Source me: written by scripts/rgw.sh start.
export S3_ENDPOINT=http://127.0.0.1:$rgw_port
export S3_REGION=us-east-1
export S3_ACCESS_KEY_ID=$access
export S3_SECRET_ACCESS_KEY=$secret
export RGW_ADMIN_SOCKET=$asok
# \$RGW_CEPH_BIN/ceph and \$RGW_CEPH_BIN/radosgw-admin are wrappers that set
# LD_LIBRARY_PATH, PYTHONPATH and CEPH_CONF themselves, e.g.
#   "\$RGW_CEPH_BIN/ceph" daemon "\$RGW_ADMIN_SOCKET" perf dump
export RGW_CEPH_BIN=$STATE_DIR/bin
export RGW_CEPH_CONF=$STATE_DIR/ceph.conf
# What the wrappers set, for running the raw binaries under $CEPH_PREFIX/usr/bin.
export RGW_LD_LIBRARY_PATH=$CEPH_LD_PATH
export RGW_PYTHONPATH=$CEPH_PREFIX/usr/lib/python3/dist-packages
EOF
  trap - EXIT
  log "up in $((SECONDS - t0))s: S3 at http://127.0.0.1:$rgw_port"
  echo "$STATE_DIR/env"
}

start_failed() {
  log "start failed; last log lines from $STATE_DIR/log:"
  tail -n 15 "$STATE_DIR"/log/*.log >&2 2>/dev/null || true
  cmd_stop_locked
}

osd_up() { ceph_cli osd stat 2>/dev/null | grep -q '1 up'; }

# Start a Ceph daemon; it forks into the background by itself. Its std fds go
# to a log file so that a caller reading our stdout through a pipe is not kept
# waiting, and the lock fds 8/9 are closed so the daemon does not hold our
# flock for its whole life (which would deadlock the next `stop`).
spawn() {
  local name="$1"; shift
  "$@" </dev/null >>"$STATE_DIR/log/$name.stderr" 2>&1 8>&- 9>&-
}

# Ceph deletes its pid file when a daemon exits cleanly; keep a copy so
# `stop` can still find (and `healthy` can check) the process.
keep_pid() {
  local name="$1" run_dir="$2"
  wait_for "$name's pid file" test -s "$run_dir/$name.pid"
  cp "$run_dir/$name.pid" "$run_dir/$name.pid.keep"
  echo "$run_dir/$name.pid.keep" >>"$STATE_DIR/pids"
}

# Small scripts so that callers need no library or python path of their own.
write_wrappers() {
  mkdir -p "$STATE_DIR/bin"
  local tool
  for tool in ceph radosgw-admin rados; do
    local exe="exec \"$CEPH_PREFIX/usr/bin/$tool\""
    [[ "$tool" == ceph ]] && exe="exec \"$SYS_PYTHON\" \"$CEPH_PREFIX/usr/bin/ceph\""
    cat >"$STATE_DIR/bin/$tool" <<EOF
#!/bin/sh
# Written by scripts/rgw.sh: runs $tool against the test cluster.
export LD_LIBRARY_PATH="$LD_LIBRARY_PATH"
export PYTHONPATH="$PYTHONPATH"
export CEPH_CONF="$STATE_DIR/ceph.conf"
$exe "\$@"
EOF
    chmod +x "$STATE_DIR/bin/$tool"
  done
}

# Stop without taking the lock (the caller holds it).
cmd_stop_locked() {
  local pidfiles=() f
  if [[ -f "$STATE_DIR/pids" ]]; then mapfile -t pidfiles <"$STATE_DIR/pids"; fi
  local pids=() pid
  for f in "${pidfiles[@]}"; do
    if [[ -f "$f" ]]; then
      pid="$(cat "$f")"
      # Only signal it if that pid is still one of our Ceph daemons.
      if is_ceph_daemon "$pid"; then pids+=("$pid"); fi
    fi
  done
  # The state is thrown away, so nothing needs a graceful shutdown: on TERM
  # the OSD would wait seconds to tell the (already dead) monitor it is going
  # down. KILL them all, then wait (bounded) until they are really gone.
  if ((${#pids[@]})); then
    kill -KILL "${pids[@]}" 2>/dev/null || true
    local n=0 alive=1
    while ((alive && n++ < 50)); do
      alive=0
      for pid in "${pids[@]}"; do if proc_running "$pid"; then alive=1; fi; done
      if ((alive)); then sleep 0.1; fi
    done
  fi
  if [[ -f "$STATE_DIR/rundir" ]]; then
    local run_dir
    run_dir="$(cat "$STATE_DIR/rundir")"
    [[ "$run_dir" == "$STATE_DIR/run" ]] || rm -rf "$run_dir"
  fi
  rm -rf "$STATE_DIR"
}

cmd_stop() {
  [[ -e "$STATE_DIR" ]] || return 0
  exec 9>"$STATE_DIR.lock"
  flock 9
  cmd_stop_locked
  # The lock file stays: removing it could let a waiting and a new caller
  # lock two different files at once.
}

cmd_requests() {
  [[ -f "$STATE_DIR/env" ]] || die "not running (no $STATE_DIR/env); run: scripts/rgw.sh start"
  local asok
  # shellcheck disable=SC1091
  asok="$(source "$STATE_DIR/env" && echo "$RGW_ADMIN_SOCKET")"
  # Same data as `"$RGW_CEPH_BIN/ceph" daemon "$asok" perf dump`, 15x faster.
  "$SYS_PYTHON" "$REPO_ROOT/scripts/rgw/perf_req.py" "$asok" ||
    die "reading the request counter from $asok failed"
}

cmd_env() {
  [[ -f "$STATE_DIR/env" ]] || die "not running (no $STATE_DIR/env)"
  echo "$STATE_DIR/env"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  requests) cmd_requests ;;
  install) ensure_ceph && log "Ceph binaries under '${CEPH_PREFIX:-/}'" ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 {start|stop|requests|install|env}" >&2
    exit 2
    ;;
esac
