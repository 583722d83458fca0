"""Which recordings `predict` reads, and with which reader.

`predict` needs each recording's trial spans, never its ratings. A file is read by its
extension, whatever source the model was trained on: `.dat` by the DEAP reader, the MNE
formats (EDF, BDF, FIF, BrainVision, EEGLAB, ...) by the `mne` reader, anything else by the
run's own source. The `mne` reader reads spans only (`MneReader(labelled=False)`): a label
table without rating columns, or with empty ones, or no table at all (trials from stim events
or annotations) all do. A folder is read as the run's source lays its data out; one that holds
no such recordings but MNE-format files is read by the `mne` reader. `predict --mne KEY=VALUE`
sets that reader's options (`data.options` of the `mne` source) over the run's own, or over
the defaults where the run was trained on another source: a DEAP-trained model reads a BDF's
trials from its Status channel with `--mne stim.start=[4] --mne stim.end=5`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from eeg_emotion.config import DataSettings, explain, merge, parse_overrides
from eeg_emotion.data.readers import Reader, RecordingRef, deap, make_reader
from eeg_emotion.data.readers.mne_files import MneReader
from eeg_emotion.data.source_options import MNE_EXTENSIONS, DeapOptions, MneOptions
from eeg_emotion.errors import DataError

Inputs = list[tuple[Reader, RecordingRef]]


def _is_mne(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(ext) for ext in MNE_EXTENSIONS)


def mne_options(data: DataSettings, overrides: list[str] | None = None) -> MneOptions:
    """The `mne` reader's options: the run's where it was trained on `mne` data (else the
    defaults), `overrides` (`stim.start=[4]`, ...) on top; checked before anything is read."""
    if isinstance(data.options, MneOptions) and not overrides:
        return data.options
    base = data.options.model_dump() if isinstance(data.options, MneOptions) else {}
    try:
        return MneOptions.model_validate(merge(base, parse_overrides(overrides or [])))
    except ValidationError as exc:
        raise explain(exc, "--mne", MneOptions) from None


def mne_reader(data: DataSettings, overrides: list[str] | None = None) -> MneReader:
    """The `mne` reader of spans, with `mne_options`."""
    return MneReader(mne_options(data, overrides), labelled=False)


def input_recordings(inputs: Path, data: DataSettings, mne: list[str] | None = None) -> Inputs:
    """Each recording to predict on, with the reader that reads it; `mne`: the `mne` reader's
    option overrides."""
    mne_options(data, mne)  # bad options are refused whatever the inputs turn out to be
    if inputs.is_file() and _is_mne(inputs):
        reader = mne_reader(data, mne)
        return [(reader, reader.ref_of(inputs))]
    if inputs.is_file() and (data.source == "deap" or inputs.suffix.lower() == ".dat"):
        return [(_deap_reader(data), RecordingRef(inputs, _deap_subject(inputs)))]
    if data.source == "mne":
        reader = mne_reader(data, mne)
        return [(reader, ref) for ref in reader.find(inputs)]
    if data.source == "deap" and inputs.is_dir():
        files = sorted(inputs.glob("*.dat"))
        if files:
            return [(_deap_reader(data), RecordingRef(f, _deap_subject(f))) for f in files]
        if any(_is_mne(p) for p in inputs.rglob("*")):
            reader = mne_reader(data, mne)
            return [(reader, ref) for ref in reader.find(inputs)]
        raise DataError(inputs, "no .dat files (or MNE-format recordings) to predict on")
    return _of_source(inputs, data, mne)


def _of_source(inputs: Path, data: DataSettings, mne: list[str] | None) -> Inputs:
    """What the run's own source's reader finds in the folder (or, for a file, in its folder,
    keeping that file's recordings); a folder without them may hold MNE-format files."""
    reader = make_reader(data.source, data.reader_options())
    if inputs.is_dir():
        try:
            return [(reader, ref) for ref in reader.find(inputs)]
        except DataError:
            if not any(_is_mne(p) for p in inputs.rglob("*")):
                raise
        spans = mne_reader(data, mne)
        return [(spans, ref) for ref in spans.find(inputs)]
    try:
        refs = reader.find(inputs)  # DREAMER: its one file
    except DataError:
        refs = [r for r in reader.find(inputs.parent) if _same(r.path, inputs)]
    if not refs:
        raise DataError(inputs, f"holds no {data.source} recording its folder's reader finds")
    return [(reader, ref) for ref in refs]


def _deap_reader(data: DataSettings) -> Reader:
    return make_reader("deap", data.reader_options() if data.source == "deap" else DeapOptions())


def _deap_subject(path: Path) -> int:
    match = deap.FILE_PATTERN.match(path.name)
    return int(match.group(1)) if match else 0


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()
