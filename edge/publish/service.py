"""The MQTT service: events to state and event topics, stats, discovery, remote commands.

It is an app ``Service`` (start / poll / stop, plus ``emit`` for every event).
``emit`` and ``poll`` run on the frame loop's thread and only hand messages to
the non-blocking ``Publisher``; commands arrive on the network thread, are
validated and queued there, and run in ``poll``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge import __version__
from edge.config import MoodboxConfig
from edge.control import COMMANDS, CommandDispatcher, Controls, RemoteControls
from edge.errors import ConfigError
from edge.events import (
    Event,
    FaceLost,
    MoodChanged,
    PlayerState,
    StatusChanged,
    TrackStarted,
    UserForgotten,
    UserSignedIn,
    UserSignedOut,
    iso_time,
)
from edge.household import Aspect, Household
from edge.publish.authority import KEY_CREDENTIAL, KEY_ENV, CommandAuthority, read_command_key
from edge.publish.contract import EVENT_TYPES, NO_MOOD, ONLINE, TOPIC
from edge.publish.discovery import birth_topic, build_discovery, discovery_topic
from edge.publish.mqtt import BrokerSettings, MqttPublisher, Publisher, topic_prefix
from edge.stats import Stats

logger = logging.getLogger(__name__)

CPU_TEMP_FILE = Path("/sys/class/thermal/thermal_zone0/temp")
_PLAYER_FIELDS = ("state", "title", "artist", "mood", "user")
PEOPLE_CHECK_S = 5.0


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def read_cpu_temp(path: Path = CPU_TEMP_FILE) -> float | None:
    """CPU temperature in °C from the kernel's thermal zone (millidegrees), None if unreadable."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def mood_payloads(household: Household) -> dict[str, str]:
    """The retained mood topics: the household mood and its attributes."""
    latest = household.mood
    attributes: dict[str, Any] = {
        "mood": latest.mood if latest else NO_MOOD,
        "probabilities": latest.probabilities if latest else {},
        "user": latest.user if latest else None,
        "face_id": latest.face_id if latest else None,
        # The old name of face_id, kept for one release for existing HA templates.
        "track_id": latest.face_id if latest else None,
        "faces": len(household.faces),
        "time": iso_time(latest.time) if latest else None,
    }
    return {"mood": str(attributes["mood"]), "mood/attributes": _json(attributes)}


def presence_payloads(household: Household) -> dict[str, str]:
    """The retained presence topic: who is signed in."""
    users = household.present
    payload = {"users": users, "user": household.latest_arrival, "count": len(users)}
    return {"presence": _json(payload)}


def household_payloads(household: Household, aspects: Iterable[Aspect]) -> dict[str, str]:
    """The retained state payloads for the given parts of the household."""
    out: dict[str, str] = {}
    for aspect in aspects:
        if aspect == "faces":
            out.update(mood_payloads(household))
        elif aspect == "presence":
            out.update(presence_payloads(household))
        else:
            out.update(player_payloads(asdict(household.player)))
    return out


# Which retained topics an event can change (the household has applied it already).
_ASPECTS: dict[type[Event], tuple[Aspect, ...]] = {
    MoodChanged: ("faces",),
    FaceLost: ("faces",),
    UserSignedIn: ("presence",),
    UserSignedOut: ("presence",),
    UserForgotten: ("faces", "presence"),
    PlayerState: ("player",),
    TrackStarted: ("player",),
}


def player_payloads(state: dict[str, Any]) -> dict[str, str]:
    """State payloads from a player_state event or the music controller's ``state()``."""
    out: dict[str, str] = {}
    if "state" in state:
        out["player"] = _json({key: state.get(key) for key in _PLAYER_FIELDS})
    volume = state.get("volume")
    if isinstance(volume, int | float) and not isinstance(volume, bool):
        out["volume"] = str(round(volume))
    if isinstance(state.get("auto"), bool):
        out["auto"] = "ON" if state["auto"] else "OFF"
    if "mood_override" in state:
        out["mood_override"] = str(state["mood_override"] or "auto")
    return out


def stats_payload(
    stats: Stats,
    *,
    reconnects: int,
    queued_events: int,
    dropped_events: int,
    invalid_commands: int,
    cpu_temp_c: float | None,
    retained_commands: int = 0,
    unauthorized_commands: int = 0,
    rate_limited_commands: int = 0,
    discovery_suppressed: int = 0,
) -> dict[str, Any]:
    stage_ms = {stage: round(ms, 2) for stage, ms in stats.stage_ms.items()}
    return {
        "fps": round(stats.fps, 2),
        "stage_ms": stage_ms,
        "inference_ms": round(sum(stats.stage_ms.values()), 2),
        "cpu_temp_c": cpu_temp_c,
        "uptime_s": round(stats.uptime_s(), 1),
        "version": __version__,
        "frames": stats.counters.get("frames", 0),
        "dropped_frames": stats.counters.get("dropped_frames", 0),
        "camera_errors": stats.counters.get("camera_errors", 0),
        "reconnects": reconnects,
        "queued_events": queued_events,
        "dropped_events": dropped_events,
        "invalid_commands": invalid_commands,
        "retained_commands": retained_commands,
        "unauthorized_commands": unauthorized_commands,
        "rate_limited_commands": rate_limited_commands,
        "discovery_suppressed": discovery_suppressed,
        "sync_refused": stats.counters.get("sync_refused", 0),
        "rooms_refused": stats.counters.get("rooms_refused", 0),
        "handovers": stats.counters.get("handovers", 0),
    }


