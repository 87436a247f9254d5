"""Home Assistant discovery against HA's documented schema, birth re-send, removal; config, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from mqtt_broker import PREFIX, MosquittoBroker, Recorder, started_service

from edge.classify import EMOTIONS
from edge.cli import main
from edge.config import MoodboxConfig, load_config
from edge.errors import ConfigError
from edge.publish.contract import EVENT_TYPES, TOPIC, TOPICS
from edge.publish.discovery import build_discovery, discovery_topic
from edge.publish.mqtt import BrokerSettings, read_password

# Home Assistant's MQTT discovery documentation: device-based payloads carry `dev` (with
# identifiers), `o` (origin, with a name) and `cmps`; every component has `p` and, for
# device discovery, a `unique_id`; each platform's required options are listed below.
REQUIRED_BY_PLATFORM: dict[str, set[str]] = {
    "sensor": {"state_topic"},
    "button": {"command_topic"},
    "select": {"command_topic", "options"},
    "number": {"command_topic"},
    "switch": {"command_topic"},
    "event": {"state_topic", "event_types"},
}
TOPIC_OPTIONS = ("state_topic", "command_topic", "json_attributes_topic")
OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def test_discovery_payload_matches_home_assistants_schema() -> None:
    payload = build_discovery(PREFIX, "kitchen")
    assert set(payload) >= {"dev", "o", "cmps"}
    assert payload["dev"]["ids"] == ["moodbox_kitchen"]
    assert payload["dev"]["name"]
    assert payload["o"]["name"] == "moodbox"
    assert payload["availability"][0]["topic"] == TOPIC["available"].full(PREFIX)
    components: dict[str, dict[str, Any]] = payload["cmps"]
    platforms = {c["p"] for c in components.values()}
    assert platforms == set(REQUIRED_BY_PLATFORM)  # no media_player: HA has no MQTT one
    unique_ids = [c["unique_id"] for c in components.values()]
    assert len(unique_ids) == len(set(unique_ids))
    contract = {topic.full(PREFIX): topic for topic in TOPICS}
    for key, component in components.items():
        assert OBJECT_ID.match(key)
        assert REQUIRED_BY_PLATFORM[component["p"]] <= set(component), key
        for option in TOPIC_OPTIONS:
            if option in component:
                topic = contract[component[option]]  # KeyError: not in the contract
                assert (topic.kind == "command") == (option == "command_topic"), (key, option)
        if component.get("device_class") == "enum":
            assert component["options"]
            assert "unit_of_measurement" not in component and "state_class" not in component
        if "entity_category" in component:
            assert component["entity_category"] in ("config", "diagnostic")
    # Enum options cover every value the state topics can carry.
    assert components["mood"]["options"] == [*EMOTIONS, "none"]
    assert components["mood_override"]["options"] == ["auto", *EMOTIONS]
    assert components["event"]["event_types"] == list(EVENT_TYPES)
    volume = components["volume"]
    assert (volume["min"], volume["max"], volume["step"]) == (0, 100, 1)
    assert {c["payload_press"] for c in components.values() if c["p"] == "button"} == {
        "PLAY",
        "PAUSE",
        "NEXT",
        "LIKE",
    }
    assert components["auto"]["payload_on"] == "ON"
    assert components["auto"]["payload_off"] == "OFF"
    assert discovery_topic("homeassistant", "kitchen") == (
        "homeassistant/device/moodbox_kitchen/config"
    )
    json.dumps(payload)  # serialisable


def test_discovery_is_retained_and_sent_again_when_home_assistant_starts(
    mosquitto: MosquittoBroker,
) -> None:
    topic = discovery_topic("homeassistant", "test")
    service, _ = started_service(mosquitto)
    delivered = Recorder(mosquitto, topic)
    delivered.topic(topic)  # the broker has it (live or retained, depending on timing)
    delivered.close()
    recorder = Recorder(mosquitto, topic)
    try:
        first = recorder.topic(topic)
        assert first.retain
        assert json.loads(first.text)["cmps"]["mood"]["state_topic"] == f"{PREFIX}/mood"
        n = recorder.count()
        # Home Assistant's birth message.
        recorder.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        again = recorder.wait_for(lambda m: m.topic == topic, after=n)
        assert json.loads(again.text) == json.loads(first.text)
    finally:
        recorder.close()
        service.stop()


def mqtt_config(tmp_path: Path, broker: MosquittoBroker) -> Path:
    return write_config(
        tmp_path,
        "general:\n  device_id: test\n"
        f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n"
        "  topic_prefix: moodbox/test\n",
    )


def test_ha_remove_clears_the_retained_discovery(
    mosquitto: MosquittoBroker, tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = discovery_topic("homeassistant", "test")
    service, _ = started_service(mosquitto)
    service.stop()
    before = Recorder(mosquitto, topic)
    before.topic(topic)
    before.close()

    assert main(["ha-remove", "--config", str(mqtt_config(tmp_path, mosquitto))]) == 0
    assert f"cleared {topic}" in capsys.readouterr().out
    after = Recorder(mosquitto, ["homeassistant/#", f"{PREFIX}/available"])
    try:
        after.topic(f"{PREFIX}/available")  # retained state is still there…
        assert after.on(topic) == []  # …but the device is gone
    finally:
        after.close()

    assert (
        main(["ha-remove", "--purge-state", "--config", str(mqtt_config(tmp_path, mosquitto))]) == 0
    )
    purged = Recorder(mosquitto, f"{PREFIX}/#")
    try:
        purged.client.publish(f"{PREFIX}/probe", "x").wait_for_publish(5)
        purged.topic(f"{PREFIX}/probe")
        assert [m.topic for m in purged.messages] == [f"{PREFIX}/probe"]
    finally:
        purged.close()


def test_mqtt_check_lists_the_retained_topics(
    mosquitto: MosquittoBroker, tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    service, _ = started_service(mosquitto)
    try:
        config = mqtt_config(tmp_path, mosquitto)
        assert main(["mqtt-check", "--seconds", "0.5", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert f"{PREFIX}/available online" in out
        assert f"{PREFIX}/mood none" in out
    finally:
        service.stop()


def test_cli_reports_an_unreachable_broker(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from mqtt_broker import free_port

    config = write_config(tmp_path, f"mqtt:\n  host: 127.0.0.1\n  port: {free_port()}\n")
    assert main(["ha-remove", "--config", str(config), "--timeout", "1"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_mqtt_is_off_by_default_and_on_with_the_environment(
    tmp_path: Path, clean_env: None, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.app import build
    from edge.publish.service import MqttService

    def services_of(config: MoodboxConfig) -> list[object]:
        app = build(config)
        app.pipeline.close()
        return list(app.services)

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    config_file = repo_root / "config.yaml"
    kitchen = {"MOODBOX_GENERAL_DEVICE_ID": "kitchen", "MOODBOX_MUSIC_ENABLED": "false"}
    off = load_config(config_file, environ=kitchen)
    assert off.mqtt.host is None
    assert not any(isinstance(s, MqttService) for s in services_of(off))
    on = load_config(config_file, environ={**kitchen, "MOODBOX_MQTT_HOST": "broker.local"})
    services = [s for s in services_of(on) if isinstance(s, MqttService)]
    assert len(services) == 1
    assert services[0].prefix == "moodbox/kitchen"
    settings = BrokerSettings.from_config(on, environ={})
    assert (settings.host, settings.port, settings.client_id) == (
        "broker.local",
        1883,
        "moodbox-kitchen",
    )
    assert settings.will_topic == "moodbox/kitchen/available"


def test_the_password_never_comes_from_config_yaml(tmp_path: Path, clean_env: None) -> None:
    config_file = write_config(tmp_path, "mqtt:\n  host: x\n  password: hunter2\n")
    with pytest.raises(ConfigError) as err:
        load_config(config_file, environ={})
    assert any("mqtt.password" in problem for problem in err.value.problems)
    # The environment variable is a secret, not a setting: it is not an unknown-key error.
    config = load_config(
        write_config(tmp_path, "mqtt:\n  host: x\n  username: box\n"),
        environ={"MOODBOX_MQTT_PASSWORD": "s3cret"},
    )
    settings = BrokerSettings.from_config(config, environ={"MOODBOX_MQTT_PASSWORD": "s3cret"})
    assert (settings.username, settings.password) == ("box", "s3cret")


def test_password_from_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "mqtt_password").write_text("from-credential\n")
    assert read_password({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-credential"
    assert (
        read_password({"CREDENTIALS_DIRECTORY": str(tmp_path), "MOODBOX_MQTT_PASSWORD": "env"})
        == "env"
    )
    assert read_password({"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}) is None
    assert read_password({}) is None


def test_topic_prefix_must_not_hold_wildcards(tmp_path: Path, clean_env: None) -> None:
    for bad in ("moodbox/#", "a/+/b", "/lead", "trail/"):
        with pytest.raises(ConfigError):
            load_config(write_config(tmp_path, f"mqtt:\n  topic_prefix: '{bad}'\n"), environ={})
    config = load_config(write_config(tmp_path, "mqtt:\n  topic_prefix: home/box\n"), environ={})
    assert config.mqtt.topic_prefix == "home/box"


def test_each_enrolled_person_has_a_presence_sensor_added_and_removed_with_enrolment(
    mosquitto: MosquittoBroker,
) -> None:
    from mqtt_broker import poll_until

    from edge.publish.discovery import person_key

    payload = build_discovery(PREFIX, "test", people=["Ada L"], removed=["Bob"])
    sensor = payload["cmps"][person_key("Ada L")]
    assert sensor["p"] == "binary_sensor" and sensor["device_class"] == "presence"
    assert sensor["state_topic"] == TOPIC["presence"].full(PREFIX)
    assert sensor["value_template"] == """{{ 'ON' if "Ada L" in value_json.users else 'OFF' }}"""
    assert payload["cmps"][person_key("Bob")] == {"p": "binary_sensor"}  # HA deletes it
    assert person_key("Ada L") != person_key("ada_l") and OBJECT_ID.match(person_key("Ada L"))

    people = ["alice"]
    topic = discovery_topic("homeassistant", "test")
    recorder = Recorder(mosquitto, topic)
    service, _ = started_service(mosquitto, people=lambda: list(people))
    try:
        first = json.loads(recorder.topic(topic).text)["cmps"]
        assert first[person_key("alice")]["name"] == "alice present"
        n = recorder.count()
        people[:] = ["bob"]  # alice forgotten, bob enrolled (by the CLI, beside the daemon)
        service._next_people_check = 0.0  # the periodic check, now
        assert poll_until(service, lambda: recorder.count() > n)
        again = json.loads(recorder.messages[-1].text)["cmps"]
        assert again[person_key("alice")] == {"p": "binary_sensor"}
        assert again[person_key("bob")]["p"] == "binary_sensor"
    finally:
        recorder.close()
        service.stop()
