"""The rooms service: room presence, the household's presence, music handover (README
"Several rooms"); an app ``Service`` and event sink.

It has its own MQTT connection (client id ``<mqtt client id>-rooms``), whose
Last Will marks this box's room report ``offline``, so the household's presence
drops a box that lost power. paho's thread only hands messages over; the frame
loop's ``poll`` reads them, looks at who is in view, and drives the music
controller, so the player is only ever touched from the loop thread, as the
controller requires. Everything it decides is in ``edge.rooms``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from edge.config import MoodboxConfig
from edge.errors import ConfigError
from edge.events import Event, UserForgotten, UserSignedIn, UserSignedOut
from edge.identify.sync import (
    KEY_CREDENTIAL,
    KEY_ENV,
    HouseholdCipher,
    RefusedError,
    read_household_key,
)
from edge.publish.discovery import build_household_discovery, household_discovery_topic
from edge.publish.mqtt import BrokerSettings, make_client
from edge.rooms import (
    OFFLINE_PAYLOAD,
    HandoverBook,
    Offer,
    RoomReport,
    TakeOver,
    decode_room,
    household_presence,
    listening_topic,
    open_offer,
    presence_topic,
    room_topic,
    seal_offer,
)
from edge.stats import Stats

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from edge.music.controller import MusicController

logger = logging.getLogger(__name__)

OFFER_REFRESH_S = 5.0  # while music plays: the listeners' last sightings and the position
PEOPLE_CHECK_S = 2.0  # enrolled people, for the per-person room sensors


class RoomsService:
    """Publishes this room; merges the household's presence; hands music over."""

    def __init__(
        self,
        *,
        device_id: str,
        room: str,
        household_topic: str,
        settings: BrokerSettings,
        in_view: Callable[[], Sequence[str]],
        music: MusicController | None = None,
        cipher: HouseholdCipher | None = None,
        presence: bool = True,
        handover_s: float = 120.0,
        handover_fade_ms: int = 3000,
        people: Callable[[], list[str]] | None = None,
        discovery_prefix: str | None = None,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device_id = device_id
        self.room = room
        self.household_topic = household_topic
        self.settings = settings
        self.presence = presence
        self.handover = music is not None and cipher is not None
        self._music = music
        self._cipher = cipher
        self._in_view = in_view
        self._people = people
        self._discovery_prefix = discovery_prefix
        self._stats = stats
        self._clock = clock
        self._fade_ms = handover_fade_ms
        self.book = HandoverBook(device_id, handover_s)
        self._client = make_client(settings)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._connected = False
        self._present: dict[str, float] = {}  # signed in here → since (wall)
        self._seen_here: dict[str, float] = {}  # last in view here (wall)
        self._view: frozenset[str] = frozenset()
        self._reports: dict[str, RoomReport] = {}
        self._sent_presence: dict[str, Any] | None = None
        self._listeners: dict[str, float] = {}  # seen here while our music played (wall)
        self._took_over: TakeOver | None = None
        self._seq = 0
        self._sent_offer: tuple[Any, ...] | None = None
        self._next_offer = 0.0
        self._announced: list[str] | None = None
        self._next_people = 0.0
        self._room_dirty = True
        self._refused_logged: set[str] = set()

    @classmethod
    def from_config(
        cls,
        config: MoodboxConfig,
        *,
        in_view: Callable[[], Sequence[str]],
        music: MusicController | None,
        people: Callable[[], list[str]] | None,
        stats: Stats | None = None,
    ) -> RoomsService:
        rooms = config.rooms
        if not config.mqtt.host:
            raise ConfigError(
                "rooms.presence or rooms.handover is on but mqtt.host is not set: the "
                "broker is the link between the rooms"
            )
        cipher = None
        if rooms.handover:
            if music is None:
                raise ConfigError("rooms.handover is on but music.enabled is false")
            key = read_household_key()
            if key is None:
                raise ConfigError(
                    f"rooms.handover is on but there is no household key: set ${KEY_ENV} or "
                    f"the systemd credential {KEY_CREDENTIAL} (LoadCredential=), never "
                    "config.yaml"
                )
            cipher = HouseholdCipher(key)
        device_id = config.general.device_id
        base = BrokerSettings.from_config(config)
        settings = dataclasses.replace(
            base,
            client_id=f"{base.client_id[:57]}-rooms",
            will_topic=room_topic(rooms.household_topic, device_id) if rooms.presence else None,
        )
        return cls(
            device_id=device_id,
            room=rooms.room_name(device_id),
            household_topic=rooms.household_topic,
            settings=settings,
            in_view=in_view,
            music=music if rooms.handover else None,
            cipher=cipher,
            presence=rooms.presence,
            handover_s=rooms.handover_s,
            handover_fade_ms=rooms.handover_fade_ms,
            people=people if config.mqtt.discovery and rooms.presence else None,
            discovery_prefix=config.mqtt.discovery_prefix,
            stats=stats,
        )

    # --- Service ---

    def start(self, emit: Callable[[Event], None]) -> None:
        parts = [p for p, on in (("presence", self.presence), ("handover", self.handover)) if on]
        logger.info("rooms: %s as room %r on %s", " and ".join(parts), self.room,
                    self.household_topic)  # fmt: skip
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive
        )
        self._client.loop_start()

    def stop(self) -> None:
        """A box that stops leaves the rooms: offline, and nothing to continue."""
        if self._connected:
            sent = []
            if self.presence:
                topic = room_topic(self.household_topic, self.device_id)
                sent.append(self._publish(topic, OFFLINE_PAYLOAD))
            if self.handover:
                sent.append(self._publish_offer(self._clock(), None))
            for info in sent:
                try:
                    info.wait_for_publish(timeout=1.0)
                except (RuntimeError, ValueError):  # the connection went meanwhile
                    break
        self._client.disconnect()
        self._client.loop_stop()
        reset = getattr(self._client, "_reset_sockets", None)  # see MqttPublisher.stop
        if callable(reset):
            reset()

    def emit(self, event: Event) -> None:
        if isinstance(event, UserSignedIn):
            self._present[event.user] = event.time
            self._room_dirty = True
        elif isinstance(event, UserSignedOut):
            self._room_dirty |= self._present.pop(event.user, None) is not None
        elif isinstance(event, UserForgotten):
            self._present.pop(event.user, None)
            self._seen_here.pop(event.user, None)
            self._listeners.pop(event.user, None)
            self.book.forget(event.user)
            self._room_dirty = True
            self._next_people = 0.0

    def poll(self, now: float) -> None:
        wall = self._clock()
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._handle(kind, value, wall)
        view = frozenset(self._in_view())
        if view != self._view:
            arrived = view - self._view
            self._view = view
            self._room_dirty = True
            self._next_offer = 0.0  # the listeners' sightings changed: say so now
            for user in sorted(arrived):
                self._arrived(user, view, wall)
        for user in view:
            self._seen_here[user] = wall
        if not self._connected:
            return
        if self.presence and self._room_dirty:
            self._room_dirty = False
            self._publish_room(wall)
        if self.handover:
            self._update_offer(wall)
        if self._people is not None and wall >= self._next_people:
            self._next_people = wall + PEOPLE_CHECK_S
            self._announce_people()

    # --- the loop thread ---

    def _handle(self, kind: str, value: Any, wall: float) -> None:
        if kind == "connected":
            self._connected = True
            self._room_dirty = True
            self._sent_offer = None
            self._sent_presence = None
            self._announced = None
            self._next_people = 0.0
        elif kind == "disconnected":
            self._connected = False
        elif kind == "message":
            topic, payload = value
            if topic.startswith(f"{self.household_topic}/rooms/"):
                self._room_message(topic, payload)
            elif topic.startswith(f"{self.household_topic}/listening/"):
                self._offer_message(topic, payload, wall)

    def _room_message(self, topic: str, payload: bytes) -> None:
        try:
            report = decode_room(topic, payload)
        except ValueError as err:
            self._refused("room report", str(err))
            return
        device_id = topic.rsplit("/", 1)[-1]
        if report is None:
            self._reports.pop(device_id, None)
        else:
            self._reports[device_id] = report
        self._publish_presence()

    def _offer_message(self, topic: str, payload: bytes, wall: float) -> None:
        if not payload or topic == listening_topic(self.household_topic, self.device_id):
            return
        assert self._cipher is not None
        try:
            offer = open_offer(self._cipher, topic, payload)
            took = self.book.receive(offer, wall)
        except RefusedError as err:
            self._refused("listening offer", err.reason)
            return
        if took is None:
            return
        self._listeners.pop(took.user, None)
        logger.info("rooms: %s took their music to %s", took.user, offer.origin)
        assert self._music is not None
        if self._music.handover_out(took.user, fade_ms=self._fade_ms):
            self._next_offer = 0.0

    def _arrived(self, user: str, view: frozenset[str], wall: float) -> None:
        """``user`` came into view here: bring their music from the room they left?"""
        if not self.handover:
            return
        assert self._music is not None
        if view - {user}:
            # Someone else is here too: the music here is theirs as much; it stays.
            return
        offer = self.book.candidate(user, self._seen_here.get(user), wall)
        if offer is None:
            return
        position = offer.position_at(wall)
        track = self._music.handover_in(offer.track, position, user)
        if track is None:
            return
        logger.info("rooms: %s came from %s; their music continues here", user, offer.origin)
        if self._stats is not None:
            self._stats.count("handovers")
        self._took_over = TakeOver(offer.origin, user, wall)
        self._listeners[user] = wall
        self._next_offer = 0.0

    def _update_offer(self, wall: float) -> None:
        assert self._music is not None
        listening = self._music.listening()  # once a poll: it asks the player where it is
        if listening is not None:
            for user in self._view:
                self._listeners[user] = wall
            horizon = wall - self.book.handover_s
            self._listeners = {u: t for u, t in self._listeners.items() if t >= horizon}
        else:
            self._listeners = {}
        shape = (
            None if listening is None else listening["track"],
            tuple(sorted(self._listeners)),
            self._took_over,
        )
        if shape != self._sent_offer or (listening is not None and wall >= self._next_offer):
            self._publish_offer(wall, listening)

    def _publish_offer(self, wall: float, listening: dict[str, Any] | None) -> mqtt.MQTTMessageInfo:
        """Seal and publish what plays here (``listening`` None: nothing to continue)."""
        assert self._cipher is not None
        self._seq = max(self._seq + 1, int(wall * 1000))  # grows across restarts too
        offer = Offer(
            origin=self.device_id,
            seq=self._seq,
            time=wall,
            track=None if listening is None else listening["track"],
            position_s=None if listening is None else listening["position_s"],
            mood=None if listening is None else listening["mood"],
            listeners=dict(self._listeners) if listening is not None else {},
            took_over=self._took_over,
        )
        topic = listening_topic(self.household_topic, self.device_id)
        info = self._publish(topic, seal_offer(self._cipher, topic, offer))
        self._sent_offer = (offer.track, tuple(sorted(offer.listeners)), self._took_over)
        self._next_offer = wall + OFFER_REFRESH_S
        return info

    def _publish_room(self, wall: float) -> None:
        report = RoomReport(
            self.device_id,
            self.room,
            present=dict(self._present),
            in_view=frozenset(u for u in self._view if u in self._present),
            time=wall,
        )
        self._reports[self.device_id] = report
        self._publish(room_topic(self.household_topic, self.device_id), report.encode())
        self._publish_presence()

    def _publish_presence(self) -> None:
        if not self.presence or not self._connected:
            return
        presence = household_presence(self._reports)
        if presence == self._sent_presence:
            return
        self._sent_presence = presence
        self._publish(
            presence_topic(self.household_topic),
            json.dumps(presence, separators=(",", ":")).encode(),
        )

    def _announce_people(self) -> None:
        assert self._people is not None and self._discovery_prefix is not None
        try:
            people = sorted(self._people())
        except Exception:  # a store hiccup: try again at the next check
            logger.exception("rooms: cannot read the enrolled people")
            return
        if people == self._announced:
            return
        removed = sorted(set(self._announced or ()) - set(people))
        self._announced = people
        payload = build_household_discovery(
            presence_topic(self.household_topic), people=people, removed=removed
        )
        self._publish(
            household_discovery_topic(self._discovery_prefix),
            json.dumps(payload, separators=(",", ":")).encode(),
        )

    def _publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=1, retain=True)

    def _refused(self, what: str, reason: str) -> None:
        if self._stats is not None:
            self._stats.count("rooms_refused")
        level = logging.DEBUG if reason in self._refused_logged else logging.WARNING
        self._refused_logged.add(reason)
        logger.log(level, "rooms: refused a %s: %s", what, reason)

    # --- paho's network thread: only hands over ---

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("rooms: broker refused the connection: %s", reason)
            return
        subscriptions = []
        if self.presence:
            subscriptions.append((f"{self.household_topic}/rooms/+", 1))
        if self.handover:
            subscriptions.append((f"{self.household_topic}/listening/+", 1))
        if subscriptions:
            client.subscribe(subscriptions)
        self._inbox.put(("connected", None))

    def _on_disconnect(self, *_args: Any) -> None:
        self._inbox.put(("disconnected", None))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(("message", (message.topic, bytes(message.payload))))
