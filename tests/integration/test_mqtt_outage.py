"""Broker outages: no QoS 1 event lost over a restart, a bounded queue, a late broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import require_mosquitto
from mqtt_broker import (
    PREFIX,
    MosquittoBroker,
    Recorder,
    broker_settings,
    free_port,
    poll_until,
    started_service,
    wait_until,
)

from edge.events import UnknownFace
from edge.publish.contract import TOPIC
from edge.publish.mqtt import MqttPublisher
from edge.publish.service import MqttService

EVENTS = TOPIC["events"].full(PREFIX)


def event_ids(recorder: Recorder) -> list[int]:
    return [json.loads(m.text)["face_id"] for m in recorder.on(EVENTS)]


def emit_events(service: MqttService, ids: range) -> None:
    for face_id in ids:
        service.emit(UnknownFace(time=time.time(), face_id=face_id))


def test_broker_restart_mid_stream_loses_no_qos1_event(
    persistent_mosquitto: MosquittoBroker,
) -> None:
    broker = persistent_mosquitto
    # A persistent QoS 1 session, so the subscriber misses nothing while it reconnects too.
    recorder = Recorder(broker, EVENTS, client_id="ha-listener", clean_session=False)
    service, publisher = started_service(broker)
    try:
        emit_events(service, range(0, 50))
        # Events leave through a window of acked publishes (order over outages): let these go.
        assert wait_until(lambda: publisher.health().queued == 0)
        broker.stop()
        assert wait_until(lambda: not publisher.health().connected)
        emit_events(service, range(50, 100))  # broker away: queued, emit returns at once
        assert publisher.health().queued == 50
        broker.start()
        emit_events(service, range(100, 150))  # during reconnection
        assert poll_until(service, lambda: publisher.health().reconnects == 1)
        emit_events(service, range(150, 200))
        assert wait_until(lambda: len(set(event_ids(recorder))) == 200, timeout_s=15)
        assert set(event_ids(recorder)) == set(range(200))
        assert publisher.health().dropped == 0
        assert publisher.health().queued == 0
    finally:
        service.stop()
        recorder.close()


def test_the_outage_queue_is_bounded_and_its_drops_are_reported(
    persistent_mosquitto: MosquittoBroker,
) -> None:
    broker = persistent_mosquitto
    stats_topic = TOPIC["stats"].full(PREFIX)
    recorder = Recorder(broker, [EVENTS, stats_topic], client_id="bound", clean_session=False)
    service, publisher = started_service(broker, settings=broker_settings(broker, queue_limit=5))
    try:
        broker.stop()
        assert wait_until(lambda: not publisher.health().connected)
        emit_events(service, range(12))
        health = publisher.health()
        assert (health.queued, health.dropped) == (5, 7)
        broker.start()
        assert poll_until(service, lambda: publisher.health().connected)
        # The newest five go out after the reconnect, in order; the oldest seven were dropped.
        assert wait_until(lambda: len(event_ids(recorder)) == 5)
        assert event_ids(recorder) == [7, 8, 9, 10, 11]
        service.publish_stats()
        stats = json.loads(recorder.topic(stats_topic).text)
        assert stats["dropped_events"] == 7
        assert stats["queued_events"] == 0
        assert stats["reconnects"] == 1
    finally:
        service.stop()
        recorder.close()


def test_daemon_started_before_its_broker_connects_and_flushes(tmp_path: Path) -> None:
    require_mosquitto()  # this test starts its broker late, so it takes no broker fixture
    broker = MosquittoBroker(tmp_path, port=free_port(), persistence=True)
    # A listener's persistent session exists before the outage, as Home Assistant's would.
    broker.start()
    Recorder(broker, EVENTS, client_id="early-listener", clean_session=False).close()
    broker.stop()
    publisher = MqttPublisher(broker_settings(broker, client_id="early"))
    service = MqttService(publisher=publisher, prefix=PREFIX, device_id="test")
    service.start(service.emit)  # nothing listens on the port: must neither raise nor block
    try:
        emit_events(service, range(3))
        assert publisher.health().connected is False
        assert publisher.health().queued == 3
        broker.start()
        assert poll_until(service, lambda: publisher.health().connected, timeout_s=10)
        recorder = Recorder(broker, EVENTS, client_id="early-listener", clean_session=False)
        try:
            assert wait_until(lambda: len(event_ids(recorder)) == 3)
            assert event_ids(recorder) == [0, 1, 2]
        finally:
            recorder.close()
        assert publisher.health().reconnects == 0  # the first connection is not a reconnect
    finally:
        service.stop()
        broker.stop()
