"""Train a classifier and leave a complete run folder.

    accelerate launch launch/train.py --config configs/tiny.yaml [key.sub=value ...]
    python launch/train.py --config configs/tiny.yaml output_dir=runs/x   (one process)

Exit codes: 0 finished, 2 bad settings or data or a run folder that takes no more writes, 3
stopped on request (checkpoint saved: run the same command again to resume), 1 training failed
(e.g. non-finite loss) or an unexpected error (its traceback in RUN/train.log). Once the run
holds its folder, RUN/status.json records how it ended (finished, stopped or failed, and why).
"""

from __future__ import annotations

import importlib
import sys

from eeg_emotion.cli import handle_errors, settings_parser

EXIT_CODES = {"finished": 0, "stopped": 3}  # trainer.Outcome (its module imports torch)


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = settings_parser(__doc__, prog).parse_args(argv)
    from eeg_emotion.config import load_settings

    settings = load_settings(args.config, args.overrides)  # before any heavy import
    from eeg_emotion.training.launch_checks import check_launcher_environment

    check_launcher_environment(settings)
    preload()
    from eeg_emotion.training import trainer

    return EXIT_CODES[trainer.main(settings).value]


def preload() -> None:
    """Import what training runs (torch, transformers, peft: ~10 s), library chatter quieted
    first. main calls it once the settings pass; cv calls it before forking its folds, so that
    no fold imports them again."""
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    importlib.import_module("eeg_emotion.training.trainer")


if __name__ == "__main__":
    sys.exit(main())
