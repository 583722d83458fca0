#!/usr/bin/env bash
# A throwaway one-node SLURM on loopback (munge + slurmctld + slurmd) for trying the templates
# and for the tests. State lives in $EEG_SLURM_DIR (default: a folder under $TMPDIR).
#
#   bash slurm/local-cluster.sh start    # prints SLURM_CONF=<path>: export it to use the cluster
#   bash slurm/local-cluster.sh status
#   bash slurm/local-cluster.sh stop
#
# Needs Debian's slurm-wlm and munge (installed here when missing and running as root).
set -euo pipefail
cmd=${1:-status}
dir=${EEG_SLURM_DIR:-${TMPDIR:-/tmp}/eeg-emotion-slurm}
conf=$dir/slurm.conf
host=$(hostname -s)
export SLURM_CONF=$conf

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: slurm-wlm and munge are not installed (apt-get install slurm-wlm munge as root)" >&2
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

stop_pid() {  # stop a daemon by the PID in its file
  local file=$1
  if [ -f "$file" ]; then
    local pid
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
  fi
}

case $cmd in
start)
  install_packages
  if [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
    echo "SLURM_CONF=$conf"
    exit 0
  fi
  mkdir -p "$dir"/{state,spool,log,run,munge}
  chmod 700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  # The job scripts ask for 8 CPUs per task (8 per GPU): advertise at least that many
  # (config_overrides: slurmd takes this over the hardware; the job scripts cap their threads at
  # what the machine has). Not more on a small machine: a requeued job must wait until its
  # previous run has left the node, or SLURM kills it ("Job credential revoked").
  cpus=$(( $(nproc) > 8 ? $(nproc) : 8 ))
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  port=${EEG_SLURM_PORT:-16817}
  cat > "$conf" <<CONF
ClusterName=eegemotion
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=60
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 100); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
      echo "SLURM_CONF=$conf"
      exit 0
    fi
    sleep 0.2
  done
  echo "error: the local SLURM did not come up; see $dir/log" >&2
  exit 1
  ;;
stop)
  stop_pid "$dir/run/slurmd.pid"
  stop_pid "$dir/run/slurmctld.pid"
  stop_pid "$dir/run/munged.pid"
  echo "stopped"
  ;;
status)
  if scontrol ping 2>/dev/null | grep -q UP; then
    sinfo
    echo "SLURM_CONF=$conf"
  else
    echo "not running"
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
