"""Read your own recordings through MNE (`mne.io.read_raw`): EDF, BDF, GDF, FIF, BrainVision
(`.vhdr`), EEGLAB (`.set`), Neuroscan (`.cnt`), with each trial's targets in a small table.

A trial is one annotation of a recording (onset, duration): the label table names it by its
onset and gives its targets. The table is either

- one CSV file under the root (option `labels: labels.csv`), one row per trial, with columns
  `file` (the recording's path relative to the root), `onset` and `duration` (seconds from
  the recording's first sample, as the annotation's) and one column per rating (`ratings`,
  on the `scale`), or instead one category column (`category`, values among `classes`)::

      file,onset,duration,valence,arousal
      sub-01_task-film_eeg.edf,3.0,60.0,7.1,6.2
      sub-01_task-film_eeg.edf,66.0,60.0,2.5,3.9
      sub-02_task-film_eeg.edf,3.0,58.5,5.0,7.5

- or (`labels: null`, the default) a BIDS events file beside each recording found under the
  root: `<name>_events.tsv` for `<name>_eeg.<ext>` (or for `<name>.<ext>`), tab-separated, with
  `n/a` for a missing value. With the option `trial_type` set, only its rows are trials::

      onset	duration	trial_type	valence	arousal
      3.0	60.0	film	7.1	6.2
      66.0	60.0	film	2.5	3.9

Each row must match one annotation of its recording: the same onset and duration within one
sample. Annotations without a row (boundaries, bad segments, other events) are not trials. A
missing (`n/a`, empty) target is an error naming the row's trial, or with `nan_labels: skip`
drops that trial with a warning. Trials are numbered 1..n in onset order per recording.
`baseline_seconds` > 0 takes that much signal before each trial's onset as its baseline.

Subject and session come from the BIDS entities `sub-<n>` and `ses-<n>` in the file name
when they are numbers; otherwise the subject is the recording's position in name order and
the session 1. Channels keep their names. `channels: eeg` keeps the channels MNE types as EEG
(EDF and BDF labels such as `EEG Fp1`, `ECG ECG1` are typed by that prefix, which MNE then
drops from the name); a list of names picks those channels whatever their type. EEG is
returned in microvolts, other channel types in their SI unit. A BIDS `<name>_channels.tsv`
beside a recording (columns `name` and `status`) names its bad channels (`status` `bad`),
which the preprocessing interpolates (`eeg_emotion.data.preprocess`).
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eeg_emotion.data.readers.recording import (
    Categories,
    Ratings,
    Recording,
    RecordingRef,
    check_finite,
    check_ratings,
)
from eeg_emotion.data.source_options import MneOptions
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)

MISSING = {"", "n/a", "na", "nan"}
BIDS_SUFFIX = re.compile(r"_(eeg|ieeg|meg)$")


@dataclass(frozen=True)
class _Row:
    table: Path
    line: int  # in the table file, for messages
    onset: float
    duration: float
    cells: dict[str, str]


class MneReader:
    def __init__(self, options: MneOptions | None = None) -> None:
        self.options = options or MneOptions()
        self._table: dict[Path, list[_Row]] | None = None  # the CSV's rows per recording
        self._table_path: Path | None = None

    def find(self, root: str | Path) -> list[RecordingRef]:
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "recordings folder not found")
        if self.options.labels is not None:
            files = sorted(self._csv_rows(root))
            for path in files:
                if not path.is_file():
                    raise DataError(root / self.options.labels, f"names {path}, not found")
        else:
            files = sorted(p for p in root.rglob("*") if p.is_file() and self._extension(p))
        if not files:
            raise DataError(root, f"no recordings found ({', '.join(self.options.extensions)})")
        refs: list[RecordingRef] = []
        seen: dict[tuple[int, int], Path] = {}
        for position, path in enumerate(files, 1):
            ref = RecordingRef(path, *_subject_session(path, position))
            other = seen.setdefault((ref.subject, ref.session), path)
            if other != path:
                raise DataError(path, f"subject {ref.subject} session {ref.session} is {other} too")
            refs.append(ref)
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        opts = self.options
        rows = self._rows(ref.path)
        raw = _read_raw(ref.path)
        channels, data = _signals(ref.path, raw, opts.channels)
        rate = float(raw.info["sfreq"])
        spans = _trial_spans(ref.path, raw, rows, rate)
        lead = round(opts.baseline_seconds * rate)
        trials, baselines = [], []
        for number, (row, (start, length)) in enumerate(zip(rows, spans, strict=True), 1):
            if start - lead < 0 or start + length > data.shape[1]:
                raise DataError(
                    row.table,
                    f"line {row.line}: trial {number} (with its baseline) runs outside "
                    f"{ref.path.name}",
                )
            trials.append(data[:, start : start + length])
            baselines.append(data[:, start - lead : start])
            check_finite(ref.path, f"trial {number} (onset {row.onset:g} s)", trials[-1], channels)
        numbers = list(range(1, len(rows) + 1))
        targets, keep = self._targets(rows, numbers)
        recording = Recording.of(
            ref,
            source="mne",
            trials=trials,
            channels=channels,
            sampling_rate=rate,
            targets=targets,
            trial_numbers=numbers,
            baselines=baselines if lead else None,
        )
        bads = self._bad_channels(ref.path)
        if bads:
            recording = replace(recording, bad_channels=bads)
        return recording if len(keep) == len(rows) else recording.keep(keep)

    def _bad_channels(self, path: Path) -> tuple[str, ...]:
        """The channels a BIDS `<name>_channels.tsv` beside the recording marks `status: bad`
        (none without the file)."""
        table = path.with_name(f"{self._stem(path)}_channels.tsv")
        if not table.is_file():
            return ()
        try:
            with table.open(newline="", encoding="utf-8-sig") as f:
                lines = list(csv.DictReader(f, delimiter="\t"))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(table, f"cannot read the channels table ({exc})") from None
        if lines and not {"name", "status"} <= set(lines[0]):
            raise DataError(table, "a channels table needs the columns name and status")
        return tuple(
            (r.get("name") or "").strip()
            for r in lines
            if (r.get("status") or "").strip().lower() == "bad"
        )

    def _stem(self, path: Path) -> str:
        """The recording's name without its extension and its BIDS `_eeg` suffix."""
        ext = self._extension(path) or path.suffix
        return BIDS_SUFFIX.sub("", path.name[: -len(ext)])

    def _extension(self, path: Path) -> str | None:
        name = path.name.lower()
        matches = [e for e in self.options.extensions if name.endswith(e.lower())]
        return max(matches, key=len) if matches else None

    def _csv_rows(self, root: Path) -> dict[Path, list[_Row]]:
        table = root / str(self.options.labels)
        if self._table is None or self._table_path != table:
            by_file: dict[Path, list[_Row]] = {}
            for row in _read_table(table, ["file", *self._columns()]):
                by_file.setdefault(root / row.cells["file"], []).append(row)
            self._table, self._table_path = by_file, table
        return self._table

    def _rows(self, path: Path) -> list[_Row]:
        """The trials' table rows of one recording, in onset order."""
        if self.options.labels is not None:
            if self._table is None:
                raise DataError(path, "the label table is read by find(root): call it first")
            if path not in self._table:
                raise DataError(path, "not named in the label table's `file` column")
            rows = self._table[path]
        else:
            events = path.with_name(f"{self._stem(path)}_events.tsv")
            if not events.is_file():
                raise DataError(path, f"no label table beside it (expected {events.name})")
            wanted = self._columns() + (["trial_type"] if self.options.trial_type else [])
            rows = [
                r
                for r in _read_table(events, wanted)
                if self.options.trial_type in (None, r.cells.get("trial_type"))
            ]
        if not rows:
            raise DataError(path, "its label table has no trial rows")
        return sorted(rows, key=lambda r: r.onset)

    def _columns(self) -> list[str]:
        return [self.options.category] if self.options.category else list(self.options.ratings)

    def _targets(
        self, rows: list[_Row], numbers: list[int]
    ) -> tuple[Ratings | Categories, list[int]]:
        opts, table = self.options, rows[0].table
        skip = opts.nan_labels == "skip"
        if opts.category is None:
            values = np.array([[_number(r, c) for c in opts.ratings] for r in rows], np.float64)
            ratings = Ratings(tuple(opts.ratings), values, *opts.scale)
            return ratings, check_ratings(table, ratings, numbers, skip_nan=skip)
        ids, keep = [], []
        for i, (row, number) in enumerate(zip(rows, numbers, strict=True)):
            value = row.cells[opts.category].strip()
            if value.lower() in MISSING and skip:
                log.warning("%s: trial %d skipped: no %s", table, number, opts.category)
            elif value not in opts.classes:
                raise DataError(
                    table,
                    f"line {row.line}: trial {number}: {opts.category} is {value!r}; expected "
                    f"one of {', '.join(opts.classes)}",
                )
            else:
                keep.append(i)
            ids.append(opts.classes.index(value) if value in opts.classes else -1)
        return Categories(tuple(opts.classes), np.array(ids, np.int64)), keep


