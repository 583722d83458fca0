#!/usr/bin/env bash
# Hyperparameter search on SLURM: an array of workers pulling trials from one Optuna study (a
# journal file in STUDY, on the shared file system), then a final job that trains the best
# settings once more (the one model that reads the test split) and writes STUDY/study.md.
#
#   bash slurm/tune.sh CONFIG SPACE STUDY TRIALS TASKS [key.sub=value ...]
#   EEG_SBATCH_ARGS="--gpus-per-node=1 --cpus-per-task=8 --time=12:00:00" bash slurm/tune.sh ...
#
# Run outside a job, it checks the settings and the space and records the study (nothing is
# submitted when they are refused), then submits itself as an array of TASKS workers and the
# final job (afterany on the array). Inside a job it is one worker: `eeg-emotion tune`, which
# pulls trials until TRIALS have been claimed. Before the time limit (or when the scheduler
# preempts), SLURM sends USR1 to this script; it is passed on to the worker, whose running trial
# checkpoints and stops; the worker releases the trial (the next worker to pull from the study,
# here or elsewhere, resumes it from its checkpoint) and exits with code 3, and this script
# requeues the task. A local `eeg-emotion tune` with the same arguments may pull from the same
# study at the same time. Logs: STUDY/logs/. Environment: EEG_EMOTION_VENV (default:
# $SLURM_SUBMIT_DIR/.venv), EEG_SBATCH_ARGS (added to both sbatch calls), EEG_MAX_RESTARTS
# (default 3: requeues after crashes; stop-and-requeue is not limited).
#SBATCH --job-name=eeg-tune
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@300
#SBATCH --open-mode=append
set -uo pipefail

if [ $# -lt 5 ]; then
  echo "usage: bash slurm/tune.sh CONFIG SPACE STUDY TRIALS TASKS [key.sub=value ...]" >&2
  exit 2
fi
config=$1 space=$2 study=$3 trials=$4 tasks=$5
shift 5
args=(--config "$config" --space "$space" --study "$study" --trials "$trials")

if [ -z "${SLURM_JOB_ID:-}" ]; then  # submit: check, record the study, then the jobs
  case $tasks in '' | *[!0-9]* | 0) echo "error: TASKS must be a whole number >= 1, got '$tasks'" >&2; exit 2 ;; esac
  here=$(cd "$(dirname "$0")" && pwd)
  venv=${EEG_EMOTION_VENV:-$PWD/.venv}
  py=python
  [ -x "$venv/bin/python" ] && py="$venv/bin/python"
  if ! "$py" -m eeg_emotion.cli.tune "${args[@]}" --prepare-only "$@"; then
    echo "error: nothing submitted" >&2
    exit 2
  fi
  name=$(basename "$study")
  mkdir -p "$study/logs"
  # shellcheck disable=SC2086
  array=$(sbatch --parsable --array="0-$((tasks - 1))" --job-name="tune-$name" \
    --output="$study/logs/worker-%A_%a.log" ${EEG_SBATCH_ARGS:-} "$here/tune.sh" \
    "$config" "$space" "$study" "$trials" "$tasks" "$@") || exit 1
  # shellcheck disable=SC2086
  final=$(sbatch --parsable --dependency="afterany:$array" --job-name="tune-$name-final" \
    --export=ALL,EEG_TUNE_FINISH=1 --output="$study/logs/final-%j.log" ${EEG_SBATCH_ARGS:-} \
    "$here/tune.sh" "$config" "$space" "$study" "$trials" "$tasks" "$@") || exit 1
  echo "array job $array ($tasks workers), final job $final -> $study/study.md"
  exit 0
fi

cd "${SLURM_SUBMIT_DIR:-.}"
venv=${EEG_EMOTION_VENV:-$PWD/.venv}
# shellcheck disable=SC1091
[ -f "$venv/bin/activate" ] && source "$venv/bin/activate"
job=$SLURM_JOB_ID
# An array task requeues as <array>_<task>: its own job id may equal the array's, which names
# every task of the array (scontrol requeue would stop and requeue them all).
requeue_id=$job
[ -n "${SLURM_ARRAY_JOB_ID:-}" ] && requeue_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
restarts=${SLURM_RESTART_COUNT:-0}
what="worker ${SLURM_ARRAY_TASK_ID:-0}"
[ -n "${EEG_TUNE_FINISH:-}" ] && args+=(--finish) && what="final job"
echo "$(date -Is) $what, job $job (restart $restarts) on $(hostname): ${args[*]} $*"
cpus=${SLURM_CPUS_PER_TASK:-$(nproc)}
export OMP_NUM_THREADS=$(( cpus < $(nproc) ? cpus : $(nproc) ))

python -m eeg_emotion.cli.tune "${args[@]}" "$@" &
pid=$!
stop_requested() {
  echo "$(date -Is) got a stop signal: the running trial checkpoints and stops"
  kill -USR1 "$pid" 2>/dev/null
}
trap stop_requested USR1 TERM
# `wait` returns early when a trapped signal arrives: keep waiting for the worker to finish.
while true; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done

case $rc in
0)
  echo "$(date -Is) finished"
  exit 0
  ;;
3)  # stopped on request, its trial released with a checkpoint: never counted as a failure
  echo "$(date -Is) stopped with a checkpoint: requeueing"
  scontrol requeue "$requeue_id"
  exit 0
  ;;
2)  # settings, space, data or the study folder refused: it would be refused again
  echo "$(date -Is) refused (exit 2): not requeueing"
  exit 2
  ;;
*)
  if [ "$restarts" -lt "${EEG_MAX_RESTARTS:-3}" ]; then
    echo "$(date -Is) exit $rc: requeueing (restart $((restarts + 1)) of ${EEG_MAX_RESTARTS:-3})"
    scontrol requeue "$requeue_id"
    exit 0
  fi
  echo "$(date -Is) exit $rc after $restarts restarts: giving up"
  exit 1
  ;;
esac
