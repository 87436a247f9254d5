"""Remote commands end to end through a real broker, and hostile payloads that must not crash."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from fakes import FakeIdentity, FakeMusic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_broker import (
    PREFIX,
    MosquittoBroker,
    Recorder,
    poll_until,
    started_service,
)
from paho.mqtt.enums import CallbackAPIVersion

from edge.classify import EMOTIONS
from edge.control import COMMANDS, CommandDispatcher, RemoteControls
from edge.publish.authority import CommandAuthority, sign_command
from edge.publish.contract import TOPIC
from edge.publish.mqtt import MqttPublisher
from edge.publish.service import MqttService


def t(key: str) -> str:
    return TOPIC[key].full(PREFIX)


def sender(broker: MosquittoBroker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-test")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def send(client: mqtt.Client, command: str, payload: bytes | str) -> None:
    client.publish(f"{PREFIX}/{command}/set", payload, qos=1).wait_for_publish(5)


@pytest.fixture
def controlled(
    mosquitto: MosquittoBroker,
) -> Iterator[tuple[MqttService, FakeMusic, FakeIdentity, Recorder, mqtt.Client]]:
    music, identity = FakeMusic(), FakeIdentity()
    service, _ = started_service(mosquitto, controls=RemoteControls(music=music, identity=identity))
    music.emit = identity.emit = service.emit  # the app routes their events to every sink
    recorder = Recorder(mosquitto, f"{PREFIX}/#")
    client = sender(mosquitto)
    yield service, music, identity, recorder, client
    client.disconnect()
    client.loop_stop()
    recorder.close()
    service.stop()


def test_player_and_volume_commands_show_on_their_state_topics(controlled) -> None:  # type: ignore[no-untyped-def]
    service, music, _identity, recorder, client = controlled
    assert recorder.topic(t("volume")).text == "50"  # initial state from the controller
    assert recorder.topic(t("auto")).text == "ON"
    assert recorder.topic(t("mood_override")).text == "auto"

    send(client, "player", "play")
    send(client, "player", b"NEXT")
    send(client, "volume", "35")
    send(client, "player", "LIKE")
    send(client, "mood_override", "happy")
    send(client, "auto", "OFF")
    assert poll_until(service, lambda: len(music.calls) == 6)
    assert music.calls == [
        ("play", None),
        ("next", None),
        ("set_volume", 35),
        ("like", None),
        ("set_mood_override", "happy"),
        ("set_auto", False),
    ]
    assert music.likes == ["Rain"]
    player = recorder.wait_for(lambda m: m.topic == t("player") and b"Rain" in m.payload)
    assert json.loads(player.text)["state"] == "playing"
    recorder.wait_for(lambda m: m.topic == t("volume") and m.text == "35")
    recorder.wait_for(lambda m: m.topic == t("mood_override") and m.text == "happy")
    recorder.wait_for(lambda m: m.topic == t("auto") and m.text == "OFF")

    send(client, "player", "PAUSE")
    send(client, "mood_override", "auto")
    assert poll_until(service, lambda: len(music.calls) == 8)
    recorder.wait_for(lambda m: m.topic == t("player") and b'"paused"' in m.payload)
    recorder.wait_for(lambda m: m.topic == t("mood_override") and m.text == "auto")


def test_enroll_and_forget_show_on_presence(controlled) -> None:  # type: ignore[no-untyped-def]
    service, _music, identity, recorder, client = controlled
    # Identity commands are off by default and signed when on (tests/test_security_commands.py).
    key = b"k" * 32
    service.dispatcher.authority = CommandAuthority(key, PREFIX)
    send(client, "enroll", sign_command(key, PREFIX, "enroll", "Alice"))
    assert poll_until(service, lambda: identity.calls == [("enroll", "Alice")])
    presence = recorder.wait_for(lambda m: m.topic == t("presence") and b"Alice" in m.payload)
    assert json.loads(presence.text)["users"] == ["Alice"]
    recorder.wait_for(lambda m: m.topic == t("events") and b"user_signed_in" in m.payload)

    send(client, "forget", sign_command(key, PREFIX, "forget", "Alice"))
    send(client, "forget", sign_command(key, PREFIX, "forget", "Nobody"))
    assert poll_until(service, lambda: len(identity.calls) == 3)
    assert identity.calls[1:] == [("forget", "Alice"), ("forget", "Nobody")]
    gone = recorder.wait_for(
        lambda m: m.topic == t("presence") and json.loads(m.text)["count"] == 0,
        after=recorder.messages.index(presence),
    )
    assert json.loads(gone.text)["users"] == []


def test_invalid_commands_are_ignored_counted_and_logged_once(
    controlled,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, music, identity, _recorder, client = controlled
    caplog.set_level(logging.WARNING, logger="edge.control")
    for payload in ("loud", "-1", "101", "nan", "inf", "1e999", "", "50%"):
        send(client, "volume", payload)
    send(client, "player", "REWIND")
    send(client, "enroll", '{"name": "../../etc/passwd"}')
    send(client, "enroll", '{"name": "a", "admin": true}')
    send(client, "auto", "maybe")
    send(client, "mood_override", "ecstatic")
    send(client, "nonsense", "x")
    send(client, "volume", b"\xff\xfe")
    send(client, "volume", "7" * 5000)  # over command_max_bytes
    send(client, "volume", "20")  # the one valid command, last
    assert poll_until(service, lambda: music.calls == [("set_volume", 20)])
    assert identity.calls == []
    assert service.dispatcher.invalid == 16
    volume_warnings = [r for r in caplog.records if "ignoring volume command" in r.getMessage()]
    # One line per kind: not a number, out of range, empty, not UTF-8, too large.
    assert len(volume_warnings) == 5


def test_a_failing_component_or_a_missing_one_does_not_stop_commands(
    mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    music = FakeMusic()
    key = b"k" * 32
    service, _ = started_service(
        mosquitto,
        controls=RemoteControls(music=music),
        authority=CommandAuthority(key, PREFIX),
    )
    client = sender(mosquitto)
    try:
        music.fail_next = True
        send(client, "player", "PLAY")  # raises inside the controller
        send(client, "enroll", sign_command(key, PREFIX, "enroll", "bob"))  # no identity stage
        send(client, "enroll", sign_command(key, PREFIX, "enroll", "eve"))
        send(client, "volume", "10")
        assert poll_until(service, lambda: ("set_volume", 10) in music.calls)
        assert service.dispatcher.failed == 1
        missing = [r for r in caplog.records if "no identity stage" in r.getMessage()]
        assert len(missing) == 1
    finally:
        client.disconnect()
        client.loop_stop()
        service.stop()


def test_remote_controls_route_to_the_parts_they_are_given() -> None:
    music, identity = FakeMusic(), FakeIdentity()
    controls = RemoteControls(music=music, identity=identity)
    controls.player("NEXT")
    controls.forget("nobody")
    assert [name for name, _ in music.calls] == ["next"]
    assert identity.calls == [("forget", "nobody")]
    # A moodbox without music answers with an empty state and ignores player commands.
    bare = RemoteControls()
    assert bare.state() == {}
    bare.player("PLAY")


# --- property-based: any bytes on any command topic ---

ANY_PAYLOAD = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=300).map(lambda s: s.encode("utf-8")),
    st.sampled_from(["PLAY", "50", "ON", "auto", '{"name":"x"}', *EMOTIONS]).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from([*COMMANDS, "bogus", ""]), payload=ANY_PAYLOAD)
def test_dispatcher_never_raises_and_only_queues_valid_values(name: str, payload: bytes) -> None:
    music, identity = FakeMusic(), FakeIdentity()
    dispatcher = CommandDispatcher(RemoteControls(music=music, identity=identity), max_bytes=1024)
    accepted = dispatcher.submit(name, payload)
    assert accepted == (dispatcher.invalid == 0)
    ran = dispatcher.run_pending()
    assert ran == ([name] if accepted else [])
    for call, value in music.calls:
        if call == "set_volume":
            assert isinstance(value, int) and 0 <= value <= 100
        if call == "set_mood_override":
            assert value is None or value in EMOTIONS
    for _call, person in identity.calls:
        assert 1 <= len(person) <= 32 and "/" not in person


@pytest.fixture(scope="module")
def live(module_mosquitto: MosquittoBroker) -> Iterator[tuple[MqttService, FakeMusic]]:
    broker = module_mosquitto
    music = FakeMusic()
    service, _publisher = started_service(
        broker, controls=RemoteControls(music=music, identity=FakeIdentity())
    )
    music.emit = service.emit
    client = sender(broker)
    service.fuzz_client = client  # type: ignore[attr-defined]
    yield service, music
    client.disconnect()
    client.loop_stop()
    service.stop()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from([*COMMANDS, "bogus"]),
    payload=st.one_of(st.binary(max_size=70_000), ANY_PAYLOAD),
)
def test_hostile_payloads_through_the_broker_never_crash_the_service(
    live: tuple[MqttService, FakeMusic], name: str, payload: bytes
) -> None:
    service, music = live
    client: mqtt.Client = service.fuzz_client  # type: ignore[attr-defined]
    send(client, name, payload)
    marker = len(music.calls) % 100
    send(client, "volume", str(marker))  # a valid command after it still works
    assert poll_until(service, lambda: music.calls[-1:] == [("set_volume", marker)])
    publisher = service.publisher
    assert isinstance(publisher, MqttPublisher)
    assert publisher.health().connected


def test_unknown_names_and_floods_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.control")
    music = FakeMusic()
    dispatcher = CommandDispatcher(RemoteControls(music=music), max_pending=4)
    for i in range(50):
        assert not dispatcher.submit(f"made-up-{i}", b"1")
    assert len([r for r in caplog.records if "unknown command" in r.getMessage()]) == 1
    accepted = [dispatcher.submit("volume", str(i).encode()) for i in range(10)]
    assert accepted == [True] * 4 + [False] * 6  # the loop has not run: the queue is full
    assert dispatcher.invalid == 56
    assert dispatcher.run_pending() == ["volume"] * 4
    assert music.calls == [("set_volume", v) for v in range(4)]