def _read_table(path: Path, columns: list[str]) -> list[_Row]:
    """Rows of a CSV (`.csv`) or tab-separated (`.tsv`) table with onset, duration, columns."""
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
    for column in ["onset", "duration", *columns]:
        if column not in header:
            raise DataError(path, f"no column '{column}' (columns: {', '.join(header)})")
    rows = []
    for line, raw in lines:
        cells = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        onset, duration = (
            _seconds(path, line, cells, "onset"),
            _seconds(path, line, cells, "duration"),
        )
        if duration <= 0:
            raise DataError(path, f"line {line}: duration is {duration}; expected > 0")
        rows.append(_Row(path, line, onset, duration, cells))
    return rows


def _seconds(path: Path, line: int, cells: dict[str, str], column: str) -> float:
    try:
        value = float(cells[column])
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise DataError(path, f"line {line}: {column} is {cells[column]!r}; expected seconds >= 0")
    return value


def _number(row: _Row, column: str) -> float:
    text = row.cells[column]
    if text.lower() in MISSING:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DataError(row.table, f"line {row.line}: {column} is {text!r}, not a number") from None


def _subject_session(path: Path, position: int) -> tuple[int, int]:
    sub = re.search(r"(?:^|_)sub-(\d+)(?:_|$)", path.stem)
    ses = re.search(r"(?:^|_)ses-(\d+)(?:_|$)", path.stem)
    return (int(sub.group(1)) if sub else position), (int(ses.group(1)) if ses else 1)


