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
drops that trial with a warning naming the recording and the table's line, given whenever the
recordings are found (a cache build or its reuse). Trials are numbered 1..n in onset order per
recording. `baseline_seconds` > 0 takes that much signal before each trial's onset as its
baseline.

With the option `stim` the trials come from a stim channel's events instead
(`eeg_emotion.data.readers.mne_events`: a BioSemi BDF's `Status`, codes that start a trial, an
end code or a fixed duration), and the table names each trial by a `trial` column (its number,
1..n in time order) or a `sample` column (its start event's sample) instead of its onset.

A CSV table must list every recording found under the root, unless `listed_only: true`.
A recording whose file is shorter than its header says is refused as truncated.

`MneReader(options, labelled=False)` reads trial spans only, for `predict`: no target column
is needed and none is checked; a recording without a table row takes its trials from its
stim events, or from its annotations (those of `trial_type` when set, else all but `BAD_*`,
`EDGE` and boundary ones).

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
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from eeg_emotion.data.readers.mne_events import Span, annotated, stim_trials, trial_spans
from eeg_emotion.data.readers.mne_tables import Row, missing, number, read_table
from eeg_emotion.data.readers.recording import (
    Categories,
    Ratings,
    Recording,
    RecordingRef,
    Targets,
    check_finite,
)
from eeg_emotion.data.source_options import MneOptions
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)

BIDS_SUFFIX = re.compile(r"_(eeg|ieeg|meg)$")


