"""How long MqttService.emit takes on the frame loop, with the broker up and with it down.

Starts a private mosquitto on a free loopback port (mosquitto from PATH or
/usr/sbin; apt-get install mosquitto), emits N mood_changed events each way and prints latency
percentiles. Usage: .venv/bin/python scripts/bench/bench_mqtt_publish.py [N]
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge.classify import EMOTIONS
from edge.events import MoodChanged
from edge.publish.mqtt import BrokerSettings, MqttPublisher
from edge.publish.service import MqttService

PROBS = {label: 1 / len(EMOTIONS) for label in EMOTIONS}
HOST = "127.0.0.1"


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


class Broker:
    """A throwaway mosquitto on one loopback port, stopped and started again on it."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} {HOST}\nallow_anonymous true\n")
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc: subprocess.Popen[bytes] | None = None

    def _accepts(self) -> bool:
        try:
            socket.create_connection((HOST, self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        if not wait_until(self._accepts):
            raise SystemExit(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


def run(service: MqttService, n: int) -> list[float]:
    took = []
    for i in range(n):
        event = MoodChanged(
            time=time.time(),
            face_id=i % 4,
            mood=EMOTIONS[i % len(EMOTIONS)],
            previous=None,
            probabilities=PROBS,
            box=(0, 0, 10, 10),
        )
        start = time.perf_counter()
        service.emit(event)
        took.append((time.perf_counter() - start) * 1e6)
    return took


def report(label: str, took: list[float]) -> None:
    ordered = sorted(took)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    print(
        f"{label:<12} n={len(took)}  median {statistics.median(took):7.1f} µs  "
        f"p99 {p(0.99):7.1f} µs  max {max(took):8.1f} µs"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        settings = BrokerSettings(
            host=HOST,
            port=broker.port,
            client_id="bench",
            queue_limit=n,
            reconnect_min_s=0.2,
            reconnect_max_s=1,
            will_topic="moodbox/bench/available",
        )
        publisher = MqttPublisher(settings)
        service = MqttService(publisher=publisher, prefix="moodbox/bench", device_id="bench")
        service.start(service.emit)
        assert publisher.connected_event.wait(5)
        report("broker up", run(service, n))
        broker.stop()
        wait_until(lambda: not publisher.health().connected)
        report("broker down", run(service, n))
        print(f"queued while down: {publisher.health().queued}")
        broker.start()
        wait_until(lambda: publisher.health().connected, timeout_s=10)
        service.stop()
        broker.stop()


if __name__ == "__main__":
    main()
