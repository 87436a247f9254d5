"""The MQTT contract against a real mosquitto: topics, retain flags, payloads, Last Will, stats."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from mqtt_broker import (
    PREFIX,
    MosquittoBroker,
    Recorder,
    broker_settings,
    find_mosquitto,
    poll_until,
    started_service,
)

from edge.classify import EMOTIONS
from edge.control import COMMANDS
from edge.events import (
    FaceLost,
    MoodChanged,
    PlayerState,
    TrackStarted,
    UnknownFace,
    UserSignedIn,
    UserSignedOut,
)
from edge.publish.contract import (
    COMMAND_TOPICS,
    EVENT_TYPES,
    TOPIC,
    TOPICS,
    command_name,
    markdown_table,
)
from edge.publish.mqtt import MqttPublisher, read_password
from edge.stats import Stats

ROOT = Path(__file__).resolve().parents[2]
PROBS = {label: (0.8 if label == "happy" else 0.2 / 6) for label in EMOTIONS}


def t(key: str) -> str:
    return TOPIC[key].full(PREFIX)


def test_readme_documents_every_topic_and_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README topic table is out of date: paste markdown_table()"
    for topic in TOPICS:
        assert f"`<prefix>/{topic.suffix}`" in readme
    for event_type in EVENT_TYPES:
        assert event_type in readme


def test_command_topics_are_exactly_the_dispatcher_commands() -> None:
    assert {command_name(PREFIX, t.full(PREFIX)) for t in COMMAND_TOPICS} == set(COMMANDS)
    assert command_name(PREFIX, f"{PREFIX}/nothing/set") is None
    assert command_name(PREFIX, "other/volume/set") is None
    assert all(not t.retained and t.qos == 1 for t in COMMAND_TOPICS)


def test_state_and_event_topics_follow_the_contract(mosquitto: MosquittoBroker) -> None:
    recorder = Recorder(mosquitto, f"{PREFIX}/#")
    service, _publisher = started_service(mosquitto)
    try:
        assert recorder.topic(t("available")).text == "online"
        assert recorder.topic(t("mood")).text == "none"
        assert json.loads(recorder.topic(t("presence")).text) == {
            "users": [],
            "user": None,
            "count": 0,
        }
        now = time.time()
        service.emit(UserSignedIn(time=now, user="alice", face_id=3))
        service.emit(
            MoodChanged(
                time=now,
                face_id=3,
                mood="happy",
                previous=None,
                probabilities=PROBS,
                box=(1, 2, 3, 4),
                user="alice",
            )
        )
        service.emit(UnknownFace(time=now, face_id=4))
        service.emit(
            TrackStarted(
                time=now, title="Morning", artist="Ann", mood="happy", user="alice", path="/m.mp3"
            )
        )
        service.emit(
            PlayerState(
                time=now,
                state="playing",
                title="Morning",
                artist="Ann",
                mood="happy",
                user="alice",
                volume=42,
            )
        )
        service.emit(UserSignedOut(time=now + 1, user="alice"))
        service.emit(FaceLost(time=now + 1, face_id=3, last_mood="happy"))

        mood = recorder.wait_for(lambda m: m.topic == t("mood") and m.text == "happy")
        assert mood.qos == 1
        attributes = json.loads(
            recorder.wait_for(
                lambda m: m.topic == t("mood/attributes") and b'"happy"' in m.payload
            ).text
        )
        assert attributes["probabilities"] == PROBS
        assert attributes["user"] == "alice"
        assert attributes["faces"] == 1
        assert datetime.fromisoformat(attributes["time"]).tzinfo is not None
        presence = recorder.wait_for(lambda m: m.topic == t("presence") and b"alice" in m.payload)
        assert json.loads(presence.text) == {"users": ["alice"], "user": "alice", "count": 1}
        player = recorder.wait_for(lambda m: m.topic == t("player") and b"Morning" in m.payload)
        assert json.loads(player.text) == {
            "state": "playing",
            "title": "Morning",
            "artist": "Ann",
            "mood": "happy",
            "user": "alice",
        }
        assert recorder.topic(t("volume")).text == "42"

        # Events: one per listed type, JSON with ISO-8601 time and event_type for HA.
        recorder.wait_for(lambda m: m.topic == t("events") and b"user_signed_out" in m.payload)
        events = [json.loads(m.text) for m in recorder.on(t("events"))]
        assert [e["type"] for e in events] == [
            "user_signed_in",
            "mood_changed",
            "unknown_face",
            "track_started",
            "user_signed_out",
        ]
        for event in events:
            assert event["event_type"] == event["type"]
            assert datetime.fromisoformat(event["time"]).tzinfo is not None
        assert events[0]["user"] == "alice"
        assert events[1]["probabilities"] == PROBS

        # Sign-out and face loss clear presence and the household mood.
        recorder.wait_for(
            lambda m: m.topic == t("mood") and m.text == "none",
            after=recorder.messages.index(mood),
        )
        last_presence = recorder.wait_for(
            lambda m: m.topic == t("presence") and json.loads(m.text)["count"] == 0,
            after=recorder.messages.index(presence),
        )
        assert json.loads(last_presence.text)["users"] == []
    finally:
        service.stop()
        recorder.close()

    # A late subscriber sees every state topic retained, and no event.
    late = Recorder(mosquitto, f"{PREFIX}/#")
    try:
        late.topic(t("volume"))
        time.sleep(0.2)
        seen = {m.topic: m for m in late.messages}
        for key in ("available", "mood", "mood/attributes", "presence", "player", "volume"):
            assert seen[t(key)].retain, key
        assert seen[t("available")].text == "offline"  # clean stop says offline
        assert t("events") not in seen
        assert t("stats") not in seen
    finally:
        late.close()


def test_household_mood_is_the_latest_face_and_falls_back(mosquitto: MosquittoBroker) -> None:
    recorder = Recorder(mosquitto, t("mood"))
    service, _ = started_service(mosquitto)
    try:
        for face_id, mood in ((1, "sad"), (2, "happy")):
            service.emit(
                MoodChanged(
                    time=time.time(),
                    face_id=face_id,
                    mood=mood,
                    previous=None,
                    probabilities=PROBS,
                    box=(0, 0, 1, 1),
                )
            )
        recorder.wait_for(lambda m: m.text == "happy")
        n = recorder.count()
        service.emit(FaceLost(time=time.time(), face_id=2, last_mood="happy"))
        assert recorder.wait_for(lambda m: True, after=n).text == "sad"
        service.emit(FaceLost(time=time.time(), face_id=1, last_mood="sad"))
        assert recorder.wait_for(lambda m: True, after=n + 1).text == "none"
    finally:
        service.stop()
        recorder.close()


def test_stats_topic_reports_stages_counters_and_drops(mosquitto: MosquittoBroker) -> None:
    stats = Stats()
    stats.record("detect", 6.0)
    stats.record("classify", 1.5)
    stats.count("dropped_frames", 3)
    for i in range(10):
        stats.frame(i * 0.2)
    recorder = Recorder(mosquitto, t("stats"))
    service, _ = started_service(mosquitto, stats=stats, cpu_temp=lambda: 48.5)
    try:
        service.dispatcher.submit("volume", b"loud")  # one invalid command, counted
        service.poll(time.monotonic())
        payload = json.loads(recorder.topic(t("stats")).text)
        assert payload["stage_ms"] == {"detect": 6.0, "classify": 1.5}
        assert payload["inference_ms"] == 7.5
        assert payload["fps"] == 5.0
        assert payload["cpu_temp_c"] == 48.5
        assert payload["dropped_frames"] == 3
        assert payload["frames"] == 10
        assert payload["invalid_commands"] == 1
        assert payload["reconnects"] == 0
        assert payload["dropped_events"] == 0
        assert payload["version"]
        assert payload["uptime_s"] >= 0
        # Not again before the interval has passed.
        service.poll(time.monotonic())
        time.sleep(0.2)
        assert len(recorder.on(t("stats"))) == 1
    finally:
        service.stop()
        recorder.close()


def test_retained_state_is_republished_after_the_broker_forgot_it(
    mosquitto: MosquittoBroker,
) -> None:
    service, publisher = started_service(mosquitto)
    try:
        service.emit(UserSignedIn(time=time.time(), user="bob", face_id=1))
        first = Recorder(mosquitto, t("presence"))
        first.wait_for(lambda m: b"bob" in m.payload)
        first.close()
        mosquitto.restart()  # no persistence: every retained message is gone
        assert poll_until(service, lambda: publisher.health().reconnects == 1)
        probe = Recorder(mosquitto, t("presence"))
        probe.wait_for(lambda m: b"bob" in m.payload)  # republished (live or retained)
        probe.close()
        late = Recorder(mosquitto, f"{PREFIX}/#")
        try:
            presence = late.wait_for(lambda m: m.topic == t("presence") and b"bob" in m.payload)
            assert presence.retain
            assert late.topic(t("available")).text == "online"
            assert late.topic(t("mood")).retain
        finally:
            late.close()
    finally:
        service.stop()


WILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from edge.publish.mqtt import BrokerSettings, MqttPublisher
    publisher = MqttPublisher(BrokerSettings(
        host="127.0.0.1", port=int(sys.argv[1]), client_id="moodbox-will", keepalive=5,
        will_topic=sys.argv[2]))
    publisher.start(lambda topic, payload: None, [])
    assert publisher.connected_event.wait(10)
    print("connected", flush=True)
    time.sleep(60)
    """
)


