"""Files published atomically: written under a temporary name, renamed into place, readable by
whoever the user's umask lets read them (a shared cluster group, say)."""

from __future__ import annotations

import json
import os
import tempfile
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
