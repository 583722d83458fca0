"""TorchEEG's own dataset classes read our synthetic DEAP, DREAMER, SEED, SEED-IV and AMIGOS
files, and find in them what our readers find.

    python bench/torcheeg_formats.py [--work /tmp/eeg-formats] [--formats deap seed ...]
                                     [--torcheeg-python .venv-torcheeg/bin/python] [--keep]

Run with the project's interpreter, it writes each format's synthetic files
(`synthetic_formats.write_synthetic`, small sizes: `SIZES`), reads them with our reader and
writes what TorchEEG must find there as JSON (`expectations`): per trial its key in TorchEEG's
terms, its labels and its window count for the chunking below, and our channel names; every
trial's first window, all channels, goes to `signals-<format>.npz`. Then it runs itself with
TorchEEG's interpreter (`--check FILE`, the other half of this file, which imports nothing of
the project): each format's TorchEEG class (`DEAPDataset`, `DREAMERDataset`, `SEEDDataset`,
`SEEDIVDataset`, `AMIGOSDataset`) builds its dataset from the files and the windows, channel
count, labels and signal are compared; the signal as the first window of every trial, each row
of TorchEEG's window against our channel of the name TorchEEG's channel list gives that row.
Prints one JSON object, per format `accepted` and what was found; exits 1 if a format was not
accepted. TorchEEG pins an old scipy and runs from its own environment:
`bash bench/setup_torcheeg.sh` makes `.venv-torcheeg`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("deap", "dreamer", "seed", "seed_iv", "amigos")
# Small but complete: AMIGOS reaches participant 10, so TorchEEG's and our default exclusion
# of participant 9 is exercised; SEED-IV has its 3 session folders (TorchEEG lists all three).
SIZES: dict[str, dict[str, Any]] = {
    "deap": {"subjects": 2, "trials": 4, "seconds": (20, 20)},
    "dreamer": {"subjects": 2, "trials": 3, "seconds": (12, 20), "baseline_seconds": 61},
    "seed": {"subjects": 2, "sessions": 3, "trials": 3, "seconds": (10, 14)},
    "seed_iv": {"subjects": 2, "sessions": 3, "trials": 4, "seconds": (10, 14)},
    "amigos": {"subjects": 10, "seconds": (8, 12), "long_seconds": (12, 14)},
}
WINDOW_S, STRIDE_S = 4, 2  # TorchEEG's chunk_size and chunk_size - overlap, in seconds


# ------------------------------------------------------------------ our side (project venv)


def write_formats(work: Path, formats: list[str]) -> dict[str, Path]:
    """Each format's synthetic files under work/<format>; {format: its folder}."""
    from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

    out = {}
    for fmt in formats:
        write_synthetic(fmt, work / fmt, FormatSpec(**SIZES[fmt]), workers=1)
        out[fmt] = work / fmt
    return out


def torcheeg_root(fmt: str, folder: Path) -> str:
    """The path TorchEEG's class of `fmt` takes (`root_path`, DREAMER's `mat_path`)."""
    from eeg_emotion.data.readers import dreamer, seed, seed_iv

    inner = {"dreamer": dreamer.FILE_NAME, "seed": seed.FOLDER, "seed_iv": seed_iv.FOLDER}
    return str(folder / inner[fmt]) if fmt in inner else str(folder)


def _key(fmt: str, rec: Any, index: int) -> list[Any]:
    """Trial `index` of `rec` as TorchEEG's info names it (its own ids and numbering)."""
    number = rec.trial_numbers[index]
    if fmt == "deap":
        return [rec.path.name, number - 1]
    if fmt == "dreamer":
        return [rec.subject - 1, number - 1]
    if fmt == "seed":  # the file's date; the trial from its variable's name
        return [rec.subject, int(rec.path.stem.split("_")[1]), number]
    if fmt == "seed_iv":
        return [rec.subject, rec.path.parent.name, number]
    return [rec.subject, number - 1]  # amigos


def _labels(fmt: str, rec: Any, index: int) -> dict[str, float]:
    """Trial `index`'s labels under TorchEEG's names and on its values."""
    from eeg_emotion.data.readers import Ratings

    targets = rec.targets
    if isinstance(targets, Ratings):
        return {n: float(v) for n, v in zip(targets.names, targets.values[index], strict=True)}
    shift = -1 if fmt == "seed" else 0  # our class ids 0..2 are label.mat's -1..1
    return {"emotion": float(targets.values[index] + shift)}


