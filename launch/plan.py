"""Plan a run: parameter counts, tokens per window, steps per epoch and peak GPU memory.

    python launch/plan.py --config configs/llama31_8b_qlora.yaml [--processes 8] [key.sub=value ...]

Needs no GPU and no download (the backbone is built on the meta device from its config.json).
The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys

from eeg_emotion.config import load_settings
from eeg_emotion.errors import EEGEmotionError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="YAML settings file")
    p.add_argument("--processes", type=int, default=1, help="data-parallel processes (GPUs)")
    p.add_argument("--no-data", action="store_true", help="skip reading the data for steps/epoch")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)
        from eeg_emotion.quiet import quiet_libraries

        quiet_libraries()
        from eeg_emotion.model.plan import describe, plan

        result = plan(settings, processes=args.processes, with_data=not args.no_data)
    except (EEGEmotionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(result))
    print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
