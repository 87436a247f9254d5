"""Home Assistant MQTT device discovery: one retained ``<discovery>/device/<id>/config``.

The payload (``dev``, ``o``, ``cmps``) describes every entity of this moodbox
at once. Home Assistant's MQTT integration has no media_player platform, so
the player is buttons (play, pause, next, like), a select (mood override), a
number (volume) and a switch (auto); each enrolled person has a presence
``binary_sensor``, added and removed with enrolment. An empty retained payload
on the same topic removes the device (``moodbox ha-remove``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge import __version__
from edge.classify import EMOTIONS
from edge.publish.contract import EVENT_TYPES, NO_MOOD, OFFLINE, ONLINE, TOPIC

MOOD_OPTIONS: tuple[str, ...] = (*EMOTIONS, NO_MOOD)
OVERRIDE_OPTIONS: tuple[str, ...] = ("auto", *EMOTIONS)


def node_id(device_id: str) -> str:
    """The discovery node id: ``moodbox_<device_id>`` (kept short when it already says so)."""
    return device_id if device_id.startswith("moodbox") else f"moodbox_{device_id}"


def discovery_topic(discovery_prefix: str, device_id: str) -> str:
    return f"{discovery_prefix}/device/{node_id(device_id)}/config"


def birth_topic(discovery_prefix: str) -> str:
    """Home Assistant publishes ``online`` here when it (re)starts."""
    return f"{discovery_prefix}/status"


@dataclass(frozen=True, slots=True)
class Entity:
    """One Home Assistant entity of the device: its platform and discovery options."""

    key: str
    platform: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)  # option → contract topic key


def _diagnostic(key: str, name: str, template: str, **options: Any) -> Entity:
    return Entity(
        key,
        "sensor",
        name,
        {
            "entity_category": "diagnostic",
            "state_class": "measurement",
            "value_template": template,
            **options,
        },
        {"state_topic": "stats"},
    )


def _button(action: str, icon: str) -> Entity:
    return Entity(
        action.lower(),
        "button",
        action.capitalize(),
        {"payload_press": action, "icon": icon},
        {"command_topic": "player/set"},
    )


ENTITIES: tuple[Entity, ...] = (
    Entity(
        "mood",
        "sensor",
        "Mood",
        {"device_class": "enum", "options": list(MOOD_OPTIONS), "icon": "mdi:emoticon-outline"},
        {"state_topic": "mood", "json_attributes_topic": "mood/attributes"},
    ),
    Entity(
        "user",
        "sensor",
        "Current user",
        {"value_template": "{{ value_json.user or 'none' }}", "icon": "mdi:account"},
        {"state_topic": "presence", "json_attributes_topic": "presence"},
    ),
    Entity(
        "now_playing",
        "sensor",
        "Now playing",
        {
            "value_template": "{{ ((value_json.title or '') ~ (' – ' ~ value_json.artist "
            "if value_json.artist else ''))[:250] if value_json.title else 'nothing' }}",
            "icon": "mdi:music",
        },
        {"state_topic": "player", "json_attributes_topic": "player"},
    ),
    Entity(
        "player_state",
        "sensor",
        "Player",
        {"value_template": "{{ value_json.state or 'unknown' }}", "icon": "mdi:speaker"},
        {"state_topic": "player"},
    ),
    _diagnostic("fps", "Frame rate", "{{ value_json.fps }}", unit_of_measurement="fps"),
    _diagnostic(
        "inference_ms",
        "Inference time",
        "{{ value_json.inference_ms }}",
        unit_of_measurement="ms",
        device_class="duration",
    ),
    _diagnostic(
        "cpu_temp",
        "CPU temperature",
        "{{ value_json.cpu_temp_c }}",
        unit_of_measurement="°C",
        device_class="temperature",
    ),
    _diagnostic(
        "uptime",
        "Uptime",
        "{{ value_json.uptime_s | round(0) }}",
        unit_of_measurement="s",
        device_class="duration",
    ),
    # Counters since the start: they only grow (a restart begins again at 0, which
    # Home Assistant's total_increasing reads as a reset, not as a drop).
    _diagnostic(
        "dropped_events",
        "Dropped events",
        "{{ value_json.dropped_events }}",
        state_class="total_increasing",
    ),
    _diagnostic(
        "reconnects",
        "Broker reconnects",
        "{{ value_json.reconnects }}",
        state_class="total_increasing",
    ),
    _button("PLAY", "mdi:play"),
    _button("PAUSE", "mdi:pause"),
    _button("NEXT", "mdi:skip-next"),
    _button("LIKE", "mdi:thumb-up"),
    Entity(
        "mood_override",
        "select",
        "Mood override",
        {"options": list(OVERRIDE_OPTIONS), "icon": "mdi:emoticon-cool-outline"},
        {"command_topic": "mood_override/set", "state_topic": "mood_override"},
    ),
    Entity(
        "volume",
        "number",
        "Volume",
        {"min": 0, "max": 100, "step": 1, "mode": "slider", "unit_of_measurement": "%"},
        {"command_topic": "volume/set", "state_topic": "volume"},
    ),
    Entity(
        "auto",
        "switch",
        "Follow the mood",
        {"payload_on": "ON", "payload_off": "OFF", "icon": "mdi:robot-happy-outline"},
        {"command_topic": "auto/set", "state_topic": "auto"},
    ),
    Entity(
        "event",
        "event",
        "Event",
        {"event_types": list(EVENT_TYPES), "icon": "mdi:bell-ring-outline"},
        {"state_topic": "events"},
    ),
)


def person_key(person: str) -> str:
    """The component key of ``person``'s presence sensor: readable, and distinct for names
    that differ only in case or punctuation (a short hash of the exact name)."""
    slug = re.sub(r"[^a-z0-9]+", "_", person.lower()).strip("_")[:24] or "person"
    return f"present_{slug}_{hashlib.sha256(person.encode()).hexdigest()[:6]}"


def presence_component(prefix: str, base_id: str, person: str) -> dict[str, Any]:
    """A ``binary_sensor`` (device_class presence) that is on while ``person`` is signed in."""
    key = person_key(person)
    return {
        "p": "binary_sensor",
        "name": f"{person} present",
        "unique_id": f"{base_id}_{key}",
        "device_class": "presence",
        "state_topic": TOPIC["presence"].full(prefix),
        # The name as a JSON string is a valid Jinja string literal, whatever it holds.
        "value_template": "{{ 'ON' if " + json.dumps(person) + " in value_json.users else 'OFF' }}",
    }


def build_discovery(
    prefix: str,
    device_id: str,
    *,
    name: str | None = None,
    version: str = __version__,
    people: Sequence[str] = (),
    removed: Sequence[str] = (),
) -> dict[str, Any]:
    """The device discovery payload for the topics under ``prefix``.

    ``people``: the enrolled people, one presence sensor each; ``removed``: people
    forgotten (or renamed) since the last payload, whose sensors Home Assistant
    deletes when their component comes with its platform alone.
    """
    base_id = node_id(device_id)
    components: dict[str, dict[str, Any]] = {}
    for entity in ENTITIES:
        component: dict[str, Any] = {
            "p": entity.platform,
            "name": entity.name,
            "unique_id": f"{base_id}_{entity.key}",
            **entity.options,
        }
        for option, topic_key in entity.topics.items():
            component[option] = TOPIC[topic_key].full(prefix)
        components[entity.key] = component
    for person in removed:
        components[person_key(person)] = {"p": "binary_sensor"}
    for person in people:
        components[person_key(person)] = presence_component(prefix, base_id, person)
    return {
        "dev": {
            "ids": [base_id],
            "name": name or ("moodbox" if device_id == "moodbox" else f"moodbox {device_id}"),
            "mf": "moodbox",
            "mdl": "moodbox mood-aware speaker",
            "sw": version,
        },
        "o": {"name": "moodbox", "sw": version},
        "availability": [
            {
                "topic": TOPIC["available"].full(prefix),
                "payload_available": ONLINE,
                "payload_not_available": OFFLINE,
            }
        ],
        "qos": 1,
        "cmps": components,
    }


HOUSEHOLD_NODE = "moodbox_household"


def household_discovery_topic(discovery_prefix: str) -> str:
    """One device for the household, the same payload from every box that publishes it."""
    return f"{discovery_prefix}/device/{HOUSEHOLD_NODE}/config"


def room_key(person: str) -> str:
    return person_key(person).replace("present_", "room_", 1)


def build_household_discovery(
    presence_topic: str,
    *,
    version: str = __version__,
    people: Sequence[str] = (),
    removed: Sequence[str] = (),
) -> dict[str, Any]:
    """A ``sensor`` per enrolled person whose state is their room ("away": in none).

    Every box of the household publishes it (rooms.presence), so it does not
    depend on one box being on; with the people sync their payloads are equal.
    No availability: the household is there while any box is.
    """
    components: dict[str, dict[str, Any]] = {}
    for person in removed:
        components[room_key(person)] = {"p": "sensor"}
    for person in people:
        name = json.dumps(person)  # a JSON string is a valid Jinja string literal
        components[room_key(person)] = {
            "p": "sensor",
            "name": f"{person} room",
            "unique_id": f"{HOUSEHOLD_NODE}_{room_key(person)}",
            "icon": "mdi:home-account",
            "state_topic": presence_topic,
            "value_template": "{{ value_json.people[" + name + "].room if " + name
            + " in value_json.people else 'away' }}",
        }  # fmt: skip
    return {
        "dev": {
            "ids": [HOUSEHOLD_NODE],
            "name": "moodbox household",
            "mf": "moodbox",
            "mdl": "moodbox rooms",
            "sw": version,
        },
        "o": {"name": "moodbox", "sw": version},
        "qos": 1,
        "cmps": components,
    }