def windows(samples: int, chunk: int, step: int) -> int:
    """How many `chunk`-sample windows a `step` apart fit in `samples` (TorchEEG's loop)."""
    return 0 if samples < chunk else (samples - chunk) // step + 1


def expectations(fmt: str, folder: Path, work: Path) -> dict[str, Any]:
    """What our reader reads from `folder`, in TorchEEG's terms, and how to ask TorchEEG; the
    trials' first windows (channels x chunk samples) in work/signals-<fmt>.npz, by trial."""
    import numpy as np

    from eeg_emotion.data.readers import read_all

    recordings = list(read_all(fmt, folder))
    rate = int(recordings[0].sampling_rate)
    chunk, step = WINDOW_S * rate, STRIDE_S * rate
    trials, signals = [], {}
    for rec in recordings:
        assert list(rec.channels) == list(recordings[0].channels), rec.path
        for i, trial in enumerate(rec.trials):
            trials.append(
                {
                    "key": _key(fmt, rec, i),
                    "labels": _labels(fmt, rec, i),
                    "samples": int(trial.shape[1]),
                    "windows": windows(trial.shape[1], chunk, step),
                    "signal": str(len(signals)),
                }
            )
            signals[str(len(signals))] = np.asarray(trial[:, :chunk], dtype=np.float64)
    signal_file = work / f"signals-{fmt}.npz"
    np.savez(signal_file, **signals)
    baselines = recordings[0].baselines
    return {
        "format": fmt,
        "root": torcheeg_root(fmt, folder),
        "channels": len(recordings[0].channels),
        "channel_names": list(recordings[0].channels),
        "signals": str(signal_file),
        "recordings": len(recordings),
        "chunk_size": chunk,
        "overlap": chunk - step,
        "baseline_seconds": 0 if baselines is None else baselines[0].shape[1] // rate,
        "sampling_rate": rate,
        "trials": trials,
    }


