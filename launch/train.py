"""Train a classifier and leave a complete run folder.

    accelerate launch launch/train.py --config configs/tiny.yaml [key.sub=value ...]
    python launch/train.py --config configs/tiny.yaml output_dir=runs/x   (one process)

Exit codes: 0 finished, 2 bad settings or data, 3 stopped on request (checkpoint saved: run the
same command again to resume), 1 training failed (e.g. non-finite loss).
"""

from __future__ import annotations

import argparse
import sys

from eeg_emotion.config import load_settings
from eeg_emotion.errors import ConfigError, EEGEmotionError, TrainingError

EXIT_CODES = {"finished": 0, "stopped": 3}  # trainer.Outcome (its module imports torch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="YAML settings file")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)  # before any heavy import
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    from eeg_emotion.training import trainer

    try:
        outcome = trainer.main(settings)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EEGEmotionError as exc:  # settings, data, a run folder that takes no more writes
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return EXIT_CODES[outcome.value]


if __name__ == "__main__":
    sys.exit(main())
