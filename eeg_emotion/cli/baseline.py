"""Fit a baseline on the same data settings and splits as an LLM run; same run-folder layout.

    python launch/baseline.py --config configs/demo.yaml
        [baseline.name=band_power_lr|eegnet|connectivity] [output_dir=runs/demo-lr]
        [key.sub=value ...]

Writes OUTPUT_DIR/config.yaml, splits.json, results.json (val/test: windows, trials, CIs,
p-values, per subject), test_results.txt, predictions_{val,test}.npz and plots/; with
train.tracker.kind=wandb also a W&B run (job type "baseline", in train.tracker.group) laid out
as a training run's dashboard (docs/training.md). Exit codes: 0 done, 2 bad settings or data.
"""

from __future__ import annotations

import importlib
import logging
import sys

from eeg_emotion.cli import handle_errors, settings_parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    config_help = "YAML settings file (the LLM run's, e.g. its config.yaml)"
    args = settings_parser(__doc__, prog, config_help=config_help).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from eeg_emotion.config import load_settings

    settings = load_settings(args.config, args.overrides)  # before any heavy import
    preload()
    from eeg_emotion.baselines.runner import run

    print(run(settings)["table"])
    return 0


def preload() -> None:
    """Import what the baselines run (scikit-learn, torch for EEGNet), library chatter quieted
    first: main calls it once the settings pass, cv before forking its folds."""
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    importlib.import_module("eeg_emotion.baselines.runner")


if __name__ == "__main__":
    sys.exit(main())