def run_torcheeg(python: Path, expected: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    """`--check` in TorchEEG's interpreter on `expected`; its JSON report."""
    path = work / "expectations.json"
    path.write_text(json.dumps(expected))
    cmd = [str(python), __file__, "--check", str(path), "--work", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():  # 1 is "not accepted"
        raise RuntimeError(f"TorchEEG side failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


# -------------------------------------------------------------- TorchEEG's side (its venv)


def torcheeg_dataset(expected: dict[str, Any], io_path: str) -> Any:
    """TorchEEG's dataset of one format, built from the synthetic files. Its own channel count
    (`num_channel`'s default: the dataset's EEG channels) is left as it is: compared to ours."""
    from torcheeg import datasets

    fmt, root = expected["format"], expected["root"]
    common = {
        "io_path": io_path,
        "chunk_size": expected["chunk_size"],
        "overlap": expected["overlap"],
        "num_worker": 0,
        "verbose": False,
    }
    base = {"num_baseline": expected["baseline_seconds"], "baseline_chunk_size": 128}
    if fmt == "deap":
        return datasets.DEAPDataset(root_path=root, **base, **common)
    if fmt == "dreamer":
        return datasets.DREAMERDataset(mat_path=root, **base, **common)
    if fmt == "seed":
        return datasets.SEEDDataset(root_path=root, **common)
    if fmt == "seed_iv":
        return datasets.SEEDIVDataset(root_path=root, **common)
    return datasets.AMIGOSDataset(root_path=root, num_trial=16, **base, **common)


def torcheeg_channels(fmt: str) -> list[str]:
    """TorchEEG's own list of the format's EEG channels, in the order of its windows' rows."""
    from torcheeg.datasets import constants

    name = {"seed": "SEED", "seed_iv": "SEED_IV"}.get(fmt, fmt.upper())
    return list(getattr(constants, f"{name}_CHANNEL_LIST"))


def _torcheeg_key(fmt: str, row: dict[str, Any]) -> tuple[Any, ...]:
    if fmt == "seed":
        number = re.search(r"_eeg(\d+)$", str(row["trial_id"]))  # '<initials>_eeg<k>'
        return (int(row["subject_id"]), int(row["date"]), int(number.group(1)) if number else 0)
    if fmt == "seed_iv":
        return (int(row["subject_id"]), str(row["session_id"]), int(row["trial_id"]))
    subject = row["subject_id"]
    return (subject if fmt == "deap" else int(subject), int(row["trial_id"]))


def compare(expected: dict[str, Any], dataset: Any) -> dict[str, Any]:
    """What TorchEEG found against what our reader read; `problems` empty when they agree."""
    import numpy as np

    fmt = expected["format"]
    info = dataset.info.to_dict("records")
    found: dict[tuple[Any, ...], list[int]] = {}
    for index, row in enumerate(info):
        found.setdefault(_torcheeg_key(fmt, row), []).append(index)
    wanted = {tuple(t["key"]): t for t in expected["trials"] if t["windows"]}
    problems = []
    # Each of TorchEEG's window rows against our channel of the name TorchEEG gives that row.
    our_names = [c.upper() for c in expected["channel_names"]]
    their_names = [c.upper() for c in torcheeg_channels(fmt)]
    if sorted(their_names) != sorted(our_names):
        problems.append(f"TorchEEG's channels {their_names}, ours {our_names}")
    order = [our_names.index(c) if c in our_names else 0 for c in their_names]
    signals = np.load(expected["signals"])
    compared = 0  # channel rows of first windows compared, sample for sample
    if set(found) != set(wanted):
        extra, missing = (
            sorted(map(str, set(found) - set(wanted))),
            sorted(map(str, set(wanted) - set(found))),
        )
        problems.append(f"trials differ: TorchEEG only {extra[:3]}, ours only {missing[:3]}")
    shapes = set()
    for key in sorted(set(found) & set(wanted), key=str):
        want, rows = wanted[key], found[key]
        if len(rows) != want["windows"]:
            problems.append(f"trial {key}: {len(rows)} windows, ours {want['windows']}")
        for name, value in want["labels"].items():
            theirs = {float(info[i][name]) for i in rows}
            if theirs != {value}:
                problems.append(f"trial {key}: {name} {sorted(theirs)}, ours {value}")
        first = min(rows, key=lambda i: int(str(info[i]["clip_id"]).rsplit("_", 1)[1]))
        signal = np.asarray(dataset[first][0])
        shapes.add(signal.shape)
        mine = signals[want["signal"]][order]
        if signal.shape != mine.shape:
            continue  # reported below, with every window's shape
        close = np.isclose(signal, mine, rtol=1e-5, atol=1e-6).all(axis=1)
        compared += len(close)
        if not close.all():
            names = [their_names[i] for i in np.flatnonzero(~close)]
            problems.append(f"trial {key}: first window differs from ours on channels {names}")
    if shapes != {(expected["channels"], expected["chunk_size"])}:
        problems.append(f"window shapes {sorted(shapes)}; ours ({expected['channels']}, chunk)")
    return {
        "accepted": not problems,
        "problems": problems[:10],
        "windows": len(info),
        "expected_windows": sum(t["windows"] for t in wanted.values()),
        "trials": len(found),
        "expected_trials": len(wanted),
        "channels": sorted({s[0] for s in shapes}),
        "expected_channels": expected["channels"],
        "channel_windows_compared": compared,
        "subjects": len({k[0] for k in found}),
    }


def check_main(expect_file: Path, work: Path) -> int:
    """TorchEEG's side: build each format's dataset and compare; one JSON line."""
    report: dict[str, Any] = {}
    for expected in json.loads(expect_file.read_text()):
        io_path = work / f"torcheeg-io-{expected['format']}"
        shutil.rmtree(io_path, ignore_errors=True)  # a cached io folder is reused as it is
        start = time.perf_counter()
        try:
            dataset = torcheeg_dataset(expected, str(io_path))
        except Exception as exc:  # whatever TorchEEG raises on a file it cannot read
            report[expected["format"]] = {
                "accepted": False,
                "problems": [f"TorchEEG refused the files: {type(exc).__name__}: {exc}"],
            }
            continue
        seconds = time.perf_counter() - start
        report[expected["format"]] = {**compare(expected, dataset), "seconds": round(seconds, 2)}
    print(json.dumps(report))
    return 0 if all(r["accepted"] for r in report.values()) else 1


# ------------------------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", default="/tmp/eeg-formats")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--torcheeg-python", default=str(ROOT / ".venv-torcheeg" / "bin" / "python"))
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--check", help=argparse.SUPPRESS)  # TorchEEG's side, in its interpreter
    args = p.parse_args()
    work = Path(args.work)
    if args.check:
        return check_main(Path(args.check), work)
    python = Path(args.torcheeg_python)
    if not python.exists():
        p.error(f"no TorchEEG interpreter at {python} (bash bench/setup_torcheeg.sh)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    folders = write_formats(work, args.formats)
    expected = [expectations(fmt, folder, work) for fmt, folder in folders.items()]
    report = run_torcheeg(python, expected, work)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))
    return 0 if all(r["accepted"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
