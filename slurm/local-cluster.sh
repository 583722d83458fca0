#!/usr/bin/env bash
# A throwaway SLURM on loopback (munge + slurmctld + one slurmd per node) for trying the templates
# and for the tests. State lives in $EEG_SLURM_DIR (default: a folder under $TMPDIR).
#
#   bash slurm/local-cluster.sh start    # prints SLURM_CONF=<path>: export it to use the cluster
#   bash slurm/local-cluster.sh status
#   bash slurm/local-cluster.sh stop
#
# EEG_SLURM_NODES=N (default 1) starts N nodes, n1 ... nN, all on 127.0.0.1, each slurmd with
# its own port, spool, PID and log file; the names must resolve to 127.0.0.1 (as root they are
# added to /etc/hosts when missing) because jobs reach their first node by name.
# EEG_SLURM_PORT (default 16817) is the controller's port, the nodes take the next N ports.
# EEG_SLURM_FIRST_JOB_ID (default 1): the job scripts derive ports from the job id, so two
# clusters on one machine should number their jobs apart.
# Needs Debian's slurm-wlm and munge (installed here when missing and running as root).
set -euo pipefail
cmd=${1:-status}
dir=${EEG_SLURM_DIR:-${TMPDIR:-/tmp}/eeg-emotion-slurm}
conf=$dir/slurm.conf
host=$(hostname -s)
nodes=${EEG_SLURM_NODES:-1}
export SLURM_CONF=$conf
if ! [[ $nodes =~ ^[1-9][0-9]*$ ]]; then
  echo "error: EEG_SLURM_NODES=$nodes is not a number of nodes" >&2
  exit 2
fi
if [ "$nodes" -eq 1 ]; then names=("$host"); else mapfile -t names < <(seq -f 'n%g' "$nodes"); fi

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

resolve_names() {  # n1 ... nN must reach this machine: the job scripts connect to them by name
  local missing=() name addr
  for name in "${names[@]}"; do
    addr=$(getent ahostsv4 "$name" | awk 'NR == 1 {print $1}') || addr=""
    if [ -z "$addr" ]; then
      missing+=("$name")
    elif [ "$addr" != 127.0.0.1 ]; then
      echo "error: node name $name resolves to $addr, not 127.0.0.1" >&2
      exit 1
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: ${missing[*]} do not resolve; add '127.0.0.1 ${missing[*]}' to /etc/hosts" >&2
    exit 1
  fi
  echo "127.0.0.1 ${missing[*]}  # eeg-emotion local SLURM nodes" >> /etc/hosts
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
  [ "$nodes" -eq 1 ] || resolve_names
  if [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2>/dev/null; then
    echo "SLURM_CONF=$conf"
    exit 0
  fi
  mkdir -p "$dir"/{state,log,run,munge}
  for name in "${names[@]}"; do mkdir -p "$dir/spool/$name"; done
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
  node_lines=""
  for i in "${!names[@]}"; do
    # One slurmd per node on one address: each listens on a port of its own.
    node_lines+="NodeName=${names[$i]} NodeAddr=127.0.0.1 Port=$((port + 1 + i)) CPUs=$cpus"
    node_lines+=" RealMemory=$mem State=UNKNOWN"$'\n'
  done
  node_list=$(IFS=,; echo "${names[*]}")
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
FirstJobId=${EEG_SLURM_FIRST_JOB_ID:-1}
KillWait=60
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmdParameters=config_overrides
${node_lines}PartitionName=local Nodes=$node_list Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  slurmctld -f "$conf"
  for name in "${names[@]}"; do slurmd -f "$conf" -N "$name"; done
  for _ in $(seq 100); do
    up=$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -cE ' (idle|mix|alloc)$' || true)
    if [ "$up" -eq "$nodes" ]; then
      echo "SLURM_CONF=$conf"
      exit 0
    fi
    sleep 0.2
  done
  echo "error: the local SLURM did not come up; see $dir/log" >&2
  exit 1
  ;;
stop)
  for file in "$dir"/run/slurmd*.pid; do stop_pid "$file"; done
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
