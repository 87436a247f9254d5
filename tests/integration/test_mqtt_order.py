"""Events keep their order through a silent outage: the broker frozen (SIGSTOP), not closed.

Issue 16, finding 4: with the broker frozen for longer than the keepalive,
events handed to paho before the keepalive tripped were sent after those
queued later (34 of 90 out of order). A real mosquitto is stopped with SIGSTOP
while events keep coming, then continued; a subscriber with a persistent
session must see every event, and the first copy of each in order (QoS 1 may
deliver a resent one twice).
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from typing import Any

from mqtt_broker import (
    PREFIX,
    MosquittoBroker,
    Recorder,
    broker_settings,
    started_service,
    wait_until,
)

from edge.events import UnknownFace
from edge.publish.contract import TOPIC

EVENTS = TOPIC["events"].full(PREFIX)
KEEPALIVE_S = 5


def first_copies(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def test_order_and_completeness_survive_a_frozen_broker(
    persistent_mosquitto: MosquittoBroker,
) -> None:
    broker = persistent_mosquitto
    recorder = Recorder(broker, EVENTS, client_id="order-listener", clean_session=False)
    service, publisher = started_service(
        broker, settings=broker_settings(broker, keepalive=KEEPALIVE_S)
    )
    process: Any = broker._process  # the test freezes the broker process itself
    sent = 0

    def emit(count: int, every_s: float) -> None:
        nonlocal sent
        for _ in range(count):
            service.emit(UnknownFace(time=time.time(), face_id=sent))
            sent += 1
            time.sleep(every_s)

    try:
        emit(20, 0.02)
        process.send_signal(signal.SIGSTOP)
        try:
            # 3 keepalives: paho pings after one, and drops the connection a keepalive later.
            emit(60, 3 * KEEPALIVE_S / 60)
            assert not publisher.health().connected, "the keepalive never tripped"
        finally:
            process.send_signal(signal.SIGCONT)
        emit(20, 0.02)

        def ids() -> list[int]:
            return [json.loads(m.text)["face_id"] for m in recorder.on(EVENTS)]

        assert wait_until(lambda: set(ids()) >= set(range(sent)), timeout_s=60), (
            f"missing {sorted(set(range(sent)) - set(ids()))}"
        )
        received = first_copies(ids())
        late = [b for a, b in itertools.pairwise(received) if b < a]
        assert received == list(range(sent)), f"{len(late)} out of order: {late[:10]}"
        assert publisher.health().dropped == 0
        assert publisher.health().reconnects >= 1
    finally:
        service.stop()
        recorder.close()
