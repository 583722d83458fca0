"""Every command against bad input, as a hostile user would try it: exit code 2, one error line
that names the problem and its reason, and no path added or changed (every file, folder and link,
before and after). Each case runs the command's main() in-process; nothing here trains."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
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
    (
        "synthesize",
        ["--out", "<OUT>", "--subjects", "0"],
        "argument --subjects: must be a whole number in [1, 10000], got 0",
    ),
    (
        "synthesize",
        ["--out", "<OUT>", "--workers", "0"],
        "argument --workers: must be a whole number in [1, 256], got 0",
    ),
    (
        "synthesize",
        ["--out", "<OUT>", "--effect", "-1"],
        "argument --effect: must be a finite number in [0, 100], got -1",
    ),
    (
        "synthesize",
        ["--out", "<OUT>", "--seconds", "inf", "inf"],
        "argument --seconds: must be a finite number in (0, 86400], got inf",
    ),
    (
        "synthesize",
        ["--out", "<OUT>", "--seconds", "1e12", "1e12"],
        "argument --seconds: must be a finite number in (0, 86400], got 1000000000000",
    ),
    (
        "synthesize",
        ["--out", "<OUT>", "--seed", "-1"],
        "argument --seed: must be a whole number in [0, 4294967295], got -1",
    ),
    (
        "synthesize",
        ["--out", "<OUT>/deep/er", "--subjects", "10000", "--trials", "100000"],
        "<OUT>/deep/er: these sizes need up to",
    ),
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
        "data.stride: samples must be a whole number in [1, 100000000], got 0",
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
    (
        "plan",
        ["--config", TINY, "--processes", "0"],
        "argument --processes: must be a whole number in [1, 65536], got 0",
    ),
    (
        "plan",
        ["--config", TINY, "train.batch_size=0"],
        "train.batch_size: must be a whole number in [1, 1048576], got 0",
    ),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>"],
        "output_dir=<FILE> is a file, not a folder",
    ),
    (
        "train",
        ["--config", TINY, "train.lr_head=-1"],
        "train.lr_head: must be a finite number in (0, 10], got -1",
    ),
    (
        "train",
        ["--config", TINY, "train.epochs=0"],
        "train.epochs: must be a whole number in [1, 100000], got 0",
    ),
    (
        "train",
        ["--config", TINY, "train.lr_lora=1e309"],
        "train.lr_lora: must be a finite number in (0, 10], got inf",
    ),
    ("train", ["--config", TINY, "seed=-1"], "seed: must be a whole number in [0, 4294967295]"),
    (
        "train",
        ["--config", TINY, "data.window=2.5"],
        "data.window: give samples as a whole number (1024) or seconds as text ('8s', '2.5s'), "
        "got 2.5",
    ),
    (
        "train",
        ["--config", TINY, "data.options.baseline_seconds=inf"],
        "data.options.baseline_seconds: must be a finite number in [0, 86400], got inf",
    ),
    # Checks that need the data run before the run folder is claimed (<CACHED>: the data cache
    # is built beforehand, so that any new path is the refused command's).
    (
        "train",
        [
            "--config",
            TINY,
            "data.root=<DEAP>",
            "<CACHED>",
            "train.epochs=1",
            "train.eval_every=100",
        ],
        "train.eval_every=100 exceeds the run's",
    ),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "<CACHED>", "train.batch_size=1000"],
        "train.batch_size=1000 exceeds the",
    ),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "<CACHED>", "model.num_layers=3"],
        "model.num_layers=3 but tiny has only 2 layers",
    ),
    ("evaluate", ["<CVGROUP>"], "<CVGROUP> is a CV group, not a run: evaluate or predict with one"),
    (
        "predict",
        ["<CVGROUP>", "--input", "<DEAP>", "--out", "<OUT>.csv"],
        "<CVGROUP> is a CV group, not a run",
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
        "baseline.name: Input should be 'band_power_lr', 'eegnet' or 'connectivity'",
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
        "baseline",
        ["--config", TINY, "data.root=<DEAP>", "output_dir=<FILE>/run"],
        "output_dir=<FILE>/run: <FILE> is a file, not a folder",
    ),
    (
        "baseline",
        ["--config", TINY, "baseline.c_grid=[nan]"],
        "baseline.c_grid.0: must be a finite number in (0, 1000000], got nan",
    ),
    (
        "baseline",
        ["--config", TINY, "baseline.c_grid=[-1]"],
        "baseline.c_grid.0: must be a finite number in (0, 1000000], got -1",
    ),
    (
        "train",
        ["--config", TINY, "data.root=<DEAP>", "data.window=100s"],
        "no window fits",
    ),
    (
        "baseline",
        ["--config", TINY, "data.root=<DEAP>", "data.window=100s"],
        "no window fits",
    ),
    (
        "cv",
        ["--config", TINY, "--protocol", "kfold", "--folds", "0", "--out", "<OUT>/cv"],
        "argument --folds: must be a whole number in [2, 10000], got 0",
    ),
    (
        "cv",
        [
            "--config",
            TINY,
            "--protocol",
            "loso",
            "--out",
            "<OUT>/cv",
            "data.root=<DEAP>",
            "data.subjects=[1]",
        ],
        "--protocol loso needs recordings of at least 2 subjects; these are all of subject 1",
    ),
    (
        "compare",
        ["<DEAP>", "<DEAP>", "--seed=-1"],
        "argument --seed: must be a whole number in [0, 4294967295], got -1",
    ),
    (
        "compare",
        ["<DEAP>", "<DEAP>", "--resamples=1000000000000"],
        "argument --resamples: must be a whole number in [1, 100000], got 1000000000000",
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


# Every numeric setting, and every numeric option of every command, against nan, inf, a negative
# and an absurdly large value: one line naming the key or option and the range, nothing written.
BAD_NUMBERS = ("nan", "inf", "-1", "1e30")
NEGATIVE_OK = {"data.labels.threshold", "data.labels.cuts", "data.options.scale"}
DURATIONS = (
    "data.window",
    "data.stride",
    "data.tokenizer.sub_window",
    "data.tokenizer.sub_stride",
    "data.tokenizer.patch",
    "baseline.eegnet.kernel",
)
# Keys that default to None or sit in another source's options: (prefix overrides, key, value).
EXTRA_KEYS = [
    ([], "model.num_layers", None),
    ([], "train.patience", None),
    ([], "data.subjects", [1]),
    (["data.source=amigos"], "data.options.baseline_seconds", None),
    (["data.source=amigos"], "data.options.excluded", [9]),
    (["data.source=mne"], "data.options.baseline_seconds", None),
    (["data.source=mne"], "data.options.scale", [1.0, 9.0]),
]


def numeric_settings() -> list[tuple[list[str], str, object]]:
    """(prefix overrides, key, default) of every numeric setting: a list's or a pair's first
    item stands for its items (they share one type)."""
    from eeg_emotion.config import Settings, flatten

    found: dict[str, object] = {}
    for dotted, value in flatten(Settings().model_dump(mode="json"), lists=True).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts = dotted.split(".")
        index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
        if index is None:
            found[dotted] = None
        elif parts[index] == "0" and index == len(parts) - 1:  # a list or pair: the whole of it
            found[".".join(parts[:index])] = "list"
        elif parts[index] == "0":  # a list of sections (model.phases): the whole list
            found.setdefault(".".join(parts[:index]), "sections")
    return [([], key, kind) for key, kind in found.items()] + EXTRA_KEYS


def override(key: str, kind: object, bad: str) -> str:
    """`key=bad`, or the whole list / pair / section list with `bad` as its first number."""
    from eeg_emotion.config import Settings

    if kind is None:
        return f"{key}={bad}"
    node: object = kind
    if not isinstance(kind, list):  # the default's other items
        node = Settings().model_dump(mode="json")
        for part in key.split("."):
            node = node[part]  # type: ignore[index]
    if kind == "sections":  # model.phases: the first phase's epochs
        return f"{key}=[{{train: [head], epochs: {bad}}}]"
    if isinstance(node, dict):  # data.tokenizer.bands: a band's low edge
        return f"{key}={{theta: [{bad}, 8.0]}}"
    rest = [json.dumps(v) for v in list(node)[1:]]  # type: ignore[call-overload]
    return f"{key}=[{', '.join([bad, *rest])}]"


NUMERIC_SETTINGS = [
    (
        "train",
        ["--config", TINY, *prefix, override(key, kind, bad)],
        key,
    )
    for prefix, key, kind in numeric_settings()
    for bad in BAD_NUMBERS
    if not (bad == "-1" and key in NEGATIVE_OK)
] + [
    ("train", ["--config", TINY, f"{key}={bad}"], key)
    for key in DURATIONS
    for bad in (*BAD_NUMBERS, "1e30s")
]
# The same rule in every command that reads settings.
NUMERIC_SETTINGS += [
    (command, [*head, "--config", TINY, key_value], key_value.partition("=")[0])
    for command, head in (
        ("preprocess", []),
        ("plan", []),
        ("baseline", []),
        ("cv", ["--protocol", "kfold", "--out", "<OUT>/cv"]),
    )
    for key_value in ("seed=nan", "train.lr_head=inf", "data.split.seed=-1", "data.window=1e30")
]
OPTIONS = {
    "synthesize": (
        ["--out", "<OUT>"],
        [
            "--subjects",
            "--trials",
            "--samples",
            "--sessions",
            "--seconds",
            "--long-seconds",
            "--baseline-seconds",
            "--sampling-rate",
            "--seed",
            "--effect",
            "--workers",
        ],
    ),
    "plan": (["--config", TINY], ["--processes"]),
    "cv": (["--config", TINY, "--protocol", "kfold", "--out", "<OUT>/cv"], ["--folds"]),
    "compare": (["<DEAP>", "<DEAP>"], ["--resamples", "--seed"]),
}
NUMERIC_OPTIONS = [
    (
        command,
        [
            *head,
            option,
            bad,
            *([bad] if option.endswith("seconds") and option != "--baseline-seconds" else []),
        ],
        f"argument {option}: must be a",
    )
    for command, (head, options) in OPTIONS.items()
    for option in options
    for bad in BAD_NUMBERS
]


def tree(*folders: Path) -> dict[str, str]:
    """Every path under the folders, folders and links included: a file's checksum, a link's
    target, or "folder". A refused command changes nothing here and adds nothing."""

    def state(p: Path) -> str:
        if p.is_symlink():
            return f"link to {os.readlink(p)}"
        return "folder" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()

    return {str(p): state(p) for folder in folders for p in sorted(folder.rglob("*"))}


def refuse(tmp_path: Path, deap: Path, command: str, argv: list[str]) -> tuple[str, Path]:
    """Run `command` on `argv` (placeholders filled) in a fresh work folder; assert exit 2 with
    one error line, no traceback, and every path under the work folder and the data as it was
    (nothing added, changed or removed). Returns the error line and the work folder."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("not a folder\n")
    (work / "empty.yaml").write_text("")
    (work / "cv-group").mkdir()
    (work / "cv-group" / "cv_group.json").write_text("{}")
    args = [fill(a, deap, work) for a in argv if a != "<CACHED>"]
    commands_with_settings = ("preprocess", "plan", "train", "baseline", "cv")
    if command in commands_with_settings and not any("cache_dir" in a for a in args):
        args.append(f"data.cache_dir={work / 'cache'}")
    # Run folders under `work` too, where a folder made before the refusal would show.
    if command in ("train", "baseline") and not any("output_dir" in a for a in args):
        args.append(f"output_dir={work / 'out' / 'run'}")
    if "<CACHED>" in argv:  # the data cache these settings read, built beforehand
        from eeg_emotion.cli import preprocess

        settings = [a for a in args if a.startswith(("data.", "--config")) or a == TINY]
        assert preprocess.main(settings) == 0
    before = tree(work, deap)
    main = importlib.import_module(f"eeg_emotion.cli.{command}").main
    capsys_err = io.StringIO()
    with contextlib.redirect_stderr(capsys_err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    err = capsys_err.getvalue()
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert tree(work, deap) == before
    return errors[0], work


def fill(text: str, deap: Path, work: Path) -> str:
    names = {
        "<DEAP>": str(deap),
        "<FILE>": str(work / "afile"),
        "<EMPTY>": str(work / "empty.yaml"),
        "<CVGROUP>": str(work / "cv-group"),
        "<OUT>": str(work / "out"),
    }
    for key, value in names.items():
        text = text.replace(key, value)
    return text


@pytest.mark.parametrize(
    ("command", "argv", "fragment"),
    CASES,
    ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)],
)
def test_bad_input_is_one_clear_error(tmp_path, tiny_root, command, argv, fragment):
    line, work = refuse(tmp_path, tiny_root, command, argv)
    assert fill(fragment, tiny_root, work) in line, line


