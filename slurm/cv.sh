#!/usr/bin/env bash
# Cross-validation on SLURM: a job array with one task per fold (each its own run folder and W&B
# run, all in one W&B group), then an aggregate job that writes OUT/cv_results.{json,md}.
#
#   bash slurm/cv.sh CONFIG subject_kfold|kfold|loso|cross_trial|cross_session FOLDS OUT [key.sub=value ...]
#   EEG_SBATCH_ARGS="--gpus-per-node=4 --time=12:00:00" bash slurm/cv.sh ...
#
# For loso, FOLDS is the number of subjects (fold i holds out the i-th subject).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash slurm/cv.sh CONFIG subject_kfold|kfold|loso|cross_trial|cross_session FOLDS OUT [key.sub=value ...]" >&2
  exit 2
fi
config=$1 protocol=$2 folds=$3 out=$4
shift 4
case $protocol in subject_kfold|kfold|loso|cross_trial|cross_session) ;; *) echo "error: protocol must be subject_kfold, kfold, loso, cross_trial or cross_session" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
group=$(basename "$out")
venv=${EEG_EMOTION_VENV:-$PWD/.venv}
py=python
[ -x "$venv/bin/python" ] && py="$venv/bin/python"
# Before anything is submitted: the settings, the fold count against the data, and the CV group
# recorded in OUT/cv_group.json (aggregate pools exactly its folds; a rerun with other folds or
# settings into OUT is refused here).
if ! "$py" -m eeg_emotion.cli.cv --config "$config" --protocol "$protocol" --folds "$folds" \
  --out "$out" --prepare-only "$@"; then
  echo "error: nothing submitted" >&2
  exit 2
fi
# shellcheck disable=SC2086
array=$(sbatch --parsable --array="0-$((folds - 1))" --job-name="cv-$group" \
  --output="$out/slurm-%A_%a.out" ${EEG_SBATCH_ARGS:-} "$here/train.sh" "$config" \
  "data.split.protocol=$protocol" "data.split.num_folds=$folds" "data.split.fold={fold}" \
  "output_dir=$out/fold-{fold}" "train.tracker.group=$group" "train.tracker.name=$group-fold-{fold}" "$@")
aggregate=$(sbatch --parsable --dependency="afterany:$array" --job-name="cv-$group-aggregate" \
  --output="$out/aggregate-%j.log" \
  --wrap "'$py' -m eeg_emotion.cli.aggregate '$out'")
echo "array job $array ($folds folds), aggregate job $aggregate -> $out/cv_results.md"
