"""Cross-validation on this machine in one command: every fold in turn, then one table.

    python launch/cv.py --config CONFIG --protocol kfold|loso|cross_trial [--folds N] --out DIR
        [--baseline band_power_lr|eegnet] [overrides]

Each fold is an ordinary run folder DIR/fold-<i> (W&B group = basename of DIR); a fold that
already finished is not trained again (its run resumes at the end). kfold: folds over each
subject's trials; cross_trial: folds over videos (the same for every subject); loso: one subject
per fold, --folds defaults to the number of subjects found. --baseline fits that baseline on the
same folds instead of the LLM. The table (mean ± sd over folds and pooled over all test windows
and trials) goes to DIR/cv_results.md and .json - the same as the SLURM array (slurm/cv.sh);
`python launch/report.py DIR` adds report.md and plots.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from eeg_emotion.config import load_settings
from eeg_emotion.data.readers.deap import resolve_subjects
from eeg_emotion.errors import EEGEmotionError
from eeg_emotion.evaluation.cv import write

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", required=True)
    p.add_argument("--protocol", choices=["kfold", "loso", "cross_trial"], required=True)
    p.add_argument("--folds", type=int, help="kfold: number of folds (default 5); loso: subjects")
    p.add_argument("--out", required=True)
    p.add_argument("--baseline", choices=["band_power_lr", "eegnet"], help="instead of the LLM")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)
        folds = args.folds
        if folds is None:
            folds = (
                len(resolve_subjects(settings.data.root, settings.data.subjects))
                if args.protocol == "loso"
                else 5
            )
    except EEGEmotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for fold in range(folds):
        script = "baseline.py" if args.baseline else "train.py"
        cmd = [
            sys.executable,
            str(ROOT / "launch" / script),
            "--config",
            args.config,
            *args.overrides,
            *([f"baseline.name={args.baseline}"] if args.baseline else []),
            f"data.split.protocol={args.protocol}",
            f"data.split.num_folds={max(folds, 2)}",
            f"data.split.fold={fold}",
            f"output_dir={out / f'fold-{fold}'}",
            f"train.tracker.group={out.name}",
            f"train.tracker.name={out.name}-fold-{fold}",
        ]
        print(f"fold {fold + 1}/{folds}: {out / f'fold-{fold}'}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(
                f"error: fold {fold} failed; see {out / f'fold-{fold}' / 'train.log'}",
                file=sys.stderr,
            )
            return 1
    print(write(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
