"""Every command against bad input, as a hostile user would try it: exit code 2, one error line
that names the problem, and no file that existed before is changed (checksums before and after).
Each case runs the command's main() in-process; nothing here trains."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")

# (command, arguments, fragment of the error line). In the arguments, <DEAP> is the read-only
# synthetic DEAP folder, <FILE> an existing file, <EMPTY> an empty config, <OUT> a fresh folder.
CASES = [
    ("synthesize", ["--out", "<FILE>", "--subjects", "1"], "<FILE>: already exists"),
    ("synthesize", ["--out", "<FILE>/sub", "--subjects", "1"], "a file where a folder belongs"),
    ("synthesize", ["--out", "<DEAP>", "--subjects", "1"], "--overwrite"),
    ("synthesize", ["--out", "<OUT>", "--subjects", "0"], "must be at least 1"),
    ("synthesize", ["--out", "<OUT>", "--workers", "0"], "--workers must be at least 1"),
    ("synthesize", ["--out", "<OUT>", "--effect", "-1"], "--effect must be at least 0"),
    ("synthesize", ["--out", "<OUT>", "--format", "seed", "--seconds", "9", "3"], "LOW <= HIGH"),
    ("synthesize", ["--out", "<OUT>", "--format", "nope"], "invalid choice: 'nope'"),
    ("synthesize", ["--out", "<OUT>", "--samples", "10"], "samples must exceed"),
    ("preprocess", ["--config", "<EMPTY>"], "the config file is empty"),
    ("preprocess", ["--config", "<OUT>/missing.yaml"], "cannot read config"),
    ("preprocess", ["--config", TINY, "data.widnow=3s"], "did you mean 'data.window'"),
    ("preprocess", ["--config", TINY, "data.root=<FILE>"], "<FILE>: DEAP folder not found"),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.cache_dir=<FILE>"],
        "<FILE>: already",
    ),
    ("preprocess", ["--config", TINY, "data.root=<DEAP>", "data.window=100s"], "data.window"),
    ("preprocess", ["--config", TINY, "data.root=<DEAP>", "data.stride=0"], "data.stride=0"),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.subjects=[9]"],
        "subject id(s) [9]",
    ),
    (
        "preprocess",
        [
            "--config",
            TINY,
            "data.root=<DEAP>",
            "data.split.protocol=kfold",
            "data.split.num_folds=13",
        ],
        "has only 12 trials",
    ),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.split.protocol=loso", "data.split.fold=3"],
        "fold=3 but only 3 subjects",
    ),
    ("plan", ["--config", TINY, "--processes", "0"], "--processes: must be at least 1"),
    ("plan", ["--config", TINY, "train.batch_size=0"], "train.batch_size"),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>"],
        "is a file, not a folder",
    ),
    ("train", ["--config", TINY, "train.lr_head=-1"], "train.lr_head"),
    ("train", ["--config", TINY, "train.epochs=0"], "train.epochs"),
    ("train", ["--config", "<EMPTY>"], "the config file is empty"),
    ("evaluate", ["<OUT>/missing-run"], "not a run folder"),
    ("evaluate", ["<DEAP>"], "<DEAP>"),
    ("evaluate", ["<DEAP>", "--split", "nope"], "invalid choice: 'nope'"),
    ("predict", ["<OUT>/missing-run", "--input", "<DEAP>", "--out", "<OUT>.csv"], "no best/ model"),
    ("baseline", ["--config", TINY, "baseline.name=svm"], "baseline.name"),
    (
        "baseline",
        ["--config", TINY, "data.root=<DEAP>", "baseline.name=eegnet", "baseline.eegnet.kernel=9s"],
        "baseline.eegnet.kernel='9s' is 1152 samples, longer than data.window",
    ),
    ("baseline", ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>"], "is a file, not a"),
    (
        "cv",
        ["--config", TINY, "--protocol", "kfold", "--folds", "0", "--out", "<OUT>/cv"],
        "--folds",
    ),
    ("cv", ["--config", TINY, "--protocol", "nope", "--out", "<OUT>/cv"], "invalid choice"),
    ("aggregate", ["<OUT>/missing"], "not a folder"),
    ("aggregate", ["<DEAP>"], "not a CV group"),
    ("report", ["<OUT>/missing"], "not a folder"),
    ("report", ["<FILE>"], "not a folder"),
    ("report", ["<DEAP>"], "neither a finished run"),
]


def tree_sums(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("command", "argv", "fragment"),
    CASES,
    ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)],
)
def test_bad_input_is_one_clear_error(tmp_path, tiny_root, capsys, command, argv, fragment):
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("not a folder\n")
    (work / "empty.yaml").write_text("")
    names = {
        "<DEAP>": str(tiny_root),
        "<FILE>": str(work / "afile"),
        "<EMPTY>": str(work / "empty.yaml"),
        "<OUT>": str(work / "out"),
    }

    def fill(text: str) -> str:
        for key, value in names.items():
            text = text.replace(key, value)
        return text

    args = [fill(a) for a in argv]
    commands_with_settings = ("preprocess", "plan", "train", "baseline", "cv")
    if command in commands_with_settings and not any("cache_dir" in a for a in args):
        args.append(f"data.cache_dir={work / 'cache'}")
    before = tree_sums(work, tiny_root)
    main = importlib.import_module(f"eeg_emotion.cli.{command}").main
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(errors) == 1, err
    assert fill(fragment) in errors[0], errors[0]
    assert "Traceback" not in err
    assert tree_sums(work, tiny_root) == before
