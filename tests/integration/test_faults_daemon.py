"""Fault injection against the real daemon process: camera stall/error/recovery,
the restart budget, signals (SIGUSR1 dump, SIGTERM clean stop, stuck stop)."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, copy_frames, env_for


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    return copy_frames(tmp_path, 4)


@pytest.fixture
def daemon(tmp_path: Path, frames: Path) -> Iterator[Daemon]:
    process = Daemon(tmp_path, env=env_for(tmp_path, frames), watchdog_usec=400_000)
    try:
        yield process
    finally:
        process.close()


def wait_for_quiet(daemon: Daemon, quiet_s: float, timeout: float = 60) -> int:
    """Wait until no watchdog ping has come for ``quiet_s``; the ping count then."""
    deadline = time.monotonic() + timeout
    count, since = daemon.count_notifications("WATCHDOG=1"), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the watchdog pings never stopped"
        time.sleep(0.05)
        now_count = daemon.count_notifications("WATCHDOG=1")
        if now_count != count:
            count, since = now_count, time.monotonic()
    return count


# openat's number, to see a process blocked in it through /proc/PID/syscall.
OPENAT = {"x86_64": "257", "aarch64": "56"}


def wait_in_open(pid: int, timeout: float = 120) -> None:
    """Wait until the process's main thread sits in openat() (or 1 s where /proc cannot say)."""
    number = OPENAT.get(platform.machine())
    status = Path(f"/proc/{pid}/syscall")
    deadline = time.monotonic() + timeout
    while number is not None and status.exists():
        try:
            if status.read_text().split()[0] == number:
                time.sleep(0.2)  # still there a moment later: blocked, not passing through
                if status.read_text().split()[0] == number:
                    return
        except (OSError, IndexError):
            break
        assert time.monotonic() < deadline, "the daemon never blocked in open()"
        time.sleep(0.05)
    time.sleep(1.0)


def test_camera_stall_error_recovery_signals_and_clean_stop(
    tmp_path: Path, frames: Path, daemon: Daemon
) -> None:
    # Start-up: READY=1 once, then watchdog pings while frames flow.
    daemon.wait_notify("READY=1")
    daemon.wait_notify("WATCHDOG=1", count=3)
    assert daemon.count_notifications("READY=1") == 1

    # 1. Stall: a frame file becomes a FIFO nobody writes to; reading it blocks,
    #    so the frame loop stops and so must the watchdog pings (systemd would
    #    kill and restart us).
    stalled = frames / "frame_002.jpg"
    keep = tmp_path / "frame_002.jpg"
    shutil.move(stalled, keep)
    os.mkfifo(stalled)
    fifo = tmp_path / "fifo-link"
    os.link(stalled, fifo)  # a second name, to release the reader later
    # Silence (> 3 watchdog intervals), and proof that it is the daemon stuck in
    # that read: opening the FIFO's write end without blocking succeeds only while
    # a reader waits on it (ENXIO otherwise: merely slow, so wait again).
    writer = None
    while writer is None:
        pings_when_stalled = wait_for_quiet(daemon, quiet_s=1.5)
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
    # ...and recovers: the real file is back, then the blocked read is released.
    keep.replace(stalled)
    os.close(writer)
    daemon.wait_notify("WATCHDOG=1", count=pings_when_stalled + 3)

    # 2. Errors: every frame file disappears. The camera is reported lost once
    #    (log and status event), reopened with backoff, and recovers when the
    #    files come back.
    hidden = tmp_path / "hidden"
    shutil.move(frames, hidden)
    daemon.wait_log("camera lost")
    daemon.wait_for(
        "camera status down",
        lambda: any(
            e["type"] == "status" and e["component"] == "camera" and not e["ok"]
            for e in daemon.events
        ),
    )
    time.sleep(1.0)  # several reopen attempts fail meanwhile
    shutil.move(hidden, frames)
    daemon.wait_log("camera recovered")
    daemon.wait_for(
        "camera status up",
        lambda: any(
            e["type"] == "status" and e["component"] == "camera" and e["ok"] for e in daemon.events
        ),
    )
    pings = daemon.count_notifications("WATCHDOG=1")
    daemon.wait_notify("WATCHDOG=1", count=pings + 2)
    assert daemon.count_logs("camera lost") == 1
    assert daemon.count_logs("camera recovered") == 1

    # 3. SIGUSR1: every thread's stack in the log, and the daemon keeps going.
    daemon.signal(signal.SIGUSR1)
    daemon.wait_log("thread dump on request")
    daemon.wait_log('Thread "MainThread"')
    pings = daemon.count_notifications("WATCHDOG=1")
    daemon.wait_notify("WATCHDOG=1", count=pings + 2)

    # 4. SIGTERM: a clean stop, STOPPING=1, exit 0.
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, "\n".join(daemon.logs[-30:])
    assert daemon.count_notifications("STOPPING=1") == 1
    assert daemon.count_logs("signal SIGTERM: stopping") == 1
    assert not [line for line in daemon.logs if "Traceback" in line]


def test_camera_gone_for_good_exits_non_zero_after_the_budget(tmp_path: Path, frames: Path) -> None:
    env = env_for(
        tmp_path,
        frames,
        MOODBOX_RUN_CAMERA_RESTART_BUDGET="2",
        MOODBOX_RUN_CAMERA_BACKOFF_S="0.05",
    )
    daemon = Daemon(tmp_path, env=env)
    try:
        daemon.wait_notify("READY=1")
        shutil.rmtree(frames)
        code = daemon.wait(timeout=120)
    finally:
        daemon.close()
    assert code == 3  # EXIT_CAMERA_LOST: systemd's Restart=on-failure takes over
    assert daemon.count_logs("camera lost") == 1
    assert daemon.count_logs("did not recover after 2 attempts") == 1


def test_sigterm_during_a_stalled_read_exits_hard_with_a_thread_dump(
    tmp_path: Path, frames: Path
) -> None:
    """A read blocked on a dead device cannot be stopped cleanly; the daemon must not
    hang until SIGKILL either: it logs where it was stuck and exits 4."""
    # Only a FIFO nobody writes to: every read blocks in open(). A signal
    # interrupts that open, but the source retries the file and blocks again.
    for path in frames.iterdir():
        path.unlink()
    os.mkfifo(frames / "frame_000.jpg")
    env = env_for(tmp_path, frames, MOODBOX_CAMERA_OPEN_TIMEOUT_S="1")  # 3 s stop deadline
    daemon = Daemon(tmp_path, env=env)
    try:
        daemon.wait_notify("READY=1")
        wait_in_open(daemon.process.pid)
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(timeout=120)
    finally:
        daemon.close()
    assert code == 4  # EXIT_STOP_TIMEOUT
    assert daemon.count_logs("still running 3 s after the stop request") == 1
    assert daemon.count_logs("imread") >= 1  # the dump shows the stuck read
