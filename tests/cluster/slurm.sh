#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for `make test-cluster`: Debian's slurm-wlm + munge,
# slurmctld and slurmd run as root with their state in one directory, no accounting.
#   tests/cluster/slurm.sh install   apt-get install slurm-wlm munge (if sbatch is missing)
#   tests/cluster/slurm.sh start     write the config, start munged/slurmctld/slurmd, wait idle
#   tests/cluster/slurm.sh stop      stop the daemons that start started, remove its config
# Idempotent: start on a running cluster only checks it, and stop then leaves it running.
# The config goes to /etc/slurm/slurm.conf, the one place every SLURM command finds it (the
# executor plugin's job step drops SLURM_* variables, SLURM_CONF included); a config this
# script did not write is never touched.
set -euo pipefail

STATE=${VLPIPE_SLURM_DIR:-/tmp/vlpipe-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by vlpipe tests/cluster/slurm.sh"

die() { echo "slurm.sh: $*" >&2; exit 1; }

install() {
  command -v sbatch >/dev/null && command -v munged >/dev/null && return
  [ "$(id -u)" = 0 ] || die "installing slurm-wlm and munge needs root (apt-get)"
  apt-get install -y -q slurm-wlm munge >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
}

write_config() {
  local node cpus memory
  node=$(hostname -s)
  cpus=$(nproc)
  memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
    die "$CONF exists and is not this test's: run the cluster test on a machine without SLURM"
  fi
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log" "$(dirname "$CONF")"
  cat >"$CONF" <<CONF
$MARK
ClusterName=vlpipe-test
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=defer_batch
MinJobAge=600
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
                                    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/munged.started"
  for _ in $(seq 20); do munge -n | unmunge >/dev/null 2>&1 && return; sleep 0.5; done
  die "munged does not answer (see /var/log/munge/munged.log)"
}

start() {
  [ "$(id -u)" = 0 ] || die "the one-node cluster runs its daemons as root"
  command -v slurmctld >/dev/null || die "no slurmctld: run '$0 install' (Debian: slurm-wlm munge)"
  mkdir -p "$STATE"
  write_config
  start_munge
  local daemon
  for daemon in slurmctld slurmd; do
    running "$STATE/$daemon.pid" || { "$daemon" && touch "$STATE/$daemon.started"; }
  done
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
      echo "slurm.sh: one-node cluster up ($(sinfo -h -o '%P %D %c cpus %m MB'))"; return
    fi
    sleep 1
  done
  die "the node did not become idle: $(sinfo 2>&1 | tail -2); logs in $STATE/log"
}

stop() {
  local daemon
  for daemon in slurmd slurmctld; do
    [ -f "$STATE/$daemon.started" ] || continue
    if running "$STATE/$daemon.pid"; then
      kill "$(cat "$STATE/$daemon.pid")"
      for _ in $(seq 20); do running "$STATE/$daemon.pid" || break; sleep 0.5; done
    fi
    rm -f "$STATE/$daemon.started"
  done
  if [ -f "$STATE/munged.started" ]; then
    pkill -u munge -x munged || true
    rm -f "$STATE/munged.started"
  fi
  if ! running "$STATE/slurmctld.pid" && [ -f "$CONF" ] && grep -qxF "$MARK" "$CONF"; then
    rm -f "$CONF"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 install|start|stop" ;;
esac
