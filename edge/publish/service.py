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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from edge import __version__
from edge.config import MoodboxConfig
from edge.control import COMMANDS, CommandDispatcher, Controls, RemoteControls
from edge.errors import ConfigError
from edge.events import Event
from edge.publish.authority import KEY_CREDENTIAL, KEY_ENV, CommandAuthority, read_command_key
from edge.publish.contract import EVENT_TYPES, NO_MOOD, ONLINE, TOPIC
from edge.publish.discovery import birth_topic, build_discovery, discovery_topic
from edge.publish.mqtt import BrokerSettings, MqttPublisher, Publisher, topic_prefix
from edge.stats import Stats

logger = logging.getLogger(__name__)

CPU_TEMP_FILE = Path("/sys/class/thermal/thermal_zone0/temp")
_PLAYER_FIELDS = ("state", "title", "artist", "mood", "user")


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def read_cpu_temp(path: Path = CPU_TEMP_FILE) -> float | None:
    """CPU temperature in °C from the kernel's thermal zone (millidegrees), None if unreadable."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


class HouseholdState:
    """Pure bookkeeping: event dicts in, retained state payloads (topic key → text) out."""

    def __init__(self) -> None:
        self._faces: dict[int, dict[str, Any]] = {}  # track id → latest mood_changed, in order
        self._present: dict[str, str] = {}  # user → sign-in time, in sign-in order

    def initial(self) -> dict[str, str]:
        return {**self._mood(), **self._presence()}

    def apply(self, event: dict[str, Any]) -> dict[str, str]:
        handler = self._HANDLERS.get(str(event.get("type")))
        return handler(self, event) if handler else {}

    def _on_mood_changed(self, event: dict[str, Any]) -> dict[str, str]:
        track_id = int(event["track_id"])
        self._faces.pop(track_id, None)  # re-insert: the latest change comes last
        self._faces[track_id] = event
        return self._mood()

    def _on_face_lost(self, event: dict[str, Any]) -> dict[str, str]:
        if self._faces.pop(int(event["track_id"]), None) is None:
            return {}
        return self._mood()

    def _on_signed_in(self, event: dict[str, Any]) -> dict[str, str]:
        user = str(event["user"])
        self._present.pop(user, None)
        self._present[user] = str(event.get("time"))
        return self._presence()

    def _on_signed_out(self, event: dict[str, Any]) -> dict[str, str]:
        if self._present.pop(str(event["user"]), None) is None:
            return {}
        return self._presence()

    def _on_forgotten(self, event: dict[str, Any]) -> dict[str, str]:
        """A forgotten user leaves presence and every face's mood attributes."""
        user = str(event["user"])
        self._present.pop(user, None)
        for track_id, face in list(self._faces.items()):
            if face.get("user") == user:
                self._faces[track_id] = {**face, "user": None}
        return {**self._mood(), **self._presence()}

    def _on_player(self, event: dict[str, Any]) -> dict[str, str]:
        return player_payloads(event)

    def _on_track_started(self, event: dict[str, Any]) -> dict[str, str]:
        return player_payloads({**event, "state": "playing"})

    _HANDLERS: ClassVar[dict[str, Callable[[HouseholdState, dict[str, Any]], dict[str, str]]]] = {
        "mood_changed": _on_mood_changed,
        "face_lost": _on_face_lost,
        "user_signed_in": _on_signed_in,
        "user_signed_out": _on_signed_out,
        "user_forgotten": _on_forgotten,
        "player_state": _on_player,
        "track_started": _on_track_started,
    }

    def _mood(self) -> dict[str, str]:
        if not self._faces:
            attributes: dict[str, Any] = {
                "mood": NO_MOOD,
                "probabilities": {},
                "user": None,
                "track_id": None,
                "faces": 0,
                "time": None,
            }
        else:
            latest = next(reversed(self._faces.values()))
            attributes = {
                "mood": latest["mood"],
                "probabilities": latest.get("probabilities", {}),
                "user": latest.get("user"),
                "track_id": latest["track_id"],
                "faces": len(self._faces),
                "time": latest.get("time"),
            }
        return {"mood": str(attributes["mood"]), "mood/attributes": _json(attributes)}

    def _presence(self) -> dict[str, str]:
        users = sorted(self._present)
        latest = next(reversed(self._present)) if self._present else None
        return {"presence": _json({"users": users, "user": latest, "count": len(users)})}


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
        stats: Stats | None = None,
        stats_interval_s: float = 30.0,
        command_max_bytes: int = 1024,
        authority: CommandAuthority | None = None,
        discovery_min_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_temp: Callable[[], float | None] = read_cpu_temp,
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
        self.household = HouseholdState()
        self.discovery_min_interval_s = discovery_min_interval_s
        self.discovery_suppressed = 0
        self._last_birth_discovery = float("-inf")
        self._cleared_logged: set[str] = set()
        self._clearing: set[str] = set()  # command topics whose retained message we deleted
        self._clock = clock
        self._cpu_temp = cpu_temp
        self._next_stats = 0.0
        self._last: dict[str, str] = {}

    @classmethod
    def from_config(
        cls,
        config: MoodboxConfig,
        *,
        stats: Stats | None = None,
        controls: Controls | None = None,
        publisher: Publisher | None = None,
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
            stats=stats,
            stats_interval_s=mqtt_config.stats_interval_s,
            command_max_bytes=mqtt_config.command_max_bytes,
            authority=authority,
            discovery_min_interval_s=mqtt_config.discovery_min_interval_s,
        )

    # --- Service ---

    def start(self, emit: Callable[[Event], None]) -> None:
        subscriptions = [f"{self.prefix}/+/set"]
        if self.discovery_prefix:
            subscriptions.append(birth_topic(self.discovery_prefix))
        self.publisher.start(self._on_message, subscriptions)
        self.publish_discovery()
        for key, payload in self.household.initial().items():
            self._state(key, payload)
        self._refresh_control_state()
        self._next_stats = self._clock()

    def emit(self, event: Event) -> None:
        data = event.to_dict()
        if data["type"] in EVENT_TYPES:
            self.publisher.publish(
                TOPIC["events"].full(self.prefix),
                _json({"type": data["type"], "event_type": data["type"], **data}),
                qos=TOPIC["events"].qos,
            )
        for key, payload in self.household.apply(data).items():
            self._state(key, payload)

    def poll(self, now: float) -> None:
        if self.dispatcher.run_pending():
            self._refresh_control_state()
        if self._clock() >= self._next_stats:
            self._next_stats = self._clock() + self.stats_interval_s
            self.publish_stats()

    def stop(self) -> None:
        self.publisher.stop()

    # --- helpers ---

    def publish_discovery(self) -> None:
        if not self.discovery_prefix:
            return
        payload = build_discovery(self.prefix, self.device_id)
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
