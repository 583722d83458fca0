"""Plan a run: parameter counts, tokens per window, steps per epoch and peak GPU memory.

    python launch/plan.py --config configs/llama31_8b_qlora.yaml [--processes 8] [key.sub=value ...]

Needs no GPU and no download (the backbone is built on the meta device from its config.json).
The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import json
import sys

from eeg_emotion.cli import handle_errors, number, settings_parser
from eeg_emotion.errors import ConfigError


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = settings_parser(__doc__, prog)
    p.add_argument(
        "--processes", type=number(1, 65_536), default=1, help="data-parallel processes (GPUs)"
    )
    p.add_argument("--no-data", action="store_true", help="skip reading the data for steps/epoch")
    args = p.parse_args(argv)
    try:
        from eeg_emotion.config import load_settings

        settings = load_settings(args.config, args.overrides)
        from eeg_emotion.quiet import quiet_libraries

        quiet_libraries()
        from eeg_emotion.model.plan import describe, plan

        result = plan(settings, processes=args.processes, with_data=not args.no_data)
    except ValueError as exc:  # settings that do not fit the plan (e.g. batch over processes)
        raise ConfigError(str(exc)) from exc
    print(describe(result))
    print(json.dumps(result.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
