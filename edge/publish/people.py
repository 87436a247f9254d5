"""The people-sync service: the household's retained people topics, on a thread of its own.

An app ``Service`` (``rooms.sync: true``). It has its own MQTT connection
(client id ``<mqtt client id>-people``, no Last Will), so the state publisher's
replay of its retained topics after a reconnect can never put an old person back
on the broker, and its own connection to the user store, so what it writes is
picked up by the identity stage like a `moodbox enroll` run beside the daemon.
Its thread, not the frame loop, decrypts, writes the store and publishes: a
forget's VACUUM never costs a frame.

After each (re)connect it first listens to the retained messages (until
``SETTLE_S`` passes without one) and only then shares its own changes and puts
back what the broker lacks, so a box that was away learns the household's newer
versions before it offers its older ones.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.config import MoodboxConfig
from edge.errors import ConfigError
from edge.events import Event
from edge.identify.store import UserStore
from edge.identify.sync import (
    KEY_CREDENTIAL,
    KEY_ENV,
    HouseholdCipher,
    Outgoing,
    PeopleReplica,
    read_household_key,
)
from edge.publish.mqtt import BrokerSettings, make_client
from edge.stats import Stats

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

logger = logging.getLogger(__name__)

SETTLE_S = 0.5  # quiet after the subscription before the broker's retained set counts as read
TICK_S = 0.2  # how often local changes are looked for


class PeopleSyncService:
    """Keeps this box's enrolled people in step with the household's broker."""

    def __init__(
        self,
        *,
        replica: PeopleReplica,
        settings: BrokerSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica = replica
        self.settings = settings
        self._clock = clock
        self._client = make_client(settings)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._subscribed_at: float | None = None
        self._last_message = 0.0
        self._settled = False
        self._data_version: int | None = None

    @classmethod
    def from_config(cls, config: MoodboxConfig, stats: Stats | None = None) -> PeopleSyncService:
        if not config.mqtt.host:
            raise ConfigError("rooms.sync is on but mqtt.host is not set: the broker is the link")
        key = read_household_key()
        if key is None:
            raise ConfigError(
                f"rooms.sync is on but there is no household key: set ${KEY_ENV} or the "
                f"systemd credential {KEY_CREDENTIAL} (LoadCredential=), never config.yaml"
            )
        base = BrokerSettings.from_config(config)
        settings = dataclasses.replace(
            base, client_id=f"{base.client_id[:56]}-people", will_topic=None
        )
        store = UserStore.in_state_dir(config.state_dir())
        replica = PeopleReplica(
            store,
            HouseholdCipher(key),
            origin=config.general.device_id,
            topic_root=config.rooms.household_topic,
            stats=stats,
        )
        return cls(replica=replica, settings=settings)

    # --- Service ---

    def start(self, emit: Callable[[Event], None]) -> None:
        logger.info("people sync: sharing people on %s", self.replica.subscription)
        self._client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive
        )
        self._thread = threading.Thread(target=self._run, name="people-sync", daemon=True)
        self._thread.start()
        self._client.loop_start()

    def poll(self, now: float) -> None:
        """Nothing on the frame loop: the sync thread does the work."""

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(("stop", None))
        if self._thread is not None:
            self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()
        reset = getattr(self._client, "_reset_sockets", None)  # see MqttPublisher.stop
        if callable(reset):
            reset()
        self.replica.store.close()

    # --- paho's network thread: only hands over ---

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            logger.warning("people sync: broker refused the connection: %s", reason)
            return
        self._inbox.put(("connected", None))
        client.subscribe(self.replica.subscription, qos=1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._inbox.put(("subscribed", None))

    def _on_disconnect(self, *_args: Any) -> None:
        self._inbox.put(("disconnected", None))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(("message", (message.topic, bytes(message.payload))))

    # --- the sync thread ---

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, value = self._inbox.get(timeout=TICK_S)
            except queue.Empty:
                kind, value = "tick", None
            try:
                self._handle(kind, value)
                self._tick()
            except Exception:  # the thread must outlive one bad message or a store hiccup
                logger.exception("people sync: handling %s failed", kind)

    def _handle(self, kind: str, value: Any) -> None:
        if kind == "connected":
            logger.info("people sync: connected; reading the household's people")
            self._connected, self._settled, self._subscribed_at = True, False, None
            self.replica.new_session()
        elif kind == "subscribed":
            self._subscribed_at = self._last_message = self._clock()
        elif kind == "disconnected":
            if self._connected:
                logger.warning("people sync: connection lost; changes wait for the broker")
            self._connected, self._settled = False, False
        elif kind == "message":
            topic, payload = value
            self._last_message = self._clock()
            self._send(self.replica.receive(topic, payload))

    def _tick(self) -> None:
        if not self._connected or self._subscribed_at is None:
            return
        if not self._settled:
            if self._clock() - self._last_message < SETTLE_S:
                return
            self._settled = True
            self._data_version = self.replica.store.data_version()
            self._send(self.replica.local_changes())
            put_back = self.replica.reconcile()
            self._send(put_back)
            logger.info(
                "people sync: in step with the household (%d sent back to the broker)",
                len(put_back),
            )
            return
        version = self.replica.store.data_version()
        if version != self._data_version:  # the stage, the CLI or a command wrote the store
            self._data_version = version
            self._send(self.replica.local_changes())

    def _send(self, messages: list[Outgoing]) -> None:
        for message in messages:
            self._client.publish(message.topic, message.payload, qos=1, retain=True)