class MqttService:
    """Publishes the MQTT contract and runs remote commands (see ``edge.publish.contract``)."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        prefix: str,
        device_id: str,
        discovery_prefix: str | None = "homeassistant",
        controls: Controls | None = None,
        household: Household | None = None,
        stats: Stats | None = None,
        stats_interval_s: float = 30.0,
        command_max_bytes: int = 1024,
        authority: CommandAuthority | None = None,
        discovery_min_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_temp: Callable[[], float | None] = read_cpu_temp,
        people: Callable[[], list[str]] | None = None,
    ) -> None:
        self.publisher = publisher
        self.prefix = prefix
        self.device_id = device_id
        self.discovery_prefix = discovery_prefix
        self.controls: Controls = controls or RemoteControls()
        self.stats = stats or Stats()
        self.stats_interval_s = stats_interval_s
        self.dispatcher = CommandDispatcher(
            self.controls, max_bytes=command_max_bytes, authority=authority, clock=clock
        )
        # A household given by the app is kept by the app (it applies each event before
        # the sinks); a standalone service (tools, tests) keeps and feeds its own.
        self._own_household = household is None
        self.household = household or Household()
        self.discovery_min_interval_s = discovery_min_interval_s
        self.discovery_suppressed = 0
        self._last_birth_discovery = float("-inf")
        self._cleared_logged: set[str] = set()
        self._clearing: set[str] = set()  # command topics whose retained message we deleted
        self._clock = clock
        self._cpu_temp = cpu_temp
        self._next_stats = 0.0
        self._last: dict[str, str] = {}
        # Enrolled people, for their presence sensors: read at start, after an enrolment
        # and every PEOPLE_CHECK_S (the CLI may enrol or forget beside the daemon).
        self._people = people
        self._announced: list[str] = []
        self._next_people_check = 0.0

    @classmethod
    def from_config(
        cls,
        config: MoodboxConfig,
        *,
        stats: Stats | None = None,
        controls: Controls | None = None,
        household: Household | None = None,
        publisher: Publisher | None = None,
        people: Callable[[], list[str]] | None = None,
    ) -> MqttService:
        mqtt_config = config.mqtt
        authority = None
        if mqtt_config.identity_commands:
            key = read_command_key()
            if key is None:
                raise ConfigError(
                    "mqtt.identity_commands is on but there is no command key: set "
                    f"${KEY_ENV} or the systemd credential {KEY_CREDENTIAL} "
                    "(LoadCredential=), never config.yaml"
                )
            authority = CommandAuthority(
                key, topic_prefix(config), window_s=mqtt_config.command_window_s
            )
        return cls(
            publisher=publisher or MqttPublisher(BrokerSettings.from_config(config)),
            prefix=topic_prefix(config),
            device_id=config.general.device_id,
            discovery_prefix=mqtt_config.discovery_prefix if mqtt_config.discovery else None,
            controls=controls,
            household=household,
            stats=stats,
            stats_interval_s=mqtt_config.stats_interval_s,
            command_max_bytes=mqtt_config.command_max_bytes,
            authority=authority,
            discovery_min_interval_s=mqtt_config.discovery_min_interval_s,
            people=people,
        )

    # --- Service ---

    def start(self, emit: Callable[[Event], None]) -> None:
        subscriptions = [f"{self.prefix}/+/set"]
        if self.discovery_prefix:
            subscriptions.append(birth_topic(self.discovery_prefix))
        self.publisher.start(self._on_message, subscriptions)
        self._announced = self._read_people()
        self._next_people_check = self._clock() + PEOPLE_CHECK_S
        self.publish_discovery()
        for key, payload in household_payloads(self.household, ("faces", "presence")).items():
            self._state(key, payload)
        self._refresh_control_state()
        self._next_stats = self._clock()

    def emit(self, event: Event) -> None:
        """Publish the event (if it is in the contract) and the state it changed."""
        if event.type in EVENT_TYPES:
            data = event.to_dict()
            self.publisher.publish(
                TOPIC["events"].full(self.prefix),
                _json({"type": event.type, "event_type": event.type, **data}),
                qos=TOPIC["events"].qos,
            )
        if isinstance(event, StatusChanged) and event.component == "enrolment" and event.ok:
            self._next_people_check = 0.0  # a new person: their sensor goes out on this poll
        if self._own_household:
            self.household.apply(event)
        aspects = _ASPECTS.get(type(event), ())
        for key, payload in household_payloads(self.household, aspects).items():
            self._state(key, payload)

    def poll(self, now: float) -> None:
        if self.dispatcher.run_pending():
            self._refresh_control_state()
            self._next_people_check = 0.0  # an enrol or forget command may have run
        if self._people is not None and self._clock() >= self._next_people_check:
            self._next_people_check = self._clock() + PEOPLE_CHECK_S
            people = self._read_people()
            if people != self._announced:
                removed = sorted(set(self._announced) - set(people))
                self._announced = people
                self.publish_discovery(removed=removed)
        if self._clock() >= self._next_stats:
            self._next_stats = self._clock() + self.stats_interval_s
            self.publish_stats()

    def stop(self) -> None:
        """Leave the retained state of a box that is off, then say ``offline``.

        Retained topics outlive the process: without this a stopped box would go on
        showing someone present and a track playing. Nobody is present, no face is in
        view and the player is stopped; the publisher sends ``offline`` after them.
        """
        stopped = Household()
        for key, payload in household_payloads(stopped, ("faces", "presence", "player")).items():
            self._state(key, payload)
        self.publisher.stop()

    # --- helpers ---

    def _read_people(self) -> list[str]:
        if self._people is None:
            return []
        try:
            return sorted(self._people())
        except Exception:  # a store error must not stop publishing
            logger.exception("reading the enrolled people failed")
            return self._announced

    def publish_discovery(self, removed: list[str] | None = None) -> None:
        if not self.discovery_prefix:
            return
        payload = build_discovery(
            self.prefix, self.device_id, people=self._announced, removed=removed or ()
        )
        self.publisher.publish(
            discovery_topic(self.discovery_prefix, self.device_id),
            _json(payload),
            qos=1,
            retain=True,
        )

    def publish_stats(self) -> None:
        health = self.publisher.health()
        payload = stats_payload(
            self.stats,
            reconnects=health.reconnects,
            queued_events=health.queued,
            dropped_events=health.dropped,
            invalid_commands=self.dispatcher.invalid,
            cpu_temp_c=self._cpu_temp(),
            retained_commands=self.dispatcher.retained,
            unauthorized_commands=self.dispatcher.unauthorized,
            rate_limited_commands=self.dispatcher.rate_limited,
            discovery_suppressed=self.discovery_suppressed,
        )
        topic = TOPIC["stats"]
        self.publisher.publish(topic.full(self.prefix), _json(payload), qos=topic.qos)

    def _state(self, key: str, payload: str) -> None:
        """Publish a retained state topic when its payload changed."""
        if self._last.get(key) == payload:
            return
        self._last[key] = payload
        topic = TOPIC[key]
        self.publisher.publish(topic.full(self.prefix), payload, qos=topic.qos, retain=True)

    def _refresh_control_state(self) -> None:
        try:
            state = self.controls.state()
        except Exception:  # the music controller's bug must not stop publishing
            logger.exception("reading the player state failed")
            return
        for key, payload in player_payloads(state).items():
            self._state(key, payload)

    def _on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Network thread: Home Assistant's birth message, or a command to validate and queue."""
        if self.discovery_prefix and topic == birth_topic(self.discovery_prefix):
            if payload.strip() == ONLINE.encode():
                self._on_birth()
            return
        head = self.prefix + "/"
        if not (topic.startswith(head) and topic.endswith("/set")):
            return
        if not payload and topic in self._clearing:
            self._clearing.discard(topic)  # our own deletion of a retained command, echoed back
            return
        name = topic[len(head) : -len("/set")]
        if retained:
            self._clear_retained(topic, name)
        self.dispatcher.submit(name, payload, retained=retained)

    def _on_birth(self) -> None:
        """Discovery again when Home Assistant starts, at most once per interval.

        Any client can publish a 6-byte ``online``; each would otherwise cost a
        4.5 KB retained publish and a log line.
        """
        now = self._clock()
        if now - self._last_birth_discovery < self.discovery_min_interval_s:
            self.discovery_suppressed += 1
            return
        self._last_birth_discovery = now
        logger.info("Home Assistant is online: sending discovery again")
        self.publish_discovery()

    def _clear_retained(self, topic: str, name: str) -> None:
        """Delete a retained command from the broker, so it stops coming back (logged once)."""
        label = name if name in COMMANDS else "unknown"
        if label != "unknown":
            self._clearing.add(topic)
        self.publisher.publish(topic, b"", qos=1, retain=True)
        if label not in self._cleared_logged:
            self._cleared_logged.add(label)
            logger.warning(
                "ignored and cleared a retained command on %s: commands are never taken "
                "from retained messages (further ones are not logged)",
                topic,
            )
