"""Fault injection against the real daemon process: the MQTT broker is killed and
restarted on the same port. Frames keep flowing meanwhile (watchdog pings), the
loss and the recovery are logged once each, availability is back to online."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, copy_frames, env_for, keeps_processing, stop_cleanly
from mqtt_broker import MosquittoBroker, Recorder


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    return copy_frames(tmp_path)


@pytest.fixture
def run_daemon() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def test_broker_killed_and_restarted(
    tmp_path: Path, frames: Path, mosquitto: MosquittoBroker, run_daemon: list[Daemon]
) -> None:
    env = env_for(
        tmp_path,
        frames,
        MOODBOX_MUSIC_ENABLED="false",
        MOODBOX_MQTT_HOST=mosquitto.host,
        MOODBOX_MQTT_PORT=str(mosquitto.port),
        MOODBOX_MQTT_RECONNECT_MIN_S="0.2",
        MOODBOX_MQTT_RECONNECT_MAX_S="0.5",
        MOODBOX_MQTT_KEEPALIVE="5",
    )
    daemon = Daemon(tmp_path, env=env, watchdog_usec=400_000)
    run_daemon.append(daemon)
    daemon.wait_log("MQTT: connected")
    recorder = Recorder(mosquitto, "moodbox/#")
    try:
        assert recorder.topic("moodbox/moodbox/available").text == "online"
    finally:
        recorder.close()

    mosquitto.kill()
    daemon.wait_log("MQTT: connection lost")
    keeps_processing(daemon, pings=5)  # frames flow while the broker is away

    mosquitto.start()  # same port
    daemon.wait_log("MQTT: reconnected")
    recorder = Recorder(mosquitto, "moodbox/#")
    try:
        assert recorder.topic("moodbox/moodbox/available").text == "online"
    finally:
        recorder.close()
    keeps_processing(daemon)
    assert daemon.count_logs("MQTT: connection lost") == 1
    assert daemon.count_logs("MQTT: reconnected") == 1
    stop_cleanly(daemon)
