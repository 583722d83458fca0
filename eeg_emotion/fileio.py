"""Files published atomically: written under a temporary name, renamed into place, readable by
whoever the user's umask lets read them (a shared cluster group, say)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder in `parent`, to be renamed into place; mode as `mkdir` would give it
    (`mkdtemp` makes it 0700, which other members of a group could not read once published)."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    path.chmod(0o777 & ~umask())
    return path


def temp_file(parent: Path, prefix: str) -> tuple[int, Path]:
    """A fresh file in `parent` (descriptor, path), mode as `open` would give it."""
    fd, name = tempfile.mkstemp(dir=parent, prefix=prefix, suffix=".tmp")
    os.chmod(name, 0o666 & ~umask())
    return fd, Path(name)


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
