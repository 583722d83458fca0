"""Files published atomically: written under a temporary name, renamed into place, readable by
whoever the user's umask lets read them (a shared cluster group, say). A temporary that a killed
process left behind is removed by the next one made for the same target (`temp_dir`,
`temp_file`)."""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from eeg_emotion.errors import DataError, StorageError

log = logging.getLogger(__name__)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder in `parent`, to be renamed into place; mode as `mkdir` would give it
    (`mkdtemp` makes it 0700, which other members of a group could not read once published).
    Earlier ones of `prefix` that killed processes left are removed first."""
    remove_abandoned(_siblings(parent, prefix, ""))
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix + _owner_tag()))
    path.chmod(0o777 & ~umask())
    return path


def temp_file(parent: Path, prefix: str) -> tuple[int, Path]:
    """A fresh file in `parent` (descriptor, path), mode as `open` would give it. Earlier ones
    of `prefix` that killed processes left are removed first."""
    remove_abandoned(_siblings(parent, prefix, ".tmp"))
    fd, name = tempfile.mkstemp(dir=parent, prefix=prefix + _owner_tag(), suffix=".tmp")
    os.chmod(name, 0o666 & ~umask())
    return fd, Path(name)


# Leftovers of killed processes (a kill -9, a node lost mid-write). Every temporary made here
# carries its maker in its name, `<pid>-<start>-<machine>-` before tempfile's random part: the
# process id, when that process started (so that a later process given the same id is not taken
# for it) and a hash of the host name, boot and pid namespace (where that id means that
# process). A name is known at once, with no window in which a temporary has no recorded owner.
# On the same machine a temporary is removed as soon as its maker has ended, and never while it
# runs (another rank or run building the same cache). One made elsewhere (another node on a
# shared disk), or by an earlier release without the tag, cannot be checked: it is removed once
# nothing in it has changed for ABANDONED_S, far longer than any write pauses.
ABANDONED_S = 6 * 3600
_OWNER = re.compile(r"(?:^|[-.])(\d+)-(\d+)-([0-9a-f]{8})-[a-z0-9_]+(?:\.tmp)?$")


def _owner_tag() -> str:
    pid = os.getpid()
    return f"{pid}-{_process(pid)[1]}-{_machine()}-"


@functools.cache
def _machine() -> str:
    """This host, boot and pid namespace, hashed: where a process id names the same process."""
    parts = [socket.gethostname()]
    with suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


def _process(pid: int) -> tuple[str, int]:
    """Process `pid`'s state letter and start time (clock ticks since boot), from /proc; ("", 0)
    where there is none to read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return "", 0


def _owner_alive(name: str) -> bool | None:
    """Whether the process that made the temporary `name` still runs; None where this process
    cannot tell (made on another machine, or with no owner in its name)."""
    found = _OWNER.search(name)
    if found is None or found[3] != _machine() or not 0 < int(found[1]) < 2**31:
        return None
    pid, start = int(found[1]), int(found[2])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    except OSError:
        return None
    state, started = _process(pid)
    if state == "Z":  # killed, not yet reaped by its parent
        return False
    return not (start and started and started != start)  # else the id was given to another


