"""sd_notify over real unix datagram sockets, the frame-loop watchdog, thread dumps."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.supervise import Notifier, SystemdNotifyService, dump_threads, watchdog_interval


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd's notify socket (a path)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return messages


def test_notify_to_path_socket(notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    assert Notifier(address).notify("READY=1", "STATUS=two\nlines")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=two lines"


def test_notify_to_abstract_socket() -> None:
    name = f"moodbox-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier("@" + name).notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notifier_without_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.notify("READY=1")


def test_lost_socket_is_logged_once_and_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone"
    notifier = Notifier(str(path))
    with caplog.at_level(logging.INFO, logger="edge.supervise"):
        assert not notifier.notify("WATCHDOG=1")
        assert not notifier.notify("WATCHDOG=1")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert notifier.notify("WATCHDOG=1")
            assert notifier.notify("WATCHDOG=1")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


def test_watchdog_interval_from_environment() -> None:
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": pid}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_service_ready_pings_only_on_frames_rate_limited_then_stopping(
    notify_socket: tuple[str, socket.socket],
) -> None:
    address, sock = notify_socket
    clock = ManualClock()
    service = SystemdNotifyService(notifier=Notifier(address), watchdog_interval_s=5.0, clock=clock)
    service.start(lambda event: None)
    assert drain(sock)[0].startswith("READY=1\nSTATUS=")

    # Time passes without frames: no ping (a stalled loop must starve the watchdog).
    clock.now += 60
    assert drain(sock) == []

    # Frames at 10 fps for 12 s: pings at most every 5 s.
    for _ in range(120):
        clock.now += 0.1
        service.poll(clock.now)
    pings = drain(sock)
    assert 2 <= len(pings) <= 3
    assert all(p.startswith("WATCHDOG=1\nSTATUS=processing frames") for p in pings)
    assert service.pings == len(pings)

    service.stop()
    assert drain(sock) == ["STOPPING=1\nSTATUS=stopping"]


def test_service_without_watchdog_sends_status_only(
    notify_socket: tuple[str, socket.socket],
) -> None:
    address, sock = notify_socket
    clock = ManualClock()
    service = SystemdNotifyService(
        notifier=Notifier(address), watchdog_interval_s=None, clock=clock, status_interval_s=1.0
    )
    service.start(lambda event: None)
    drain(sock)
    for _ in range(30):
        clock.now += 0.1
        service.poll(clock.now)
    messages = drain(sock)
    assert messages
    assert all(m.startswith("STATUS=") for m in messages)
    assert service.pings == 0


def test_dump_threads_names_every_thread(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="stuck-worker", daemon=True)
    worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="edge.supervise"):
            text = dump_threads()
    finally:
        release.set()
        worker.join()
    assert 'Thread "stuck-worker"' in text
    assert 'Thread "MainThread"' in text
    assert "release.wait" in text or "wait" in text
    assert any("thread dump" in r.getMessage() for r in caplog.records)


def test_the_notifier_is_the_last_service_so_ready_means_everything_started(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from edge.app import build
    from edge.config import load_config

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    config = load_config(environ={"MOODBOX_MUSIC_ENABLED": "false"})
    app = build(config)
    app.pipeline.close()
    services = app.services
    assert isinstance(services[-1], SystemdNotifyService)
    assert sum(isinstance(s, SystemdNotifyService) for s in services) == 1