def test_last_will_marks_a_killed_daemon_offline(mosquitto: MosquittoBroker) -> None:
    recorder = Recorder(mosquitto, t("available"))
    process = subprocess.Popen(
        [sys.executable, "-c", WILL_SCRIPT, str(mosquitto.port), t("available")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "connected"
        recorder.wait_for(lambda m: m.text == "online")
        process.kill()  # no DISCONNECT: the broker must send the Last Will
        offline = recorder.wait_for(lambda m: m.text == "offline", timeout_s=10)
        assert offline.topic == t("available")
    finally:
        process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()
        recorder.close()
    # The will is retained: a later subscriber also sees offline.
    late = Recorder(mosquitto, t("available"))
    try:
        assert late.topic(t("available")).text == "offline"
    finally:
        late.close()


def test_password_and_user_reach_the_broker(tmp_path: Path) -> None:
    """username + password (read from the environment) against a broker that requires them."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None or find_mosquitto() is None:
        pytest.skip("mosquitto_passwd not installed")
    password_file = tmp_path / "passwords"
    subprocess.run([passwd, "-c", "-b", str(password_file), "moodbox", "s3cret"], check=True)
    password_file.chmod(0o600)
    workdir = tmp_path / "auth"
    workdir.mkdir()
    broker = MosquittoBroker(
        workdir, anonymous=False, extra_config=f"password_file {password_file}\n"
    )
    with broker:
        good = MqttPublisher(
            broker_settings(
                broker,
                username="moodbox",
                password=read_password({"MOODBOX_MQTT_PASSWORD": "s3cret"}),
            )
        )
        good.start(lambda *_: None, [])
        try:
            assert good.connected_event.wait(5)
        finally:
            good.stop()
        bad = MqttPublisher(
            broker_settings(broker, client_id="bad", username="moodbox", password="wrong")  # noqa: S106
        )
        bad.start(lambda *_: None, [])
        try:
            time.sleep(0.5)
            assert not bad.health().connected
        finally:
            bad.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


# paho leaves the socket of a failed TLS handshake to the garbage collector (not ours).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    """TLS to a broker whose certificate is signed by ``mqtt.ca_file``; untrusted otherwise."""
    if shutil.which("openssl") is None or find_mosquitto() is None:
        pytest.skip("openssl or mosquitto not installed")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=moodbox test CA", cwd=tmp_path)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
             cwd=tmp_path)  # fmt: skip
    workdir = tmp_path / "tls"
    workdir.mkdir()
    broker = MosquittoBroker(
        workdir,
        extra_config=f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\n",
    )
    with broker:
        trusted = MqttPublisher(broker_settings(broker, tls=True, ca_file=tmp_path / "ca.crt"))
        trusted.start(lambda *_: None, [])
        try:
            assert trusted.connected_event.wait(5)
        finally:
            trusted.stop()
        untrusted = MqttPublisher(broker_settings(broker, client_id="untrusted", tls=True))
        untrusted.start(lambda *_: None, [])
        try:
            time.sleep(0.5)
            assert not untrusted.health().connected
        finally:
            untrusted.stop()