def _idle_s(path: Path) -> float:
    """Seconds since anything in `path` last changed."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for item in path.rglob("*"):
            with suppress(OSError):
                newest = max(newest, item.lstat().st_mtime)
    return time.time() - newest


def abandoned(path: Path) -> str | None:
    """Why the temporary `path` is a killed process's leftover, or None while it may be in use
    (see ABANDONED_S)."""
    alive = _owner_alive(path.name)
    if alive is False:
        found = _OWNER.search(path.name)
        return f"process {found[1] if found else '?'} on this machine has ended"
    idle = _idle_s(path)
    if alive is None and idle > ABANDONED_S:
        return f"unchanged for {idle / 3600:.1f} h"
    return None


def remove_abandoned(paths: Iterable[Path]) -> list[Path]:
    """Remove those of the temporaries `paths` that killed processes left (`abandoned`), with
    one log line each; the rest (still being written) stay."""
    removed = []
    for path in paths:
        try:
            why = abandoned(path)
        except OSError:
            continue  # gone meanwhile (its maker finished, or another process removed it)
        if why is not None:
            _remove(path)
            if not path.exists():  # else not ours to remove (another user's, a read-only disk)
                log.warning("removed %s, left by an interrupted process (%s)", path, why)
                removed.append(path)
    return removed


def _siblings(parent: Path, prefix: str, suffix: str) -> list[Path]:
    """The temporaries in `parent` named as `temp_dir`/`temp_file` name them for `prefix`, with
    or without an owner (earlier releases), and nothing else."""
    name = re.compile(
        re.escape(prefix) + r"(?:\d+-\d+-[0-9a-f]{8}-)?[a-z0-9_]{8}" + re.escape(suffix)
    )
    try:
        return [p for p in parent.iterdir() if name.fullmatch(p.name)]
    except OSError:
        return []  # no folder yet: nothing left in it


def swap_in(tmp: Path, target: Path) -> None:
    """Put the finished file or folder `tmp` in place of `target` (replacing what is there): a
    reader sees the old one or the new one, never a mix; a crash in between leaves the old one
    beside as `.old-<name>`, which the next swap removes."""
    old = target.with_name(f".old-{target.name}")
    if old.exists():
        _remove(old)
    if tmp.is_dir() and target.exists():  # a folder cannot replace a folder in one rename
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def publish_dir(
    target: Path, *, replace: bool = False, complete: str | None = None
) -> Iterator[Path]:
    """Write a folder through a temporary sibling that the block fills: on success it is
    renamed to `target`, on any error removed (nothing half-written is ever visible).

    `replace=True` swaps out whatever `target` holds (a new best model). Otherwise the folder
    is published once: if another process published it first (`target/complete` exists, for
    concurrent converters and cache builders), its copy is kept and ours dropped; an
    incomplete `target` (a crash, a deleted marker) is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir(target.parent, f".{target.name}-")
    try:
        yield tmp
        if replace:
            swap_in(tmp, target)
            return
        try:
            os.rename(tmp, target)
        except OSError:
            if complete is not None and (target / complete).exists():
                return  # another process finished first: its copy is equivalent
            swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def publish_file(target: Path) -> Iterator[Path]:
    """Write a file through a temporary sibling that the block writes: on success it replaces
    `target` in one rename, on any error it is removed (an earlier good file stays)."""
    fd, tmp = temp_file(target.parent, f".{target.name}.")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file such as metrics.jsonl ([] when absent); a last line cut short
    by a killed process is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


# Sets of outputs published together, and write failures named by the file they are about.
def write_file(path: Path, text: str) -> None:
    """`path.write_text(text)`, with a failure that names no file (a full disk) about `path`."""
    with named(path):
        path.write_text(text)


