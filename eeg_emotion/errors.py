"""Project exceptions: one clear message, no deep traceback needed to understand it."""

from __future__ import annotations

from pathlib import Path


class EEGEmotionError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(EEGEmotionError):
    """A settings file or override is invalid."""


class DataError(EEGEmotionError):
    """A data file or folder cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class StorageError(EEGEmotionError):
    """The run folder takes no more writes (full disk, quota, permissions)."""


class TrainingError(EEGEmotionError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""
