"""People sync: every box of a household holds the same enrolled people, through the broker.

Each person is one retained MQTT message on ``<household_topic>/people/<id>``,
where ``<id>`` is a keyed hash of the case-folded name (the same person has the
same id at every box, and a broker client cannot test a guessed name against
it). The retained messages are the shared store; there is no other cluster.

A message is AES-256-GCM with a fresh random 96-bit nonce, the topic as
associated data and a key derived (HKDF-SHA256) from the household key, so a
client without the key reads nothing (names, vectors, versions are all inside)
and cannot write or move a person: anything that fails authentication is
refused and counted (``sync_refused``). Plain texts are padded to 4 KiB steps
so a message's size tells little about the name or how many samples it holds,
and a tombstone is as long as a small live record.

Every person carries a version (a per-person Lamport clock) and the id of the
box that wrote it; the higher (version, origin) wins everywhere, so boxes
converge whatever order messages arrive in. A forget is a tombstone with a
higher version, kept in the store and on the broker, so a box that was offline
for a week still sees the forget, and an older message replayed later (the
broker's own retained copy, or a captured one) loses against it. A box that
sees a message older than what it holds publishes its newer one again, so a
stale copy on the broker does not stay there while any box that knows better is
online.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edge.credentials import read_key
from edge.identify.store import SyncRecord, UserStore, check_name
from edge.stats import Stats

logger = logging.getLogger(__name__)

KEY_ENV = "MOODBOX_HOUSEHOLD_KEY"
KEY_CREDENTIAL = "household_key"
MIN_KEY_BYTES = 32
FORMAT = 1
_MAGIC = b"MBP1"  # message layout: magic, 12-byte nonce, ciphertext with its 16-byte tag
_NONCE_BYTES = 12
_PAD_STEP = 4096
MAX_MESSAGE_BYTES = 256 * 1024
MAX_SAMPLES = 64
MAX_DIM = 1024
RESTORE_INTERVAL_S = 30.0
_ID = re.compile(r"^[0-9a-f]{32}$")
_ORIGIN = re.compile(r"^[a-z0-9_-]{1,32}$")  # general.device_id


def read_household_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The household key: $MOODBOX_HOUSEHOLD_KEY, else $CREDENTIALS_DIRECTORY/household_key."""
    return read_key(KEY_ENV, KEY_CREDENTIAL, "household key", MIN_KEY_BYTES, environ)


class RefusedError(ValueError):
    """A sync message that is not taken; ``reason`` is short and stable (a log-once key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HouseholdCipher:
    """Seals and opens people messages with keys derived from the household key."""

    def __init__(self, secret: bytes) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        def derive(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

        # Separate keys: the id hash never uses the key that encrypts.
        self._aead = AESGCM(derive(b"moodbox people sync v1: aes-gcm"))
        self._id_key = derive(b"moodbox people sync v1: person id")

    def person_id(self, folded_name: str) -> str:
        """The opaque id of a person: 128 bits of HMAC-SHA256 over the case-folded name."""
        digest = hmac.new(self._id_key, folded_name.encode("utf-8"), hashlib.sha256)
        return digest.hexdigest()[:32]

    def seal(self, topic: str, plain: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plain, _aad(topic))

    def open(self, topic: str, data: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        head = len(_MAGIC) + _NONCE_BYTES
        if len(data) > MAX_MESSAGE_BYTES:
            raise RefusedError("too large")
        if not data.startswith(_MAGIC) or len(data) < head + 16:
            raise RefusedError("not a people message")
        try:
            return self._aead.decrypt(data[len(_MAGIC) : head], data[head:], _aad(topic))
        except InvalidTag as err:
            raise RefusedError("failed authentication (another key, altered or moved)") from err


def _aad(topic: str) -> bytes:
    return b"moodbox-people-v1\n" + topic.encode("utf-8")


def encode_record(record: SyncRecord) -> bytes:
    """The padded plain text of a record."""
    data: dict[str, object] = {
        "format": FORMAT,
        "id": record.person_id,
        "version": record.version,
        "origin": record.origin,
        "name": record.name,
    }
    if record.name is not None and record.vectors is not None:
        vectors = np.ascontiguousarray(record.vectors, dtype="<f4")
        data["dim"] = int(vectors.shape[1])
        data["vectors"] = base64.b64encode(vectors.tobytes()).decode("ascii")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # JSON ignores trailing white space: pad to the next step.
    return text + b" " * (-len(text) % _PAD_STEP or _PAD_STEP)


def decode_record(plain: bytes) -> SyncRecord:
    """A record from authenticated plain text; RefusedError if it is not well formed."""
    try:
        data = json.loads(plain)
    except (ValueError, UnicodeDecodeError) as err:
        raise RefusedError("not JSON") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RefusedError("unknown format")
    pid, version, origin, name = (data.get(k) for k in ("id", "version", "origin", "name"))
    if not (isinstance(pid, str) and _ID.match(pid)):
        raise RefusedError("bad id")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**53:
        raise RefusedError("bad version")
    if not (isinstance(origin, str) and _ORIGIN.match(origin)):
        raise RefusedError("bad origin")
    if name is None:
        return SyncRecord(pid, version, origin)
    dim, blob = data.get("dim"), data.get("vectors")
    if not isinstance(name, str) or not isinstance(dim, int) or not isinstance(blob, str):
        raise RefusedError("bad person")
    try:
        name = check_name(name)
    except ValueError as err:
        raise RefusedError("bad name") from err
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RefusedError("bad vectors") from err
    if not 0 < dim <= MAX_DIM or not raw or len(raw) % (4 * dim):
        raise RefusedError("bad vectors")
    vectors = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(-1, dim)
    if len(vectors) > MAX_SAMPLES or not np.isfinite(vectors).all():
        raise RefusedError("bad vectors")
    return SyncRecord(pid, version, origin, name, vectors)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A retained message to publish (QoS 1)."""

    topic: str
    payload: bytes


