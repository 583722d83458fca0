#!/usr/bin/env bash
# Train on a SLURM cluster; survives preemption and time limits by checkpoint + requeue.
#
#   sbatch [--gpus-per-node=8 --cpus-per-task=64] [--nodes=2] [--time=...] slurm/train.sh \
#     CONFIG [key.sub=value ...]
#
# Give about 8 CPUs per GPU (--cpus-per-task is per node here: one task per node); they are
# passed to srun explicitly (srun does not inherit them) and split over the ranks.
#
# One srun task per node runs `accelerate launch` with one process per GPU (or
# EEG_CPU_PROCESSES processes on CPU-only nodes). Before the time limit (or when the scheduler
# preempts), SLURM sends USR1 to this script; it becomes a STOP file in the run folder, every
# rank sees it at the next optimizer step, a checkpoint is saved, training exits with code 3 and
# this script requeues the job, which resumes from the newest complete checkpoint of the same
# run folder and W&B run. Overrides may contain {fold} (the array task id, see slurm/cv.sh).
# Environment: EEG_EMOTION_VENV (default: $SLURM_SUBMIT_DIR/.venv), EEG_DEEPSPEED_CONFIG (a
# ds_configs/*.json; GPU or CPU-only nodes), EEG_CPU_PROCESSES (default 1), EEG_MAX_RESTARTS
# (default 3: requeues after crashes; stop-and-requeue for preemption is not limited),
# EEG_TRAIN_SCRIPT (default launch/train.py). The job's log is RUN/logs/slurm-JOBID.log.
#SBATCH --job-name=eeg-emotion
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
#SBATCH --output=slurm-%j.out
set -uo pipefail

