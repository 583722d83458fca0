"""Upload a run's best model and its model card to the Hugging Face Hub.

    python launch/push.py RUN --repo ORG/NAME [--dry-run]

The command itself is eeg_emotion.cli.push, also
`eeg-emotion push ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.push import main

if __name__ == "__main__":
    sys.exit(main())