@contextmanager
def named(path: Path) -> Iterator[None]:
    """An OSError in the block is about `path`: a write that fails on a full disk names no
    file, and one that fails on a temporary names the temporary."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


@contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A temporary folder inside `folder` that the block fills with a set of outputs. On success
    each file in it is moved over its namesake in `folder` (the folder's other files stay); on
    any error it is removed and `folder` is as it was (`_publish`). An OSError names the file in
    `folder` it is about (or `folder`)."""
    with named(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = temp_dir(folder, ".staging-")
    try:
        yield tmp
        _publish(tmp, folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(_final(exc, tmp, folder))) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: Path, folder: Path) -> None:
    """Move every file of `tmp` over its namesake in `folder`, whole or not at all: each move is
    checked before the first is made (a folder where a file goes, a file where a folder goes),
    and if one still fails the moves made are undone, the earlier files put back."""
    files = sorted((p for p in tmp.rglob("*") if p.is_file()), key=_move_order)
    moves = [(p, folder / p.relative_to(tmp)) for p in files]
    for _, target in moves:
        _check_target(target, folder)
    earlier = tmp / ".earlier"
    done: list[tuple[Path, Path | None]] = []  # (target, its earlier version)
    made: list[Path] = []  # folders created for the new files
    try:
        for source, target in moves:
            with named(target):
                for parent in reversed(target.relative_to(folder).parents[:-1]):
                    if not (folder / parent).is_dir():
                        (folder / parent).mkdir()
                        made.append(folder / parent)
                backup = None
                if target.exists():
                    backup = earlier / source.relative_to(tmp)
                    backup.parent.mkdir(parents=True, exist_ok=True)
                    _keep(target, backup)
                os.replace(source, target)
            done.append((target, backup))
    except OSError:
        for target, backup in reversed(done):
            with suppress(OSError):
                if backup is None:
                    target.unlink()
                else:
                    os.replace(backup, target)
        for path in reversed(made):
            with suppress(OSError):
                path.rmdir()
        raise


def _keep(target: Path, backup: Path) -> None:
    """A second name for the file at `target` (a copy where hard links are not possible)."""
    try:
        os.link(target, backup)
    except OSError:
        shutil.copy2(target, backup)


def _move_order(path: Path) -> tuple[bool, Path]:
    # The files that say a run is done go last: a reader never finds them before what they
    # describe.
    return path.name in ("results.json", "status.json", "cv_results.json"), path


def _check_target(target: Path, folder: Path) -> None:
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    for parent in target.parents:
        if parent == folder or parent.is_dir():
            return
        if parent.exists():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))


def _final(exc: OSError, tmp: Path, folder: Path) -> Path:
    """Where the file an error in a staging folder is about will go."""
    if exc.filename is None:
        return folder
    path = Path(os.fsdecode(exc.filename))
    try:
        return folder / path.relative_to(tmp)
    except ValueError:
        return path


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """The block writes `path` (a file, or a set of files in the folder `path`): an OSError on
    the way (a full disk, no permission, a file where a folder belongs) becomes one StorageError
    naming the file (the one in the folder that `staged` names, else `path`)."""
    try:
        yield
    except OSError as exc:
        shown = path
        if exc.filename is not None and path in Path(os.fsdecode(exc.filename)).parents:
            shown = Path(os.fsdecode(exc.filename))
        raise StorageError(
            f"{shown}: cannot write it ({why_unwritable(exc, shown)}); nothing there was replaced"
        ) from None


def why_unwritable(exc: OSError, path: Path) -> str:
    """Why `path` could not be written, in words."""
    for parent in path.parents:
        if parent.is_dir():
            break
        if parent.exists():
            return f"{parent} is a file, not a folder"
    if path.is_dir() and exc.errno in (errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY):
        return "it is a folder, not a file"
    if path.exists() and not path.is_dir() and exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "it is a file, not a folder"
    return exc.strerror or str(exc)


# Every JSON file the project writes (run folders, caches, checkpoints, models, comparisons) is
# read back through these two.
_REQUIRED: Any = object()


def load_json(path: Path, default: Any = _REQUIRED) -> Any:
    """A JSON file the project wrote, parsed; `default` when given and the file is missing
    (as `Path.exists` sees it: a file where a folder of its path should be, too). Otherwise an
    OSError (missing, unreadable) or ValueError (not JSON, empty, cut short), for a caller that
    words its own message or carries on without the file."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        if default is _REQUIRED:
            raise
        return default
    return json.loads(text)


def read_json(path: Path, default: Any = _REQUIRED) -> Any:
    """`load_json` with one DataError naming the file when it is unreadable or corrupt (or
    missing, without a `default`)."""
    try:
        return load_json(path, default)
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read it ({exc})") from None
