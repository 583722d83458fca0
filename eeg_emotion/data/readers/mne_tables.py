"""The `mne` source's label tables: a CSV under the root or a BIDS `*_events.tsv` per
recording, read into rows that keep their file and line for every message about them.

A row names its trial by `onset` and `duration` (seconds, trials from annotations) or, for
trials from a stim channel, by `trial` (its number, 1..n in time order) or `sample` (its start
event's sample, as `mne.find_events` gives it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from eeg_emotion.errors import DataError

MISSING = {"", "n/a", "na", "nan"}
Key = Literal["onset", "trial", "sample"]


@dataclass(frozen=True)
class Row:
    table: Path
    line: int  # in the table file, for messages
    onset: float  # seconds; NaN where the table names trials by number or sample
    duration: float
    index: int | None  # the trial's number or its event sample (stim trials), else None
    cells: dict[str, str]

    @property
    def order(self) -> float:
        return self.onset if self.index is None else float(self.index)

    def at(self, recording: Path) -> str:
        """`line N (recording)`: where every message about this row starts."""
        return f"line {self.line} ({recording.name})"


def read_table(path: Path, columns: list[str], stim: bool = False) -> tuple[list[Row], Key]:
    """Rows of a CSV (`.csv`) or tab-separated (`.tsv`) table that has `columns`, and the key
    its rows name trials by: onset and duration, or (`stim`) a `trial` or `sample` column."""
    if not path.is_file():
        raise DataError(path, "label table not found")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            header = [c.strip() for c in reader.fieldnames or []]
            lines = [(reader.line_num, r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"cannot read the label table ({exc})") from None
    key: Key = "onset"
    if stim:
        if not {"trial", "sample"} & set(header):
            raise DataError(
                path,
                "trials from a stim channel are named by a 'trial' column (1..n in time order) "
                f"or a 'sample' column (the start event's sample); columns: {', '.join(header)}",
            )
        key = "trial" if "trial" in header else "sample"
    for column in [*(["onset", "duration"] if key == "onset" else []), *columns]:
        if column not in header:
            raise DataError(path, f"no column '{column}' (columns: {', '.join(header)})")
    rows = []
    for line, raw in lines:
        cells = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if key == "onset":
            onset, duration = (
                seconds(path, line, cells, "onset"),
                seconds(path, line, cells, "duration"),
            )
            if duration <= 0:
                raise DataError(path, f"{_at(line, cells)}: duration is {duration}; expected > 0")
            rows.append(Row(path, line, onset, duration, None, cells))
        else:
            rows.append(Row(path, line, np.nan, np.nan, _whole(path, line, cells, key), cells))
    return rows, key


def _at(line: int, cells: dict[str, str]) -> str:
    """`line N`, and the recording a CSV row names (`line N (file)`)."""
    return f"line {line}" + (f" ({cells['file']})" if cells.get("file") else "")


def seconds(path: Path, line: int, cells: dict[str, str], column: str) -> float:
    try:
        value = float(cells[column])
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise DataError(
            path, f"{_at(line, cells)}: {column} is {cells[column]!r}; expected seconds >= 0"
        )
    return value


def _whole(path: Path, line: int, cells: dict[str, str], column: str) -> int:
    text = cells[column]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    low = 1 if column == "trial" else 0
    if not np.isfinite(value) or value != int(value) or value < low:
        raise DataError(
            path, f"{_at(line, cells)}: {column} is {text!r}; expected a whole number >= {low}"
        )
    return int(value)


def number(row: Row, column: str, recording: Path) -> float:
    text = row.cells[column]
    if text.lower() in MISSING:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DataError(
            row.table, f"{row.at(recording)}: {column} is {text!r}, not a number"
        ) from None


def missing(row: Row, columns: list[str]) -> list[str]:
    """The target columns a row leaves empty (`n/a`)."""
    return [c for c in columns if row.cells.get(c, "").strip().lower() in MISSING]
