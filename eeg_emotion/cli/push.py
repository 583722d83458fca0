"""Upload a run's best model (best/, with its model card) to the Hugging Face Hub.

    eeg-emotion push RUN --repo ORG/NAME [--private] [--dry-run]

The card (best/README.md, written when training finished) is checked with huggingface_hub's own
parser first; a card the Hub would not accept is refused, naming why. --dry-run lists what would
go up and checks the card, and uploads nothing. The token comes from the environment (HF_TOKEN)
or `huggingface-cli login`, never from the run folder, and nothing is written there. Exit codes:
0 done, 2 no run, a bad card or a failed upload.
"""

from __future__ import annotations

import sys
from pathlib import Path

from eeg_emotion.cli import handle_errors, parser

# Never uploaded: what training keeps beside the model, and editors' leftovers.
IGNORED = ["*.tmp", ".*"]


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the Hub model repository")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--dry-run", action="store_true", help="list and check; upload nothing")
    args = p.parse_args(argv)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from eeg_emotion.errors import DataError
    from eeg_emotion.evaluation import model_card

    try:
        validate_repo_id(args.repo)
    except HFValidationError as exc:
        p.error(f"argument --repo: {exc}")
    best = Path(args.run) / "best"
    if not best.is_dir():
        raise DataError(best, "no best model here (a finished training run has one)")
    files = sorted(
        f.relative_to(best).as_posix()
        for f in best.rglob("*")
        if f.is_file() and not any(f.match(pattern) for pattern in IGNORED)
    )
    print(f"{'would upload' if args.dry_run else 'uploading'} {len(files)} files to {args.repo}:")
    for name in files:
        print(f"  {name}  ({(best / name).stat().st_size} bytes)")
    model_card.check_or_raise(best, repo=args.repo)
    print(f"{best / model_card.CARD}: the Hub's card parser accepts it")
    if args.dry_run:
        return 0
    api = HfApi()  # the token: HF_TOKEN or the stored login, read by huggingface_hub itself
    try:
        api.create_repo(args.repo, repo_type="model", private=args.private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=args.repo,
            folder_path=best,
            repo_type="model",
            ignore_patterns=IGNORED,
            commit_message=f"eeg-emotion: {Path(args.run).name}",
        )
    except Exception as exc:  # the network or the Hub: one line, never a token
        raise DataError(args.repo, f"upload failed ({type(exc).__name__}: {exc})") from None
    print(f"uploaded: {commit.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
