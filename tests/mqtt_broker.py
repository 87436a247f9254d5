"""A real mosquitto broker on a free loopback port, a recording client, a service on it.

Reusable by any test (import ``from mqtt_broker import ...``): the broker can be
stopped, killed and restarted on the same port to inject outages.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.publish.contract import TOPIC
from edge.publish.mqtt import BrokerSettings, MqttPublisher
from edge.publish.service import MqttService

HOST = "127.0.0.1"


def find_mosquitto() -> str | None:
    """The mosquitto binary from PATH or /usr/sbin (Debian installs it there)."""
    return shutil.which("mosquitto") or shutil.which(
        "mosquitto", path=os.pathsep.join(["/usr/sbin", "/usr/local/sbin"])
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class MosquittoBroker:
    """One mosquitto process; ``persistence`` keeps sessions and retained messages over restarts."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persistence: bool = False,
        anonymous: bool = True,
        extra_config: str = "",
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("mosquitto not found (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.host = HOST
        self.port = port or free_port()
        self.persistence = persistence
        self.anonymous = anonymous
        self.extra_config = extra_config
        self.log_file = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            f"log_dest file {self.log_file}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write here
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n" + self.extra_config)
        return path

    def start(self, timeout_s: float = 10.0) -> None:
        config = self._write_config()
        self._process = subprocess.Popen(
            [self.binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        """Clean shutdown (SIGTERM): persistent state is saved."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death (SIGKILL)."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


class Recorder:
    """A paho client that subscribes and records every message (thread-safe), for assertions."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topics: list[str] | str = "#",
        *,
        client_id: str = "",
        clean_session: bool = True,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._topics = [topics] if isinstance(topics, str) else topics
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self._subscribed.wait(5), "recorder could not subscribe"

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout_s: float = 5.0, *, after: int = 0
    ) -> Received:
        """The first message from index ``after`` matching ``predicate``, else AssertionError."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[after:]]
                    raise AssertionError(f"no matching message within {timeout_s} s; saw {seen}")
                self._cond.wait(left)

    def topic(self, topic: str, timeout_s: float = 5.0, *, after: int = 0) -> Received:
        return self.wait_for(lambda m: m.topic == topic, timeout_s, after=after)

    def latest(self, topic: str) -> Received | None:
        with self._cond:
            return next((m for m in reversed(self.messages) if m.topic == topic), None)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0, step_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


PREFIX = "moodbox/test"


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
