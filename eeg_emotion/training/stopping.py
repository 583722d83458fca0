"""How a training run ends early: a stop request (checkpoint, then exit), or a run folder that
takes no more writes."""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path
from typing import Any

STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}
# A stop signal kept by `defer_stop_signals` until the run's StopRequest exists.
_deferred: list[int] = []


def defer_stop_signals() -> None:
    """SIGTERM and SIGUSR1 that arrive before training's own stop handlers are in place (its
    loop installs them once the data and the model are built; a search trial is forked first)
    are kept, and the run's StopRequest starts with them: the run stops at its first poll with a
    checkpoint, as it would have, however short it is."""

    def keep(signum: int, _frame: Any) -> None:
        _deferred.append(signum)

    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, keep)


class StopRequest:
    """A stop file in the run folder, SIGTERM, SIGUSR1 or Ctrl-C (SIGINT) asks for
    checkpoint-and-exit; a second Ctrl-C aborts at once. When the process that started this one
    dies (`accelerate launch` killed with SIGTERM does not wait for its worker), the worker gets
    SIGTERM too rather than training on, detached (Linux)."""

    def __init__(self, run_dir: Path) -> None:
        self.file = run_dir / "STOP"
        self.signal: int | None = _deferred[0] if _deferred else None
        _deferred.clear()
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            signal.signal(sig, self._handle)
        _term_when_parent_dies()

    def _handle(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: no checkpoint, stop now
        self.signal = signum  # first: a second Ctrl-C during the print below must abort
        if signum == signal.SIGINT:
            print("stopping at the next checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def requested(self) -> bool:
        return self.signal is not None or self.file.exists()

    def reason(self) -> str:
        """What asked for the stop: this process's signal or the STOP file; in a distributed
        run, a stop another rank was asked for reaches this one with neither."""
        if self.signal is not None:
            return signal.Signals(self.signal).name
        if self.file.exists():
            return str(self.file)
        return "on another rank; this one had no signal and no STOP file"


def _term_when_parent_dies() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def storage_problem(exc: BaseException) -> str | None:
    """What went wrong when the run folder cannot take more writes (full disk, quota,
    read-only, permissions), or None for any other error. torch, safetensors and numpy each
    word a full disk their own way."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return f"{seen.filename + ': ' if seen.filename else ''}{seen.strerror}"
        text = str(seen)
        if "No space left on device" in text or "file write failed" in text:
            return text.strip().splitlines()[0][:300]
        seen = seen.__cause__ or seen.__context__
    return None
