"""Build (or load from the cache) the tokenized dataset and print its summary.

python launch/preprocess.py --config configs/demo.yaml [key.sub=value ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from eeg_emotion.config import load_settings
from eeg_emotion.data.pipeline import build
from eeg_emotion.errors import EEGEmotionError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="YAML settings file")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    start = time.perf_counter()
    try:
        settings = load_settings(args.config, args.overrides)
        data = build(settings.data)
    except EEGEmotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(data.summary())
    print(f"ready in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
