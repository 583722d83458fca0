"""Plan a run: parameter counts, tokens per window, steps per epoch, peak GPU memory.

    python launch/plan.py --config configs/llama31_8b_qlora.yaml [--processes 8] [key=value ...]

The command itself is eeg_emotion.cli.plan, also
`eeg-emotion plan ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.plan import main

if __name__ == "__main__":
    sys.exit(main())
