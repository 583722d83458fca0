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
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.train import TrainingError, main


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="YAML settings file")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    args = p.parse_args(argv)
    try:
        return main(load_settings(args.config, args.overrides))
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