@pytest.mark.parametrize(
    ("command", "argv", "key"),
    NUMERIC_SETTINGS + NUMERIC_OPTIONS,
    ids=[f"{c}-{a[-1]}" for c, a, _ in NUMERIC_SETTINGS + NUMERIC_OPTIONS],
)
def test_every_number_is_finite_and_in_range(tmp_path, tiny_root, command, argv, key):
    line, _ = refuse(tmp_path, tiny_root, command, argv)
    # The key or option, then what is wrong and the range the value must be in.
    named = f"{key}: must be a " in line or f"{key}: samples must be" in line
    named = named or f"{key}: seconds must be" in line or f"{key}: give samples" in line
    assert named or (key in line and "must be a" in line), line


def test_a_refused_run_leaves_nothing_and_the_corrected_rerun_trains(tmp_path, tiny_root):
    """A check that needs the data (the steps against train.eval_every) refuses before the run
    folder exists, so the same folder then takes the corrected settings."""
    from eeg_emotion.cli import train

    run_dir = tmp_path / "run"
    base = ["--config", TINY, f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}"]
    base += [f"output_dir={run_dir}", "train.epochs=1", "train.tracker.kind=none"]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert train.main([*base, "train.eval_every=100"]) == 2
    assert "train.eval_every=100 exceeds the run's" in err.getvalue()
    assert not run_dir.exists()
    assert train.main([*base, "train.eval_every=0"]) == 0
    assert fileio_status(run_dir) == "finished"


def fileio_status(run_dir: Path) -> str:
    return json.loads((run_dir / "status.json").read_text())["status"]


@pytest.mark.parametrize("where", ["before", "after", "both"])
def test_cv_takes_overrides_before_or_after_its_options(tmp_path, tiny_root, where):
    from eeg_emotion.cli import cv

    overrides = [f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}"]
    overrides.append("baseline.c_grid=[1.0]")
    options = ["--protocol", "kfold", "--folds", "2", "--out", str(tmp_path / "cv")]
    options += ["--baseline", "band_power_lr", "--prepare-only"]
    orders = {
        "before": overrides + options,
        "after": options + overrides,
        "both": overrides[:2] + options + overrides[2:],
    }
    argv = ["--config", TINY, *orders[where]]
    assert cv.main(argv) == 0
    group = json.loads((tmp_path / "cv" / "cv_group.json").read_text())
    assert group["settings"]["baseline"]["c_grid"] == [1.0]
    assert group["settings"]["data"]["root"] == str(tiny_root)
