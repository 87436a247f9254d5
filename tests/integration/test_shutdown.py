"""`moodbox run`'s shutdown: every thread and file the app opened is closed after it stops."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker

from edge.app import RunLimits, build
from edge.config import load_config


def open_fds() -> set[str]:
    """What this process has open, by target (sockets, files, pipes)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.add(str(fd.readlink()))
        except OSError:
            continue  # the fd of the listdir itself, closed meanwhile
    return found


def settled_threads(before: set[threading.Thread], timeout: float = 5.0) -> list[str]:
    """Threads started since ``before`` that are still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            return [t.name for t in extra]
        time.sleep(0.05)


def test_every_thread_and_file_is_closed_after_the_app_stops(
    repo_root: Path, tmp_path: Path, mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    config = load_config(
        repo_root / "config.yaml",
        environ={
            "MOODBOX_CAMERA_FPS": "0",
            "MOODBOX_MQTT_HOST": mosquitto.host,
            "MOODBOX_MQTT_PORT": str(mosquitto.port),
            "MOODBOX_RUN_EVENTS_STDOUT": "false",
        },
    )
    assert config.identify.enabled and config.identify.background and config.music.enabled
    threads = set(threading.enumerate())
    files = open_fds()
    app = build(config, sinks=[])
    store = app.pipeline.identity.store if app.pipeline.identity else None
    assert store is not None
    # While running: the embedding worker, paho's network thread, the mixer (SDL).
    assert app.run(RunLimits(max_frames=40)) == 0
    assert settled_threads(threads) == []
    with pytest.raises(sqlite3.ProgrammingError):
        store.users()  # the identity stage's store is closed
    state = str(tmp_path / "state")
    assert {f for f in open_fds() - files if f.startswith(state)} == set()
    assert not any(f.startswith("socket:") for f in open_fds() - files)
