"""Every command against bad input, as a hostile user would try it: exit code 2, one error line
that names the problem and its reason, and no path added or changed (every file, folder and link,
before and after). Each case runs the command's main() in-process; nothing here trains."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")

# (command, arguments, fragment of the error line). In the arguments, <DEAP> is the read-only
# synthetic DEAP folder, <FILE> an existing file, <EMPTY> an empty config, <OUT> a fresh folder.
CASES = [
    (
        "synthesize",
        ["--out", "<FILE>", "--subjects", "1"],
        "<FILE>: already exists (a file where a folder belongs?)",
    ),
    (
        "synthesize",
        ["--out", "<FILE>/sub", "--subjects", "1"],
        "<FILE>/sub: a file where a folder belongs",
    ),
    (
        "synthesize",
        ["--out", "<DEAP>", "--subjects", "1"],
        "<DEAP>: already holds 3 DEAP files (s01.dat .. s03.dat); --overwrite",
    ),
    ("synthesize", ["--out", "<OUT>", "--subjects", "0"], "--subjects must be at least 1"),
    ("synthesize", ["--out", "<OUT>", "--workers", "0"], "--workers must be at least 1"),
    ("synthesize", ["--out", "<OUT>", "--effect", "-1"], "--effect must be at least 0"),
    (
        "synthesize",
        ["--out", "<OUT>", "--format", "seed", "--seconds", "9", "3"],
        "needs 0 < LOW <= HIGH",
    ),
    ("synthesize", ["--out", "<OUT>", "--format", "nope"], "--format: invalid choice: 'nope'"),
    (
        "synthesize",
        ["--out", "<OUT>", "--samples", "10"],
        "must exceed the 3 s baseline plus 1 s, got 10",
    ),
    ("preprocess", ["--config", "<EMPTY>"], "<EMPTY>: the config file is empty"),
    (
        "preprocess",
        ["--config", "<OUT>/missing.yaml"],
        "missing.yaml: cannot read config (No such file",
    ),
    (
        "preprocess",
        ["--config", TINY, "data.widnow=3s"],
        "unknown key 'data.widnow' (did you mean 'data.window'?)",
    ),
    ("preprocess", ["--config", TINY, "data.root=<FILE>"], "<FILE>: DEAP folder not found"),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.cache_dir=<FILE>"],
        "<FILE>: already exists (a file where a folder belongs?)",
    ),
    ("preprocess", ["--config", TINY, "data.root=<DEAP>", "data.window=100s"], "no window fits"),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.stride=0"],
        "data.stride=0 is not a positive",
    ),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.subjects=[9]"],
        "unknown subject id(s) [9]: files present are for subjects [1, 2, 3]",
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
        "num_folds=13 but subject 1 has only 12 trials",
    ),
    (
        "preprocess",
        ["--config", TINY, "data.root=<DEAP>", "data.split.protocol=loso", "data.split.fold=3"],
        "fold=3 but only 3 subjects",
    ),
    ("plan", ["--config", TINY, "--processes", "0"], "--processes: must be at least 1, got 0"),
    (
        "plan",
        ["--config", TINY, "train.batch_size=0"],
        "train.batch_size: Input should be greater than or equal to 1",
    ),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>"],
        "output_dir=<FILE> is a file, not a folder",
    ),
    (
        "train",
        ["--config", TINY, "train.lr_head=-1"],
        "train.lr_head: Input should be greater than 0",
    ),
    (
        "train",
        ["--config", TINY, "train.epochs=0"],
        "train.epochs: Input should be greater than or equal to 1",
    ),
    ("train", ["--config", "<EMPTY>"], "<EMPTY>: the config file is empty"),
    ("evaluate", ["<OUT>/missing-run"], "missing-run: not a run folder (no such folder)"),
    ("evaluate", ["<DEAP>"], "<DEAP>: no best/ model"),
    ("evaluate", ["<DEAP>", "--split", "nope"], "--split: invalid choice: 'nope'"),
    (
        "predict",
        ["<OUT>/missing-run", "--input", "<DEAP>", "--out", "<OUT>.csv"],
        "missing-run: no best/ model",
    ),
    (
        "baseline",
        ["--config", TINY, "baseline.name=svm"],
        "baseline.name: Input should be 'band_power_lr' or 'eegnet'",
    ),
    (
        "baseline",
        ["--config", TINY, "data.root=<DEAP>", "baseline.name=eegnet", "baseline.eegnet.kernel=9s"],
        "baseline.eegnet.kernel='9s' is 1152 samples, longer than data.window",
    ),
    (
        "baseline",
        ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>"],
        "output_dir=<FILE> is a file, not a folder",
    ),
    (
        "cv",
        ["--config", TINY, "--protocol", "kfold", "--folds", "0", "--out", "<OUT>/cv"],
        "--folds 0: cross-validation needs at least 2 folds",
    ),
    (
        "cv",
        ["--config", TINY, "--protocol", "nope", "--out", "<OUT>/cv"],
        "--protocol: invalid choice: 'nope'",
    ),
    ("aggregate", ["<OUT>/missing"], "<OUT>/missing: not a folder"),
    ("aggregate", ["<DEAP>"], "<DEAP>: not a CV group"),
    ("report", ["<OUT>/missing"], "<OUT>/missing: not a folder"),
    ("report", ["<FILE>"], "<FILE>: not a folder"),
    ("report", ["<DEAP>"], "<DEAP>: neither a finished run"),
]


def tree(*folders: Path) -> dict[str, str]:
    """Every path under the folders, folders and links included: a file's checksum, a link's
    target, or "folder". A refused command changes nothing here and adds nothing."""

    def state(p: Path) -> str:
        if p.is_symlink():
            return f"link to {os.readlink(p)}"
        return "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()

    return {str(p): state(p) for folder in folders for p in sorted(folder.rglob("*"))}


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
    # Run folders under `work` too, where a folder made before the refusal would show.
    if command in ("train", "baseline") and not any("output_dir" in a for a in args):
        args.append(f"output_dir={work / 'out' / 'run'}")
    before = tree(work, tiny_root)
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
    assert tree(work, tiny_root) == before
