"""Build (or load from the cache) the tokenized dataset and print its summary.

python launch/preprocess.py --config configs/demo.yaml [key.sub=value ...]
"""

from __future__ import annotations

import logging
import sys
import time

from eeg_emotion.cli import handle_errors, settings_parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    args = settings_parser(__doc__, prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from eeg_emotion.config import load_settings
    from eeg_emotion.data.pipeline import build

    start = time.perf_counter()
    data = build(load_settings(args.config, args.overrides).data)
    print(data.summary())
    print(f"ready in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
