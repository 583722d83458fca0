"""Predict valence/arousal levels for new recordings with a run's best model.

    python launch/predict.py RUN --input FILE_OR_DIR --out predictions.csv

A file is read by its extension, whatever source the run was trained on: `.dat` as DEAP, EDF,
BDF, FIF, BrainVision, EEGLAB, ... through MNE, others as the run's source. Only the trials'
spans are needed, never ratings: an MNE-format recording's trials come from its label table's
rows (rating columns may be missing or empty), its stim events (`data.options.stim`) or, with
no table, its annotations. `--mne KEY=VALUE` (repeatable) sets the MNE reader's options over the
run's (any `data.options` key of the mne source), e.g. for a model trained on DEAP, trials from
a BDF's Status channel: `--mne stim.start=[4] --mne stim.end=5`.

One row per window and one per trial (`level` = window / trial): the predicted class and class
probabilities per target; trial rows use the mean probability over the trial's windows and also
give the majority vote (`*_vote`). Preprocessing reuses the run's settings and the bin edges
(and normalization statistics) fitted on its training split.
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import handle_errors, parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("run")
    p.add_argument(
        "--input",
        required=True,
        help="a recording (sNN.dat, EDF, BDF, FIF, ...) or a folder of them",
    )
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument(
        "--mne",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the MNE-format reader (data.options of the mne source), e.g. "
        "stim.start=[4]; repeatable",
    )
    args = p.parse_args(argv)
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    from eeg_emotion.evaluation.inference import (
        predict_files,  # torch and the model: after the arguments
    )

    rows = predict_files(args.run, args.input, args.out, args.mne)
    print(f"wrote {rows} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
