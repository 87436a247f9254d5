"""The ``Publisher`` interface and its paho-mqtt 2.x adapter (never blocks the caller).

``MqttPublisher`` connects in paho's own thread (``connect_async`` +
``loop_start``) and reconnects with exponential backoff. Events (QoS ≥ 1, not
retained) go through one bounded queue (the oldest beyond ``queue_limit`` are
dropped and counted), connected or not, and a sender thread hands paho at most
``INFLIGHT_WINDOW`` of them at a time, the next only once the broker has acked
(PUBACK) an earlier one. So when the broker freezes without closing the
connection, only that window sits in paho's hands; paho resends it first after
the reconnect, and the rest follow from our queue: one order, whatever the
outage. The latest payload of each retained topic is kept too; after every
(re)connect it publishes ``online`` and every retained payload again (a
restarted broker may have lost them). The Last Will marks the device
``offline`` if the process dies.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge.config import MoodboxConfig
from edge.errors import ConfigError
from edge.publish.contract import OFFLINE, ONLINE, TOPIC

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

logger = logging.getLogger(__name__)


class MessageHandler(Protocol):
    """Receives each subscribed message; ``retained``: the broker kept it from earlier."""

    def __call__(self, topic: str, payload: bytes, retained: bool = False) -> None: ...


# Where the password is read from (names, not secrets).
PASSWORD_ENV = "MOODBOX_MQTT_PASSWORD"  # noqa: S105
PASSWORD_CREDENTIAL = "mqtt_password"  # noqa: S105
# Events handed to paho and not yet acked. Small, because these are what a silent
# outage leaves in paho's queue; 1 would do, a few keep a slow link busy.
INFLIGHT_WINDOW = 4


@dataclass(frozen=True, slots=True)
class PublisherHealth:
    """Connection state and counters, for the stats topic."""

    connected: bool
    reconnects: int
    queued: int
    dropped: int


class Publisher(Protocol):
    """Publishes MQTT messages without blocking; delivers subscribed messages to a handler."""

    def start(self, on_message: MessageHandler, subscriptions: Sequence[str]) -> None: ...

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 0, retain: bool = False
    ) -> None: ...

    def health(self) -> PublisherHealth: ...

    def stop(self) -> None: ...


def read_password(environ: Mapping[str, str] | None = None) -> str | None:
    """The broker password: $MOODBOX_MQTT_PASSWORD, else $CREDENTIALS_DIRECTORY/mqtt_password."""
    environ = os.environ if environ is None else environ
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / PASSWORD_CREDENTIAL
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the MQTT password: {err.strerror}") from err
    return None


def topic_prefix(config: MoodboxConfig) -> str:
    return config.mqtt.topic_prefix or f"moodbox/{config.general.device_id}"


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything needed to connect, resolved from config and the environment."""

    host: str
    port: int = 1883
    client_id: str = "moodbox"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    queue_limit: int = 1000
    will_topic: str | None = None

    @classmethod
    def from_config(
        cls, config: MoodboxConfig, environ: Mapping[str, str] | None = None
    ) -> BrokerSettings:
        mqtt_config = config.mqtt
        if not mqtt_config.host:
            raise ConfigError("mqtt.host is not set: MQTT is off (set it, or MOODBOX_MQTT_HOST)")
        return cls(
            host=mqtt_config.host,
            port=mqtt_config.port,
            client_id=mqtt_config.client_id or f"moodbox-{config.general.device_id}",
            username=mqtt_config.username,
            password=read_password(environ),
            tls=mqtt_config.tls,
            ca_file=config.resolve(mqtt_config.ca_file) if mqtt_config.ca_file else None,
            keepalive=mqtt_config.keepalive,
            reconnect_min_s=mqtt_config.reconnect_min_s,
            reconnect_max_s=max(mqtt_config.reconnect_max_s, mqtt_config.reconnect_min_s),
            queue_limit=mqtt_config.queue_limit,
            will_topic=TOPIC["available"].full(topic_prefix(config)),
        )


