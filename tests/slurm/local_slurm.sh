#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for tests (tests/test_slurm.py, .ci/run).
#
#   tests/slurm/local_slurm.sh check    # exit 0 if `up` can work here: root, and slurm installed
#                                       # or apt-get able to install it ("check quick": no apt call)
#   tests/slurm/local_slurm.sh up       # install (apt), configure, start; wait for an idle node
#   tests/slurm/local_slurm.sh status   # the daemons we started and sinfo
#   tests/slurm/local_slurm.sh down     # cancel jobs, stop the daemons by the pids `up` recorded
#
# Recipe: Debian 12's slurm 22.05 (slurmctld, slurmd, slurm-client) and munge, one node named
# after `hostname` with `nproc` CPUs and 90 % of the memory, accounting off (so Snakemake needs
# --slurm-no-account --slurm-status-command squeue). The daemons run in the foreground under
# nohup, so the pids recorded in $STATE/*.pid are exactly the processes started here; `down`
# kills those pids and nothing else. An existing /etc/slurm/slurm.conf or munge key is saved
# in $STATE and put back by `down`.
#
# Environment: FACEDYN_SLURM_STATE (default /tmp/facedyn-slurm): pids, logs, saved files.
set -euo pipefail

STATE=${FACEDYN_SLURM_STATE:-/tmp/facedyn-slurm}
CONF=/etc/slurm/slurm.conf
KEY=/etc/munge/munge.key
DAEMONS=(munged slurmctld slurmd)

log() { echo "local_slurm: $*" >&2; }
die() { log "$*"; exit 1; }
have_binaries() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
  && command -v sinfo >/dev/null && command -v munged >/dev/null; }

# Why `up` cannot work here (empty when it can). With "quick", apt is not asked whether it
# can install the packages (no apt-get update).
why_not() {
  if [ "$(id -u)" != 0 ]; then echo "not root (uid $(id -u)): the daemons need root"; return; fi
  if [ "$(uname -s)" != Linux ]; then echo "not Linux"; return; fi
  if have_binaries; then return; fi
  if ! command -v apt-get >/dev/null; then
    echo "slurmctld/slurmd/munged are not installed and there is no apt-get"; return
  fi
  [ "${1:-}" = quick ] && return
  if ! timeout 180 apt-get update -qq >/dev/null 2>&1; then
    echo "slurm is not installed and apt-get update fails (no package repository reachable)"
    return
  fi
  if ! apt-cache policy slurmctld munge 2>/dev/null | grep -q "Candidate: [0-9]"; then
    echo "slurm is not installed and apt offers no slurmctld/munge package"
  fi
}

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

install_packages() {
  have_binaries && return
  log "installing slurmctld slurmd slurm-client munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$STATE/apt.log" 2>&1 || die "apt-get update failed ($STATE/apt.log)"
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge \
    >>"$STATE/apt.log" 2>&1 || die "apt-get install failed ($STATE/apt.log)"
  have_binaries || die "packages installed but slurmctld/slurmd/sinfo/munged not on PATH"
}

save_once() {  # keep the machine's own file (once) so that `down` can restore it
  local file=$1 saved="$STATE/saved$(echo "$1" | tr / _)"
  if [ -e "$file" ] && [ ! -e "$saved" ] && [ ! -e "$STATE/ours$(echo "$1" | tr / _)" ]; then
    cp -p "$file" "$saved"
  fi
  touch "$STATE/ours$(echo "$1" | tr / _)"
}

restore() {
  local file=$1 saved="$STATE/saved$(echo "$1" | tr / _)" ours="$STATE/ours$(echo "$1" | tr / _)"
  [ -e "$ours" ] || return 0
  if [ -e "$saved" ]; then mv -f "$saved" "$file"; else rm -f "$file"; fi
  rm -f "$ours"
}

write_config() {
  local host cpus mem
  host=$(hostname)
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  save_once "$CONF"
  cat >"$CONF" <<EOF
# Written by facedyn tests/slurm/local_slurm.sh: a single-node test cluster.
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  save_once "$KEY"
  dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
  chown munge:munge "$KEY" 2>/dev/null || true
  chmod 400 "$KEY"
  chown munge:munge /run/munge 2>/dev/null || true
  log "node $host: $cpus CPUs, $mem MB"
}

start() {  # name, command...: foreground daemon under nohup; its pid goes to $STATE/name.pid
  local name=$1; shift
  if alive "$name"; then die "$name already running (pid $(cat "$STATE/$name.pid")); run down first"; fi
  nohup "$@" >"$STATE/$name.out" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
  sleep 1
  alive "$name" || die "$name exited at once: $(tail -5 "$STATE/$name.out")"
  log "started $name (pid $(cat "$STATE/$name.pid"))"
}

up() {
  local reason
  reason=$(why_not quick)
  [ -z "$reason" ] || die "cannot stand up SLURM here: $reason"
  mkdir -p "$STATE"
  install_packages
  write_config
  # --force: munged runs even if a stale socket is left from an earlier run.
  start munged munged --foreground --force
  start slurmctld slurmctld -D -c   # -c: clear state left by an earlier test cluster
  start slurmd slurmd -D
  local host state="" i
  host=$(hostname)
  for i in $(seq 60); do
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle) log "node $host idle after ${i} s"; sinfo >&2; return 0 ;;
      down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  log "node never became idle (last state: '${state}'); logs:"
  tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log "$STATE"/*.out >&2 || true
  down
  exit 1
}

down() {
  if [ ! -d "$STATE" ]; then log "nothing to stop ($STATE does not exist)"; return 0; fi
  if alive slurmctld; then
    local i  # cancel what is left (a failed test), so no job step outlives slurmd
    for i in $(seq 30); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      squeue -h -o %i | xargs -r scancel 2>/dev/null || true
      sleep 1
    done
  fi
  local name pid i
  for name in slurmd slurmctld munged; do
    alive "$name" || { rm -f "$STATE/$name.pid"; continue; }
    pid=$(cat "$STATE/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored TERM; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$name.pid"
    log "stopped $name (pid $pid)"
  done
  restore "$CONF"
  restore "$KEY"
}

status() {
  local name
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then echo "$name: running, pid $(cat "$STATE/$name.pid")"
    else echo "$name: not running"; fi
  done
  if alive slurmctld; then sinfo; squeue; fi
}

case ${1:-} in
  check)  # check [quick]: exit 0 when `up` can work here; says why not otherwise
    reason=$(why_not "${2:-}")
    if [ -n "$reason" ]; then echo "$reason"; exit 1; fi
    if have_binaries; then echo "root; slurm and munge installed"
    else echo "root; slurm and munge to be installed with apt-get"; fi ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 check|up|status|down" >&2; exit 2 ;;
esac