def _read_raw(path: Path) -> Any:
    import mne

    extra = {"infer_types": True} if path.suffix.lower() in (".edf", ".bdf") else {}
    try:
        return mne.io.read_raw(path, preload=False, verbose="error", **extra)
    except Exception as exc:  # MNE's readers raise many types on a damaged file
        raise DataError(path, f"MNE cannot read it ({type(exc).__name__}: {exc})") from None


def _signals(path: Path, raw: Any, channels: Literal["eeg"] | list[str]) -> tuple[tuple, Any]:
    """(names, data) of the chosen channels; EEG in microvolts."""
    types = raw.get_channel_types()
    if channels == "eeg":
        picks = [i for i, t in enumerate(types) if t == "eeg"]
        if not picks:
            raise DataError(path, f"no EEG channel (channel types: {sorted(set(types))})")
    else:
        missing = [c for c in channels if c not in raw.ch_names]
        if missing:
            raise DataError(
                path, f"no channel {missing[0]!r} (channels: {', '.join(raw.ch_names)})"
            )
        picks = [raw.ch_names.index(c) for c in channels]
    try:
        data = raw.get_data(picks=picks)
    except Exception as exc:  # a truncated data section surfaces only here
        raise DataError(path, f"cannot read its samples ({type(exc).__name__}: {exc})") from None
    scale = np.array([1e6 if types[i] == "eeg" else 1.0 for i in picks])
    return tuple(raw.ch_names[i] for i in picks), data * scale[:, None]


def _trial_spans(path: Path, raw: Any, rows: list[_Row], rate: float) -> list[tuple[int, int]]:
    """(first sample, length) of the annotation each row names."""
    ann = raw.annotations
    starts = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
    lengths = np.round(ann.duration * rate).astype(int)
    spans, used = [], set()
    for row in rows:
        start, length = round(row.onset * rate), round(row.duration * rate)
        hits = np.flatnonzero((np.abs(starts - start) <= 1) & (np.abs(lengths - length) <= 1))
        if hits.size == 0:
            raise DataError(
                row.table,
                f"line {row.line}: no annotation of {path.name} at onset {row.onset:g} s with "
                f"duration {row.duration:g} s (it has {len(ann)} annotations)",
            )
        if int(hits[0]) in used:
            raise DataError(row.table, f"line {row.line}: a second row for the same trial")
        used.add(int(hits[0]))
        spans.append((int(starts[hits[0]]), int(lengths[hits[0]])))
    return spans
