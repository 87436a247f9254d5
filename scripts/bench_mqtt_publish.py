"""How long MqttService.emit takes on the frame loop, with the broker up and with it down.

Starts a private mosquitto on a free loopback port (mosquitto from PATH or
/usr/sbin), emits N mood_changed events each way and prints latency
percentiles. Usage: .venv/bin/python scripts/bench_mqtt_publish.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from mqtt_broker import MosquittoBroker, wait_until  # noqa: E402

from edge.classify import EMOTIONS  # noqa: E402
from edge.events import MoodChanged  # noqa: E402
from edge.publish.mqtt import BrokerSettings, MqttPublisher  # noqa: E402
from edge.publish.service import MqttService  # noqa: E402

PROBS = {label: 1 / len(EMOTIONS) for label in EMOTIONS}


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
        broker = MosquittoBroker(Path(tmp))
        broker.start()
        settings = BrokerSettings(
            host=broker.host,
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
