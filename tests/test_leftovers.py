"""What a killed process leaves half-written (a cache build's folder, a command's staged
outputs) is removed by the next run, and what a running process is writing never is."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.data import pipeline
from tests.helpers.paths import ROOT, data_settings

PATCH = ["data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s"]  # the largest cache files


def wait_for(found: Callable[[], list[Path]], proc: subprocess.Popen, what: str) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if paths := found():
            return paths[0]
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()}"
        time.sleep(0.01)
    raise AssertionError(f"no {what} after 60 s")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaped: a zombie would still hold its process id
    assert proc.returncode == -signal.SIGKILL


def feed(fifo: Path, data: bytes, times: int) -> threading.Thread:
    """Serve `data` to the next `times` readers of the named pipe `fifo`, in a thread."""

    def serve() -> None:
        for _ in range(times):
            with fifo.open("wb") as f:  # blocks until a reader opens it
                f.write(data)
                f.flush()
                # Held open until that reader has closed it: opened again before, it would
                # write into the same pipe.
                closed = select.poll()
                closed.register(f, select.POLLERR)
                while not closed.poll(10):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_a_killed_cache_build_is_removed_by_the_next_build(tiny_root, tmp_path, caplog):
    # s03.dat is a named pipe: the build reads it in its first pass, then blocks opening it
    # again in the second, after patches.npy is begun; so the kill always lands mid-build.
    root, cache = tmp_path / "deap", tmp_path / "cache"
    root.mkdir()
    for name in ("s01.dat", "s02.dat"):
        shutil.copy2(tiny_root / name, root / name)
    fifo = root / "s03.dat"
    os.mkfifo(fifo)
    stamp = fifo.stat().st_mtime_ns  # part of the cache key; each write to the pipe moves it
    data = (tiny_root / "s03.dat").read_bytes()
    command = [
        sys.executable,
        str(ROOT / "launch" / "preprocess.py"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"data.root={root}",
        f"data.cache_dir={cache}",
        *PATCH,
    ]
    other = data_settings(tiny_root, cache)  # another cache in the same folder

    def killed_build(*, meanwhile: Callable[[Path], None] = lambda partial: None) -> Path:
        """The partial folder of `command` killed mid-build (`meanwhile` runs before the
        kill)."""
        os.utime(fifo, ns=(stamp, stamp))  # the same files each time: the same cache
        feed(fifo, data, times=1)
        build = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            patches = wait_for(
                lambda: list(cache.glob(".deap-*/patches.npy")), build, "partial patches.npy"
            )
            meanwhile(patches.parent)
        finally:
            kill(build)
        assert (patches.parent / "patches.npy").exists()  # what a kill -9 leaves
        assert f"-{build.pid}-" in patches.parent.name  # its owner, for the next build to check
        return patches.parent

    def running(partial: Path) -> None:
        # Another build in the same cache folder leaves a running build's folder alone.
        pipeline.build(other, progress=False)
        assert partial.exists()

    # Any later build or load in the folder removes it.
    partial = killed_build(meanwhile=running)
    with caplog.at_level(logging.WARNING):
        loaded = pipeline.build(other, progress=False)
    assert f"removed {partial}, left by an interrupted process" in caplog.text
    assert not partial.exists()

    # So does the next build of the same cache, which completes it.
    partial = killed_build()
    os.utime(fifo, ns=(stamp, stamp))
    feed(fifo, data, times=2)
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"removed {partial}, left by an interrupted process" in again.stderr
    target = cache / "-".join(partial.name[1:].split("-")[:2])  # .deap-KEY-<owner>-<random>
    assert target.name in again.stdout  # the killed build's cache, now complete
    assert not partial.exists()
    assert sorted(p.name for p in cache.iterdir()) == sorted([target.name, loaded.path.name])
    built = pipeline.TokenData.load(target)
    assert built.values is not None and np.isfinite(np.asarray(built.values)).all()


def test_a_killed_synthesize_leaves_nothing_after_the_next_run(tmp_path):
    out = tmp_path / "synthetic"
    command = [sys.executable, str(ROOT / "launch" / "synthesize.py"), "--out", str(out)]
    # 32 subjects, one at a time (~0.2 s each): killed once the first file is staged.
    many = ["--subjects", "32", "--samples", "1664", "--workers", "1"]
    run = subprocess.Popen(
        [*command, *many], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        written = wait_for(lambda: list(out.glob(".synthesize-*/s01.dat")), run, "staged s01.dat")
    finally:
        kill(run)
    staging = written.parent
    assert staging.exists() and not list(out.glob("s*.dat"))  # nothing published

    small = ["--subjects", "2", "--trials", "2", "--samples", "640", "--workers", "1"]
    again = subprocess.run([*command, *small], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"removed {staging}, left by an interrupted process" in again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["s01.dat", "s02.dat"]


def test_only_temporaries_whose_writer_is_gone_or_long_idle_are_removed(tmp_path):
    target = tmp_path / "predictions.csv"
    prefix = f".{target.name}."
    # One made by a process that has since ended (no kill needed: it never cleans up itself).
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from eeg_emotion import fileio; "
            "fileio.temp_file(Path(sys.argv[1]), sys.argv[2])",
            str(tmp_path),
            prefix,
        ],
        cwd=ROOT,
        check=True,
    )
    assert made.returncode == 0
    (ended,) = tmp_path.glob(f"{prefix}*.tmp")
    fd, live = fileio.temp_file(tmp_path, prefix)  # this process's: still being written
    os.close(fd)
    pid, start, machine, _ = live.name[len(prefix) :].split("-")
    reused = tmp_path / f"{prefix}{pid}-{int(start) + 1}-{machine}-reusedid.tmp"  # id reused
    elsewhere = tmp_path / f"{prefix}{pid}-{start}-00000000-elsewher.tmp"  # another node's
    idle = tmp_path / f"{prefix}{pid}-{start}-00000000-idle1234.tmp"
    untagged = tmp_path / f"{prefix}old12345.tmp"  # an earlier release's
    unrelated = tmp_path / f"{prefix}backup"
    for path in (reused, elsewhere, idle, untagged, unrelated):
        path.write_text("x")
    old = time.time() - fileio.ABANDONED_S - 60
    for path in (idle, untagged, unrelated):
        os.utime(path, (old, old))

    with fileio.publish_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, elsewhere.name, unrelated.name]
    )
    assert not ended.exists() and not reused.exists()
