"""`moodbox run` with MQTT turned on by the environment, against a real broker, on the demo clip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, Recorder

from edge.app import build
from edge.config import load_config
from edge.control import RemoteControls
from edge.music.controller import MusicController
from edge.publish.service import MqttService
from edge.web.commands import IdentityWithHistory

PREFIX = "moodbox/moodbox"  # moodbox/<general.device_id>, with the id set to moodbox


def test_daemon_publishes_the_contract_when_a_host_is_set(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    recorder = Recorder(mosquitto, [f"{PREFIX}/#", "homeassistant/#"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    env.update(
        {
            "SDL_AUDIODRIVER": "dummy",
            "SDL_VIDEODRIVER": "dummy",
            "STATE_DIRECTORY": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
            "MOODBOX_GENERAL_DEVICE_ID": "moodbox",  # the default is this machine's host name
            "MOODBOX_CAMERA_FPS": "10",
            "MOODBOX_DECIDE_HOLD_S": "0.5",
            "MOODBOX_MQTT_HOST": mosquitto.host,
            "MOODBOX_MQTT_PORT": str(mosquitto.port),
            "MOODBOX_MQTT_STATS_INTERVAL_S": "1",
        }
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--max-frames", "26"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        available = [m.text for m in recorder.on(f"{PREFIX}/available")]
        assert available[0] == "online"
        recorder.wait_for(lambda m: m.topic == f"{PREFIX}/available" and m.text == "offline")
        discovery = recorder.topic("homeassistant/device/moodbox/config")
        assert json.loads(discovery.text)["cmps"]["mood"]["state_topic"] == f"{PREFIX}/mood"
        events = [json.loads(m.text) for m in recorder.on(f"{PREFIX}/events")]
        moods = [e for e in events if e["type"] == "mood_changed"]
        assert len({e["face_id"] for e in moods}) == 2  # the demo's two portraits
        assert {m.text for m in recorder.on(f"{PREFIX}/mood")} >= {moods[-1]["mood"]}
        stats = json.loads(recorder.topic(f"{PREFIX}/stats").text)
        assert {"detect", "classify"} <= set(stats["stage_ms"])
        assert stats["frames"] >= 1
    finally:
        recorder.close()


def test_build_routes_commands_to_music_and_identity(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    config = load_config(repo_root / "config.yaml", environ={"MOODBOX_MQTT_HOST": "127.0.0.1"})
    app = build(config)
    try:
        services = app.services
        mqtt = next(s for s in services if isinstance(s, MqttService))
        controls = mqtt.controls
        assert isinstance(controls, RemoteControls)
        # The identity stage, wrapped so that a forget also erases the person's history.
        assert isinstance(controls.identity, IdentityWithHistory)
        assert controls.identity.identity is app.pipeline.identity is not None
        music = next(s for s in services if isinstance(s, MusicController))
        assert controls.music is music
        # MQTT after the parts it drives; both see every event, after the household.
        assert services.index(mqtt) > services.index(music)
        assert music in app.sinks and mqtt in app.sinks
        assert mqtt.household is app.household
    finally:
        app.pipeline.close()
