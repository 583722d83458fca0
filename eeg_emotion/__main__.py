"""python -m eeg_emotion COMMAND ...: the same as the `eeg-emotion` command."""

import sys

from eeg_emotion.cli import main

if __name__ == "__main__":
    sys.exit(main())