class MneReader:
    def __init__(self, options: MneOptions | None = None, *, labelled: bool = True) -> None:
        self.options = options or MneOptions()
        self.labelled = labelled  # False: trial spans only, no targets (predict)
        self._table: dict[Path, list[Row]] | None = None  # the CSV's rows per recording
        self._table_path: Path | None = None

    def find(self, root: str | Path) -> list[RecordingRef]:
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "recordings folder not found")
        found = sorted(p for p in root.rglob("*") if p.is_file() and self._extension(p))
        files = found
        if self.options.labels is not None and self.labelled:
            table = self._csv_rows(root)
            files = sorted(table)
            for path in files:
                if not path.is_file():
                    raise DataError(
                        root / self.options.labels,
                        f"line {table[path][0].line}: names {path}, not found",
                    )
            omitted = [p for p in found if p not in set(files)]
            if omitted and not self.options.listed_only:
                names = [p.relative_to(root).as_posix() for p in omitted]
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" * (len(names) > 8))
                raise DataError(
                    root / self.options.labels,
                    f"does not list {len(names)} recording{'s' * (len(names) > 1)} found under "
                    f"{root}: {shown} (options.listed_only: true uses only the listed ones)",
                )
        elif self.options.labels is not None and (root / self.options.labels).is_file():
            self._csv_rows(root)  # spans for the recordings it lists
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
        if self.labelled and self.options.nan_labels == "skip":
            for ref in refs:
                self._report_skipped(ref.path)
        return refs

    def ref_of(self, path: Path) -> RecordingRef:
        """One recording given by itself: subject and session from its name (else 1)."""
        return RecordingRef(path, *_subject_session(path, 1))

    def read(self, ref: RecordingRef) -> Recording:
        opts = self.options
        rows = self._rows(ref.path)
        raw = _read_raw(ref.path)
        channels, data = _signals(ref.path, raw, opts.channels)
        rate = float(raw.info["sfreq"])
        spans = self._spans(ref.path, raw, rows, rate)
        if not spans:  # a reader of spans only, without a table: nothing marks a trial
            what = "stim events" if opts.stim else "annotations"
            raise DataError(
                ref.path,
                f"no trials: no label table names them and its {what} mark none "
                f"({len(raw.annotations)} annotations; stim-channel trials: data.options.stim)",
            )
        lead = round(opts.baseline_seconds * rate)
        trials, baselines = [], []
        for number_, start, length, row in spans:
            if start - lead < 0 or start + length > data.shape[1]:
                where = f"{row.table}: {row.at(ref.path)}: " if row else ""
                raise DataError(
                    ref.path,
                    f"{where}trial {number_} (with its baseline) runs outside the recording "
                    f"(samples {start - lead}..{start + length} of {data.shape[1]})",
                )
            trials.append(data[:, start : start + length])
            baselines.append(data[:, start - lead : start])
            at = f"{row.table.name} {row.at(ref.path)}, " if row else ""
            check_finite(ref.path, f"trial {number_} ({at}sample {start})", trials[-1], channels)
        numbers = [s[0] for s in spans]
        if self.labelled:
            targets, keep = self._targets(ref.path, [s[3] for s in spans], numbers)
        else:
            targets, keep = self._no_targets(len(spans)), list(range(len(spans)))
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
        return recording if len(keep) == len(spans) else recording.keep(keep)

    def _spans(self, path: Path, raw: Any, rows: list[Row] | None, rate: float) -> list[Span]:
        """Each trial's number, first sample, length and table row (None without a table)."""
        stim = self.options.stim
        if stim is not None:
            marked = stim_trials(path, raw, stim)
            if rows is None:
                return [(t.number, t.start, t.length, None) for t in marked]
            by_sample = rows[0].index is not None and "trial" not in rows[0].cells
            lookup = {(t.sample if by_sample else t.number): t for t in marked}
            spans: list[Span] = []
            used = set()
            for row in rows:
                hit = lookup.get(row.index) if row.index is not None else None
                if hit is None:
                    what = (
                        f"start event at sample {row.index}" if by_sample else f"trial {row.index}"
                    )
                    raise DataError(
                        row.table,
                        f"{row.at(path)}: no {what} in its {stim.channel} channel (it marks "
                        f"{len(marked)} trials)",
                    )
                if hit.number in used:
                    raise DataError(row.table, f"{row.at(path)}: a second row for the same trial")
                used.add(hit.number)
                spans.append((hit.number, hit.start, hit.length, row))
            return spans
        if rows is None:
            return annotated(raw, self.options.trial_type, rate)
        return [
            (i, start, length, row)
            for i, (row, (start, length)) in enumerate(
                zip(rows, trial_spans(path, raw, rows, rate), strict=True), 1
            )
        ]

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

    def _csv_rows(self, root: Path) -> dict[Path, list[Row]]:
        table = root / str(self.options.labels)
        if self._table is None or self._table_path != table:
            by_file: dict[Path, list[Row]] = {}
            stim = self.options.stim is not None
            rows, _ = read_table(table, ["file", *self._columns()], stim)
            for row in rows:
                by_file.setdefault(root / row.cells["file"], []).append(row)
            self._table, self._table_path = by_file, table
        return self._table

    def _rows(self, path: Path) -> list[Row] | None:
        """The trials' table rows of one recording, in onset (or number, or sample) order;
        None where a reader of spans only finds no table for it."""
        if self.options.labels is not None:
            if self._table is None:  # read without find: the table in a folder above it
                for folder in path.parents:
                    if (folder / self.options.labels).is_file():
                        self._csv_rows(folder)
                        break
            if self._table is None or path not in self._table:
                if not self.labelled:
                    return None
                raise DataError(path, "not named in the label table's `file` column")
            rows = self._table[path]
        else:
            events = path.with_name(f"{self._stem(path)}_events.tsv")
            if not events.is_file():
                if not self.labelled:
                    return None
                raise DataError(path, f"no label table beside it (expected {events.name})")
            wanted = self._columns() + (["trial_type"] if self.options.trial_type else [])
            table, _ = read_table(events, wanted, self.options.stim is not None)
            rows = [
                r for r in table if self.options.trial_type in (None, r.cells.get("trial_type"))
            ]
        if not rows:
            raise DataError(path, "its label table has no trial rows")
        return sorted(rows, key=lambda r: r.order)

    def _columns(self) -> list[str]:
        if not self.labelled:
            return []
        return [self.options.category] if self.options.category else list(self.options.ratings)

    def _report_skipped(self, path: Path) -> None:
        """A warning per trial that `nan_labels: skip` drops: its recording and table line."""
        for row in self._rows(path) or []:
            empty = missing(row, self._columns())
            if empty:
                log.warning(
                    "%s: %s: trial skipped: no %s (nan_labels: skip)",
                    row.table,
                    row.at(path),
                    empty[0],
                )

    def _no_targets(self, n: int) -> Targets:
        opts = self.options
        if opts.category is not None:
            return Categories(tuple(opts.classes), np.full(n, -1, np.int64))
        return Ratings(tuple(opts.ratings), np.full((n, len(opts.ratings)), np.nan), *opts.scale)

    def _targets(
        self, path: Path, rows: list[Row | None], numbers: list[int]
    ) -> tuple[Targets, list[int]]:
        """Each trial's targets, and the trials to keep (`nan_labels: skip` drops those with an
        empty target, which `find` reported); every message names the row's line."""
        opts = self.options
        skip = opts.nan_labels == "skip"
        keep, ids, values = [], [], []
        for i, (row, trial) in enumerate(zip(rows, numbers, strict=True)):
            assert row is not None  # a labelled read has a row per trial
            at = f"{row.at(path)}: trial {trial}"
            if skip and missing(row, self._columns()):
                ids.append(-1)
                values.append([np.nan] * len(opts.ratings))
                continue
            keep.append(i)
            if opts.category is not None:
                name = row.cells[opts.category].strip()
                if name not in opts.classes:
                    raise DataError(
                        row.table,
                        f"{at}: {opts.category} is {name!r}; expected one of "
                        f"{', '.join(opts.classes)}",
                    )
                ids.append(opts.classes.index(name))
                continue
            values.append([number(row, c, path) for c in opts.ratings])
            for name, value in zip(opts.ratings, values[-1], strict=True):
                if not opts.scale[0] <= value <= opts.scale[1]:  # NaN fails this too
                    raise DataError(
                        row.table,
                        f"{at}: {name} rating is {value}; expected {opts.scale[0]:g}.."
                        f"{opts.scale[1]:g}"
                        + (" (nan_labels: skip drops such trials)" * bool(np.isnan(value))),
                    )
        if opts.category is not None:
            return Categories(tuple(opts.classes), np.array(ids, np.int64)), keep
        return Ratings(tuple(opts.ratings), np.array(values, np.float64), *opts.scale), keep


def _subject_session(path: Path, position: int) -> tuple[int, int]:
    sub = re.search(r"(?:^|_)sub-(\d+)(?:_|$)", path.stem)
    ses = re.search(r"(?:^|_)ses-(\d+)(?:_|$)", path.stem)
    return (int(sub.group(1)) if sub else position), (int(ses.group(1)) if ses else 1)


def _read_raw(path: Path) -> Any:
    import mne

    extra = {"infer_types": True} if path.suffix.lower() in (".edf", ".bdf") else {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = mne.io.read_raw(path, preload=False, verbose="warning", **extra)
    except Exception as exc:  # MNE's readers raise many types on a damaged file
        raise DataError(path, f"MNE cannot read it ({type(exc).__name__}: {exc})") from None
    for warning in caught:
        if "does not match the file size" in str(warning.message):
            raise DataError(
                path,
                "truncated: the file holds fewer samples than its header says (an interrupted "
                "copy or recording); restore the whole file",
            )
    return raw


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
