"""Behavioural fakes of the music controller and identity stage, and an MQTT service builder.

The fakes record calls and emit the state events the real parts emit, through
the same ``emit`` the app gives services, so a command's effect can be checked
on its state topic end to end through a real broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mqtt_broker import MosquittoBroker, wait_until

from edge.events import Event, PlayerState, UserSignedIn, UserSignedOut
from edge.publish.contract import TOPIC
from edge.publish.mqtt import BrokerSettings, MqttPublisher
from edge.publish.service import MqttService

PREFIX = "moodbox/test"

SONGS = [("Morning", "Ann"), ("Rain", "Bo"), ("Late", "Cy")]


class FakeMusic:
    """A music controller with a playlist; every change emits a PlayerState event."""

    def __init__(self, emit: Callable[[Event], None] | None = None) -> None:
        self.emit = emit or (lambda _e: None)
        self.calls: list[tuple[str, Any]] = []
        self.playing = "stopped"
        self.index = 0
        self.volume = 50
        self.auto = True
        self.override: str | None = None
        self.likes: list[str] = []
        self.fail_next = False  # failure injection: the next call raises

    def _call(self, name: str, value: Any = None) -> None:
        self.calls.append((name, value))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError(f"injected failure in {name}")

    def _changed(self) -> None:
        title, artist = SONGS[self.index]
        self.emit(
            PlayerState(
                time=time.time(),
                state=self.playing,
                title=title,
                artist=artist,
                mood=self.override or "happy",
                user=None,
                volume=self.volume,
            )
        )

    def play(self) -> None:
        self._call("play")
        self.playing = "playing"
        self._changed()

    def pause(self) -> None:
        self._call("pause")
        self.playing = "paused"
        self._changed()

    def next(self) -> None:
        self._call("next")
        self.index = (self.index + 1) % len(SONGS)
        self.playing = "playing"
        self._changed()

    def like(self) -> None:
        self._call("like")
        self.likes.append(SONGS[self.index][0])

    def set_volume(self, percent: int) -> None:
        self._call("set_volume", percent)
        self.volume = percent
        self._changed()

    def set_mood_override(self, mood: str | None) -> None:
        self._call("set_mood_override", mood)
        self.override = mood

    def set_auto(self, enabled: bool) -> None:
        self._call("set_auto", enabled)
        self.auto = enabled

    def state(self) -> dict[str, Any]:
        title, artist = SONGS[self.index]
        return {
            "state": self.playing,
            "title": title,
            "artist": artist,
            "mood": self.override or "happy",
            "user": None,
            "volume": self.volume,
            "auto": self.auto,
            "mood_override": self.override,
        }


class FakeIdentity:
    """An identity stage: enrolling signs the person in, forgetting signs them out."""

    def __init__(self, emit: Callable[[Event], None] | None = None) -> None:
        self.emit = emit or (lambda _e: None)
        self.enrolled: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def enroll_from_camera(self, name: str) -> None:
        self.calls.append(("enroll", name))
        self.enrolled.add(name)
        self.emit(UserSignedIn(time=time.time(), user=name, face_id=1))

    def forget(self, name: str) -> bool:
        self.calls.append(("forget", name))
        if name not in self.enrolled:
            return False
        self.enrolled.discard(name)
        self.emit(UserSignedOut(time=time.time(), user=name))
        return True


def broker_settings(broker: MosquittoBroker, **overrides: Any) -> BrokerSettings:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "client_id": "moodbox-test",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "keepalive": 10,
        "will_topic": TOPIC["available"].full(PREFIX),
        **overrides,
    }
    return BrokerSettings(**values)


def started_service(broker: MosquittoBroker, **kwargs: Any) -> tuple[MqttService, MqttPublisher]:
    """An MqttService on a real MqttPublisher, started and connected; ``emit`` is its own."""
    settings = kwargs.pop("settings", None) or broker_settings(broker)
    publisher = MqttPublisher(settings)
    kwargs.setdefault("stats_interval_s", 3600.0)
    service = MqttService(publisher=publisher, prefix=PREFIX, device_id="test", **kwargs)
    service.start(service.emit)
    assert publisher.connected_event.wait(5), "publisher did not connect"
    return service, publisher


def poll_until(service: MqttService, condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Run the service's poll (as the frame loop would) until ``condition`` holds."""

    def step() -> bool:
        service.poll(time.monotonic())
        return condition()

    return wait_until(step, timeout_s)