def make_client(settings: BrokerSettings) -> mqtt.Client:
    """A configured (not yet connected) paho client: VERSION2 callbacks, TLS, auth, Last Will."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=str(settings.ca_file) if settings.ca_file else None)
    if settings.will_topic:
        client.will_set(settings.will_topic, OFFLINE, qos=1, retain=True)
    # paho sleeps these (floats work although the annotation says int).
    client.reconnect_delay_set(
        min_delay=settings.reconnect_min_s,  # type: ignore[arg-type]
        max_delay=settings.reconnect_max_s,  # type: ignore[arg-type]
    )
    # Bounds paho's own queue too (messages handed over just before a silent outage), with
    # room for a full flush of ours plus the retained state sent with it after a reconnect.
    client.max_queued_messages_set(2 * settings.queue_limit + 100)
    return client


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class MqttPublisher:
    """``Publisher`` over paho-mqtt 2.x; safe to call from any thread, never blocks on I/O."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self._client = make_client(settings)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        # _lock guards connection state and retained payloads, and is held while calling
        # paho. _window guards the event queue and is never held while calling paho:
        # paho runs on_publish under its own message lock, so holding ours across a
        # paho call there could deadlock.
        self._lock = threading.Lock()
        self._window = threading.Condition()
        self._link_up = False
        self._inflight: set[int] = set()
        self._early_acks: set[int] = set()
        self._sender: threading.Thread | None = None
        self._connected = False
        self._ever_connected = False
        self._reconnects = 0
        self._dropped = 0
        self._queue: deque[_Message] = deque()
        self._retained: dict[str, _Message] = {}
        self._subscriptions: tuple[str, ...] = ()
        self._handler: MessageHandler | None = None
        self._failing_since_logged = False
        self._stopping = False
        self.connected_event = threading.Event()

    # --- Publisher ---

    def start(self, on_message: MessageHandler, subscriptions: Sequence[str] = ()) -> None:
        self._handler = on_message
        self._subscriptions = tuple(subscriptions)
        logger.info(
            "MQTT: connecting to %s:%d as %s%s",
            self.settings.host,
            self.settings.port,
            self.settings.client_id,
            " (TLS)" if self.settings.tls else "",
        )
        # connect_async only records the target; the network thread connects and retries.
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive
        )
        self._sender = threading.Thread(target=self._send_events, name="mqtt-events", daemon=True)
        self._sender.start()
        self._client.loop_start()

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 0, retain: bool = False
    ) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        message = _Message(topic, data, qos, retain)
        if qos > 0 and not retain:
            self._enqueue(message)  # events: in order, through the sender's window
            return
        with self._lock:
            if retain:
                if data:
                    self._retained[topic] = message
                else:  # an empty retained payload deletes the retained message
                    self._retained.pop(topic, None)
            if self._connected:
                self._send(message)
            # Retained messages go out from _retained on connect; QoS 0 ones are best effort.

    def health(self) -> PublisherHealth:
        with self._lock:
            connected, reconnects = self._connected, self._reconnects
        with self._window:
            return PublisherHealth(connected, reconnects, len(self._queue), self._dropped)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (while connected, up to ``timeout_s``), say ``offline``
        (retained), disconnect cleanly, end the network and sender threads."""
        info = None
        with self._window:
            # The last events before a clean stop (a user signing out) should not be lost.
            self._window.wait_for(
                lambda: not self._link_up or not (self._queue or self._inflight), timeout_s
            )
            self._stopping = True
            self._window.notify_all()
        with self._lock:
            connected = self._connected
            if connected and self.settings.will_topic:
                info = self._client.publish(self.settings.will_topic, OFFLINE, qos=1, retain=True)
        if info is not None:
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):
                logger.debug("MQTT: offline message not confirmed before stop")
        self._client.disconnect()
        self._client.loop_stop()
        if self._sender is not None:
            self._sender.join(timeout_s)
        # paho 2.x keeps the socket pair that wakes its loop open until the client is
        # garbage-collected; a stopped publisher should hold no descriptor, so close it.
        reset = getattr(self._client, "_reset_sockets", None)
        if callable(reset):
            reset()
        logger.info("MQTT: stopped")

    # --- internals (the _on_* methods run on paho's network thread) ---

    def _send(self, message: _Message) -> None:
        import paho.mqtt.client as mqtt

        info = self._client.publish(message.topic, message.payload, message.qos, message.retain)
        # MQTT_ERR_NO_CONN needs nothing here: paho keeps QoS ≥ 1 messages and resends them.
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            with self._window:  # the counter the sender thread updates too
                self._dropped += 1

    def _enqueue(self, message: _Message) -> None:
        with self._window:
            if len(self._queue) >= self.settings.queue_limit:
                self._queue.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    logger.warning(
                        "MQTT: outage queue full (%d); dropping the oldest events",
                        self.settings.queue_limit,
                    )
            self._queue.append(message)
            self._window.notify_all()

    def _send_events(self) -> None:
        """Sender thread: the queue's head to paho while the link is up and the window open."""
        while True:
            with self._window:
                while not self._stopping and not (
                    self._link_up and self._queue and len(self._inflight) < INFLIGHT_WINDOW
                ):
                    self._window.wait()
                if self._stopping:
                    return
                message = self._queue.popleft()
            # Once handed over, paho owns it: it keeps a QoS 1 message through a
            # disconnect and resends it, before anything newer, after the reconnect.
            info = self._client.publish(message.topic, message.payload, message.qos)
            with self._window:
                if info.mid in self._early_acks:
                    pass  # acked before we got here: nothing is in flight
                elif info.rc in (0, 4):  # success, or no connection (paho keeps it)
                    self._inflight.add(info.mid)
                else:
                    self._dropped += 1
                # Only our one publish can be between publish() and here; older ids are
                # acks of retained messages, which take no window slot.
                self._early_acks.clear()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _properties: Any
    ) -> None:
        with self._window:
            if mid in self._inflight:
                self._inflight.discard(mid)
                self._window.notify_all()
            else:
                self._early_acks.add(mid)

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        if reason_code.is_failure:
            if not self._failing_since_logged:
                self._failing_since_logged = True
                logger.warning("MQTT: broker refused the connection: %s", reason_code)
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        with self._lock:
            if self.settings.will_topic:
                client.publish(self.settings.will_topic, ONLINE, qos=1, retain=True)
            for message in list(self._retained.values()):
                self._send(message)
            with self._window:
                queued = len(self._queue) + len(self._inflight)
                self._link_up = True
                self._window.notify_all()
            self._connected = True
            if self._ever_connected:
                self._reconnects += 1
                logger.info("MQTT: reconnected; sent %d queued event(s)", queued)
            else:
                logger.info("MQTT: connected to %s:%d", self.settings.host, self.settings.port)
            self._ever_connected = True
            self._failing_since_logged = False
        self.connected_event.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        if not self._failing_since_logged:
            self._failing_since_logged = True
            logger.warning(
                "MQTT: cannot connect to %s:%d (down, unreachable or TLS failed); "
                "retrying with backoff, queueing events",
                self.settings.host,
                self.settings.port,
            )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        with self._lock:
            was_connected = self._connected and not self._stopping
            self._connected = False
        with self._window:
            self._link_up = False
        self.connected_event.clear()
        if was_connected:
            logger.warning(
                "MQTT: connection lost (%s); retrying with backoff, queueing events", reason_code
            )
            self._failing_since_logged = True  # one line per outage, not one per retry

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            handler(message.topic, bytes(message.payload), bool(message.retain))
        except Exception:  # paho's thread must survive any handler bug
            logger.exception("MQTT: handling a message on %s failed", message.topic)
