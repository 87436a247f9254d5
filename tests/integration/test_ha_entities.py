"""Home Assistant entities that behave, against a real mosquitto: counters that only grow,
a clean stop that leaves nobody present and the player stopped before `offline`,
enrolment results on the events topic, and two boxes in one home that do not collide."""

from __future__ import annotations

import json
import time

from mqtt_broker import PREFIX, MosquittoBroker, Recorder, started_service

from edge.config import MoodboxConfig
from edge.events import (
    EnrolmentFinished,
    EnrolmentStarted,
    PlayerState,
    TrackStarted,
    UserSignedIn,
)
from edge.publish.contract import EVENT_TYPES
from edge.publish.discovery import build_discovery, discovery_topic
from edge.publish.mqtt import topic_prefix


def test_counters_are_total_increasing_and_gauges_measurements() -> None:
    components = build_discovery("moodbox/x", "x")["cmps"]
    assert components["dropped_events"]["state_class"] == "total_increasing"
    assert components["reconnects"]["state_class"] == "total_increasing"
    for key in ("fps", "inference_ms", "cpu_temp", "uptime"):
        assert components[key]["state_class"] == "measurement", key


def test_a_clean_stop_clears_presence_and_stops_the_player_before_offline(
    mosquitto: MosquittoBroker,
) -> None:
    service, _publisher = started_service(mosquitto)
    now = time.time()
    service.emit(UserSignedIn(now, "cam", 1))
    service.emit(TrackStarted(now, "Morning", "Ann", "happy", "cam", "/m/a.ogg"))
    service.emit(PlayerState(now, "playing", "Morning", "Ann", "happy", "cam", 70))
    recorder = Recorder(mosquitto, f"{PREFIX}/#")
    try:
        # The retained state may arrive before the live update: wait for the sign-in.
        recorder.wait_for(
            lambda m: m.topic == f"{PREFIX}/presence" and json.loads(m.text)["users"] == ["cam"]
        )
        recorder.wait_for(
            lambda m: m.topic == f"{PREFIX}/player" and json.loads(m.text)["state"] == "playing"
        )
        seen = recorder.count()
        service.stop()
        offline = recorder.wait_for(
            lambda m: m.topic == f"{PREFIX}/available" and m.text == "offline", after=seen
        )
        after = recorder.messages[seen : recorder.messages.index(offline)]
        by_topic = {m.topic: json.loads(m.text) for m in after if m.text.startswith("{")}
        assert by_topic[f"{PREFIX}/presence"] == {"users": [], "user": None, "count": 0}
        assert by_topic[f"{PREFIX}/player"]["state"] == "stopped"
        assert by_topic[f"{PREFIX}/player"]["title"] is None
    finally:
        recorder.close()

    # What a Home Assistant that connects later reads: the retained state of a box that is off.
    late = Recorder(mosquitto, f"{PREFIX}/#")
    try:
        retained = {
            m.topic: m.text
            for m in [
                late.topic(f"{PREFIX}/presence"),
                late.topic(f"{PREFIX}/player"),
                late.topic(f"{PREFIX}/available"),
            ]
        }
        assert json.loads(retained[f"{PREFIX}/presence"])["users"] == []
        assert json.loads(retained[f"{PREFIX}/player"])["state"] == "stopped"
        assert retained[f"{PREFIX}/available"] == "offline"
    finally:
        late.close()


def test_enrolment_results_reach_the_events_topic(mosquitto: MosquittoBroker) -> None:
    assert {"enrolment_started", "enrolment_finished"} <= set(EVENT_TYPES)
    assert "enrolment_finished" in build_discovery("p", "x")["cmps"]["event"]["event_types"]
    service, _publisher = started_service(mosquitto)
    recorder = Recorder(mosquitto, f"{PREFIX}/events")
    try:
        now = time.time()
        service.emit(EnrolmentStarted(now, "alice"))
        service.emit(EnrolmentFinished(now, "alice", False, 0, "no usable face within the time"))
        service.emit(EnrolmentFinished(now, "bob", True, 5, None, ("alice",)))
        recorder.wait_for(lambda _m: recorder.count() >= 3)
        events = [json.loads(m.text) for m in recorder.on(f"{PREFIX}/events")]
    finally:
        recorder.close()
        service.stop()
    assert [(e["type"], e["event_type"], e["user"]) for e in events] == [
        ("enrolment_started", "enrolment_started", "alice"),
        ("enrolment_finished", "enrolment_finished", "alice"),
        ("enrolment_finished", "enrolment_finished", "bob"),
    ]
    assert events[1]["ok"] is False
    assert events[1]["reason"] == "no usable face within the time"
    assert events[2]["ok"] is True
    assert events[2]["samples"] == 5
    assert events[2]["also_matches"] == ["alice"]


def test_two_boxes_in_one_home_get_their_own_topics_and_devices() -> None:
    kitchen = MoodboxConfig.model_validate({"general": {"device_id": "kitchen"}})
    den = MoodboxConfig.model_validate({"general": {"device_id": "den"}})
    assert topic_prefix(kitchen) == "moodbox/kitchen"
    assert topic_prefix(den) == "moodbox/den"
    assert discovery_topic("homeassistant", "kitchen") != discovery_topic("homeassistant", "den")
    ids = [
        {
            c["unique_id"]
            for c in build_discovery(topic_prefix(c), c.general.device_id)["cmps"].values()
        }
        for c in (kitchen, den)
    ]
    assert not ids[0] & ids[1]
