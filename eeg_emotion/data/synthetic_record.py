"""What `synthesize` wrote, recorded outside the dataset's folder: a model trained on those
files says on its card that its data are synthetic, while the folder itself keeps exactly the
dataset's layout (peers' readers, TorchEEG's among them, take every file there for a
recording). One small file per folder in the project home (EEG_EMOTION_HOME/synthetic/)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from eeg_emotion import fileio


def mark_synthetic(folder: Path, spec: dict[str, Any]) -> None:
    """Record that `folder`'s files are synthetic, with the spec that wrote them."""
    marker = _marker(folder)
    marker.parent.mkdir(parents=True, exist_ok=True)
    record = {"folder": str(folder.resolve()), **spec}
    fileio.write_file(marker, json.dumps(record, indent=1, default=str))


def is_synthetic(folder: str | Path) -> bool:
    """Whether synthesize wrote `folder` (on this machine, into this project home)."""
    return _marker(Path(folder)).is_file()


def _marker(folder: Path) -> Path:
    from eeg_emotion.model.embedded import cache_root

    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return cache_root() / "synthetic" / f"{key}.json"
