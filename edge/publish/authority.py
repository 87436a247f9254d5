"""Proof of authority for identity commands: HMAC-SHA256 with a household key, no replays.

Anyone who can publish to the broker can send ``<prefix>/enroll/set``; a name
alone proves nothing. With ``mqtt.identity_commands: true`` an ``enroll`` or
``forget`` must carry a signature made with the household's command key:

    {"name": "Ada", "ts": 1733100000.5, "nonce": "3f9c…", "sig": "<hex>"}

    sig = HMAC-SHA256(key, "moodbox-command-v1\\n<prefix>\\n<command>\\n<name>\\n<ts>\\n<nonce>")

with ``<ts>`` written with exactly three decimals (``1733100000.500``), so a signer
in any language produces the same text.

A client that only listens sees signatures but never the key, so it cannot make
one for another name, command or box (the prefix is signed too). Replaying a
payload it saw is refused twice over: ``ts`` must be within
``mqtt.command_window_s`` of the box's clock, and a nonce accepted once is
remembered for that window. HMAC needs no library beyond the standard one,
costs microseconds, and a key is one line in a credential file; public-key
signatures would let the box hold no secret, but Home Assistant cannot make
them without extra code either way.

The key is never a setting: ``$MOODBOX_COMMAND_KEY`` or the systemd credential
``$CREDENTIALS_DIRECTORY/command_key`` (at least 16 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from edge.credentials import read_key
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.config import MoodboxConfig

KEY_ENV = "MOODBOX_COMMAND_KEY"
KEY_CREDENTIAL = "command_key"
MIN_KEY_BYTES = 16
VERSION = "moodbox-command-v1"
# Nonces kept at most: far above what the identity commands' rate limits let through.
MAX_NONCES = 4096


class AuthorityError(ValueError):
    """A signed command that is refused; ``reason`` is short and stable (a log-once key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_command_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The command key: $MOODBOX_COMMAND_KEY, else $CREDENTIALS_DIRECTORY/command_key."""
    return read_key(KEY_ENV, KEY_CREDENTIAL, "command key", MIN_KEY_BYTES, environ)


def signed_text(prefix: str, command: str, name: str, ts: float, nonce: str) -> bytes:
    """The bytes a signature covers."""
    return "\n".join((VERSION, prefix, command, name, f"{float(ts):.3f}", nonce)).encode("utf-8")


def sign_command(
    key: bytes,
    prefix: str,
    command: str,
    name: str,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> str:
    """A signed ``enroll``/``forget`` payload (JSON text) for ``<prefix>/<command>/set``."""
    ts = round(time.time() if now is None else now, 3)
    nonce = nonce or secrets.token_hex(16)
    sig = hmac.new(key, signed_text(prefix, command, name, ts, nonce), hashlib.sha256).hexdigest()
    return json.dumps({"name": name, "ts": ts, "nonce": nonce, "sig": sig}, ensure_ascii=False)


def sign_command_line(config: MoodboxConfig, command: str, name: str) -> str:
    """The payload for ``<prefix>/<command>/set``, signed with the key from the environment.

    Printed by `moodbox sign-command`, for a Home Assistant shell_command or a script:
    ``mosquitto_pub -t <prefix>/forget/set -m "$(moodbox sign-command forget Ada)"``.
    """
    import unicodedata

    from edge.publish.mqtt import topic_prefix

    key = read_command_key()
    if key is None:
        raise ConfigError(f"no command key: set ${KEY_ENV} or the credential {KEY_CREDENTIAL}")
    name = unicodedata.normalize("NFC", name.strip())
    return sign_command(key, topic_prefix(config), command, name)


class CommandAuthority:
    """Checks signed identity commands: signature, time window, nonce not seen before."""

    def __init__(
        self,
        key: bytes,
        prefix: str,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.prefix = prefix
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce → expiry, oldest first

    def verify(self, command: str, data: Mapping[str, object]) -> str:
        """The signed name; AuthorityError if the proof is missing, forged, stale or replayed."""
        name, ts, nonce, sig = (data.get(k) for k in ("name", "ts", "nonce", "sig"))
        if not (isinstance(name, str) and isinstance(nonce, str) and isinstance(sig, str)):
            raise AuthorityError("unsigned")
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
            raise AuthorityError("unsigned")
        if not 8 <= len(nonce) <= 64:
            raise AuthorityError("bad nonce")
        expected = hmac.new(
            self._key, signed_text(self.prefix, command, name, ts, nonce), hashlib.sha256
        ).hexdigest()
        # compare_digest: the time taken does not tell a forger how many characters matched.
        if not hmac.compare_digest(expected, sig.lower()):
            raise AuthorityError("bad signature")
        now = self._clock()
        if abs(now - ts) > self.window_s:
            raise AuthorityError("outside the time window (clocks apart, or a replay)")
        with self._lock:
            while self._nonces and next(iter(self._nonces.values())) < now:
                self._nonces.popitem(last=False)
            if nonce in self._nonces:
                raise AuthorityError("replayed")
            if len(self._nonces) >= MAX_NONCES:
                raise AuthorityError("too many signed commands in the window")
            self._nonces[nonce] = ts + self.window_s
        return name