if [ $# -lt 1 ]; then
  echo "usage: sbatch slurm/train.sh CONFIG [key.sub=value ...]" >&2
  exit 2
fi
if [ -z "${SLURM_JOB_ID:-}" ]; then
  # Outside a job it would clear the run's status and requeue nothing: say so and touch nothing.
  echo "error: slurm/train.sh runs inside a SLURM job: submit it with" \
    "'sbatch slurm/train.sh $*' (or train here with 'python launch/train.py --config $*')" >&2
  exit 2
fi
cd "${SLURM_SUBMIT_DIR:-.}"
config=$1
shift
overrides=()
for arg in "$@"; do
  overrides+=("${arg//\{fold\}/${SLURM_ARRAY_TASK_ID:-0}}")
done

venv=${EEG_EMOTION_VENV:-$PWD/.venv}
# shellcheck disable=SC1091
[ -f "$venv/bin/activate" ] && source "$venv/bin/activate"

# Validate the settings and find the run folder before any node is busy.
if ! run_dir=$(python -c 'import sys
from eeg_emotion.config import load_settings
print(load_settings(sys.argv[1], sys.argv[2:]).output_dir)' "$config" "${overrides[@]}"); then
  echo "error: invalid settings; not training" >&2
  exit 2
fi
nodes=${SLURM_JOB_NUM_NODES:-1}
gpus=${SLURM_GPUS_ON_NODE:-0}
if [ "$gpus" -gt 0 ]; then per_node=$gpus; else per_node=${EEG_CPU_PROCESSES:-1}; fi
total=$((nodes * per_node))
mkdir -p "$run_dir/logs"
job=${SLURM_JOB_ID:-local}
# An array task requeues as <array>_<task>: its own job id may equal the array's, which names
# every task of the array (scontrol requeue would stop and requeue them all).
requeue_id=$job
[ -n "${SLURM_ARRAY_JOB_ID:-}" ] && requeue_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
restarts=${SLURM_RESTART_COUNT:-0}
exec >> "$run_dir/logs/slurm-$job.log" 2>&1
echo "$(date -Is) job $job (restart $restarts) on ${SLURM_JOB_NODELIST:-$(hostname)}: $config ${overrides[*]}"

stop_requested() {
  echo "$(date -Is) got a stop signal: asking training to checkpoint and stop"
  touch "$run_dir/STOP"
}
trap stop_requested USR1 TERM

cpus=${SLURM_CPUS_PER_TASK:-$(nproc)}
if [ "$gpus" -gt 0 ] && [ "$cpus" -lt $((4 * gpus)) ]; then
  echo "warning: $cpus CPUs for $gpus GPUs per node; data loading and kernel launches want" \
    "about 8 per GPU (sbatch --cpus-per-task=$((8 * gpus)))"
fi
threads=$(( cpus < $(nproc) ? cpus : $(nproc) ))
export OMP_NUM_THREADS=$(( threads / per_node > 0 ? threads / per_node : 1 ))
main_ip=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n1)
port=$((29500 + ${SLURM_JOB_ID:-0} % 1000))
launch=(--num_machines "$nodes" --num_processes "$total" --main_process_ip "${main_ip:-127.0.0.1}"
        --main_process_port "$port" --dynamo_backend no)
if [ -n "${EEG_DEEPSPEED_CONFIG:-}" ]; then
  launch+=(--use_deepspeed --deepspeed_config_file "$EEG_DEEPSPEED_CONFIG")
  # Without this, DeepSpeed on several nodes starts pdsh (a hostfile and ssh) from every node;
  # here srun already starts one launcher per node.
  [ "$nodes" -gt 1 ] && launch+=(--deepspeed_multinode_launcher standard)
elif [ "$total" -gt 1 ]; then
  launch+=(--multi_gpu)  # also the CPU path: the training loop passes cpu=True itself
fi
if [ "$nodes" -gt 1 ]; then
  launch+=(--rdzv_backend c10d)
fi
script=${EEG_TRAIN_SCRIPT:-launch/train.py}
rm -f "$run_dir/status.json"  # training rewrites it; a stale one must not decide anything
# What each task (one per node) runs, with its own $SLURM_PROCID: the node's machine rank. With
# c10d the rendezvous itself hands out the global ranks; only the first node hosts its store,
# told explicitly: guessed from host names, several launchers on one machine (a test cluster
# on loopback) would each try to host it, and the first node's launcher, finding its port
# taken, gives up.
per_task='echo "node $SLURMD_NODENAME: task $SLURM_PROCID of $SLURM_NTASKS, $EEG_PER_NODE process(es)"
rdzv=()
[ "$SLURM_NTASKS" -gt 1 ] && rdzv=(--rdzv_conf "is_host=$((SLURM_PROCID == 0 ? 1 : 0))")
exec python -m accelerate.commands.launch --machine_rank "$SLURM_PROCID" "${rdzv[@]}" "$@"'
EEG_PER_NODE=$per_node srun --ntasks-per-node=1 --cpus-per-task="$cpus" --kill-on-bad-exit=1 \
  bash -c "$per_task" _ "${launch[@]}" "$script" --config "$config" "${overrides[@]}" &
pid=$!
# `wait` returns early when a trapped signal arrives: keep waiting for training to finish.
while true; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done

# The launcher folds exit codes into 0/1: the run's status.json says what happened.
status=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["status"])' \
  "$run_dir/status.json" 2>/dev/null || echo "none")
case $status in
finished)
  echo "$(date -Is) finished"
  exit 0
  ;;
stopped)  # preempted or out of time, with a checkpoint: never counted as a failure
  echo "$(date -Is) stopped with a checkpoint: requeueing"
  scontrol requeue "$requeue_id"
  exit 0
  ;;
failed)  # e.g. a non-finite loss: it would fail the same way again
  echo "$(date -Is) training failed (see train.log): not requeueing"
  exit 1
  ;;
*)  # crashed or killed: try again from the newest complete checkpoint, a bounded number of times
  if [ "$restarts" -lt "${EEG_MAX_RESTARTS:-3}" ]; then
    echo "$(date -Is) exit $rc with status '$status': requeueing (restart $((restarts + 1)) of ${EEG_MAX_RESTARTS:-3})"
    scontrol requeue "$requeue_id"
    exit 0
  fi
  echo "$(date -Is) exit $rc with status '$status' after $restarts restarts: giving up"
  exit 1
  ;;
esac
