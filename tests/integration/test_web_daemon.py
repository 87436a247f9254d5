"""The web app inside the daemon: an enrolment refused with its reason, a port in use."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from web_client import ROOT, Client, running_daemon, wait_until

from edge.app import RunLimits, build
from edge.config import load_config
from edge.events import Event, StatusChanged

COFFEE_FRAMES = (10, 11, 12)  # the demo clip's cup of coffee: no face


def test_an_enrolment_with_no_face_in_view_fails_with_the_reason(tmp_path: Path) -> None:
    frames = tmp_path / "coffee"
    frames.mkdir()
    for i in COFFEE_FRAMES:
        shutil.copy(ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg", frames)
    with running_daemon(tmp_path, frames, MOODBOX_IDENTIFY_ENROLL_TIMEOUT_S="2") as daemon:
        client = Client(daemon.url, daemon.token)
        assert client.post("/api/people/enroll", {"name": "Nobody"}).status == 202
        active = wait_until("progress", lambda: client.get("/api/enrolment").json()["active"])
        assert active["name"] == "Nobody" and active["wanted"] == 5
        last = wait_until("the outcome", lambda: client.get("/api/enrolment").json()["last"])
        assert last["ok"] is False and last["user"] == "Nobody"
        assert "no face in view" in last["detail"]
        assert client.get("/api/people").json()["people"] == []
        assert client.post("/api/people/enroll", {"name": "?bad"}).status == 400


def test_a_port_in_use_leaves_the_speaker_running_without_its_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Event] = []

    class Capture:
        def emit(self, event: Event) -> None:
            events.append(event)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
        config = load_config(
            ROOT / "config.yaml",
            environ={"MOODBOX_CAMERA_FPS": "0", "MOODBOX_WEB_PORT": str(port),
                     "MOODBOX_RUN_EVENTS_STDOUT": "false"},
        )  # fmt: skip
        app = build(config, sinks=[Capture()])
        assert app.run(RunLimits(max_frames=30)) == 0  # the frames flowed all the same
    down = [e for e in events if isinstance(e, StatusChanged) and e.component == "web"]
    assert down and not down[0].ok
    assert not (tmp_path / "state" / "web.json").exists()