class PeopleReplica:
    """One box's side of the sync, without the network: messages in, messages out.

    ``receive`` takes what the broker delivers, ``local_changes`` what this box
    enrolled or forgot (the CLI, the daemon, an MQTT command: all write the
    store), ``reconcile`` what the broker lacks after a (re)connect. Not
    thread-safe: one thread drives it (``edge/publish/people.py``).
    """

    def __init__(
        self,
        store: UserStore,
        cipher: HouseholdCipher,
        *,
        origin: str,
        topic_root: str,
        stats: Stats | None = None,
        forget: Callable[[UserStore, str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from edge.identify.forget import forget_user

        self.store = store
        self.cipher = cipher
        self.origin = origin
        self.root = f"{topic_root}/people/"
        self.stats = stats or Stats()
        self._forget = forget or forget_user
        self._seen: dict[str, tuple[int, str]] = {}  # the broker's versions this session
        self._refusals_logged: set[str] = set()
        self._restored: dict[str, float] = {}  # person → when we last overwrote an unreadable copy
        self._clock = clock
        self.applied = 0

    @property
    def subscription(self) -> str:
        return self.root + "+"

    def topic(self, person_id: str) -> str:
        return self.root + person_id

    def new_session(self) -> None:
        """A (re)connect: what the broker holds is learnt again from its retained messages."""
        self._seen.clear()

    def receive(self, topic: str, payload: bytes) -> list[Outgoing]:
        """Apply a newer version, or answer an older one with ours."""
        if not topic.startswith(self.root) or not _ID.match(topic[len(self.root) :]):
            return []
        pid = topic[len(self.root) :]
        if not payload:  # deleted from the broker (by anyone): put ours back
            self._seen.pop(pid, None)
            local = self.store.sync_record(pid)
            return [] if local is None else [self._message(local)]
        try:
            record = decode_record(self.cipher.open(topic, payload))
            if record.person_id != pid:
                raise RefusedError("id does not match the topic")
        except RefusedError as err:
            self._refuse(topic, err.reason)
            return self._restore(pid)
        self._seen[pid] = max(self._seen.get(pid, (0, "")), record.order)
        local = self.store.sync_record(pid)
        if local is None or record.order > local.order:
            self._apply(record, local)
            return []
        if record.order < local.order:
            return [self._message(local)]
        return []

    def _restore(self, pid: str) -> list[Outgoing]:
        """Ours again over a copy nobody with our key wrote (so never a newer one).

        At most once per interval: two boxes with different keys that hold the same
        person would otherwise overwrite each other without end.
        """
        self._seen.pop(pid, None)
        local = self.store.sync_record(pid)
        now = self._clock()
        if local is None or now - self._restored.get(pid, -math.inf) < RESTORE_INTERVAL_S:
            return []
        self._restored[pid] = now
        return [self._message(local)]

    def local_changes(self) -> list[Outgoing]:
        """This box's unshared enrolments and forgets, versioned, as messages."""
        records = self.store.sync_take_local(
            self.cipher.person_id, self.origin, lambda pid: self._seen.get(pid, (0, ""))[0]
        )
        for record in records:
            logger.info(
                "people sync: sharing %s (version %d)",
                "a forget" if record.deleted else record.name,
                record.version,
            )
        return [self._message(record) for record in records]

    def reconcile(self) -> list[Outgoing]:
        """What this box holds that the broker lacks or holds older (after it lost it)."""
        return [
            self._message(record)
            for record in self.store.sync_records()
            if self._seen.get(record.person_id, (0, "")) < record.order
        ]

    def _message(self, record: SyncRecord) -> Outgoing:
        topic = self.topic(record.person_id)
        self._seen[record.person_id] = max(self._seen.get(record.person_id, (0, "")), record.order)
        return Outgoing(topic, self.cipher.seal(topic, encode_record(record)))

    def _apply(self, record: SyncRecord, local: SyncRecord | None) -> None:
        self.applied += 1
        if record.deleted:
            if local is not None and local.name is not None:
                # The one forget path: embeddings, images, music state, then the tombstone.
                self._forget(self.store, local.name)
                logger.info("people sync: forgot %s (forgotten at %s)", local.name, record.origin)
            self.store.sync_apply(record)
            return
        self.store.sync_apply(record)
        logger.info(
            "people sync: %s from %s (version %d, %d samples)",
            record.name,
            record.origin,
            record.version,
            0 if record.vectors is None else len(record.vectors),
        )

    def _refuse(self, topic: str, reason: str) -> None:
        self.stats.count("sync_refused")
        if reason not in self._refusals_logged:
            self._refusals_logged.add(reason)
            logger.warning(
                "people sync: refused a message on %s: %s (without the household key nobody "
                "can add or move a person; further refusals of this kind are not logged)",
                topic,
                reason,
            )
