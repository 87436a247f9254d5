"""Who may use the web app: the household password, the CLI's token, sign-in rate limits.

The password is stored only as a salted scrypt hash in the state directory
(``web_password``, mode 0600), never in config.yaml: a copied config file
leaks nothing, and scrypt's memory cost makes guessing from a stolen hash
slow. The daemon writes ``web.json`` (mode 0600) at start with its URL and a
fresh random token; only the daemon's user can read it, which is what lets
`moodbox` commands on the box reach the running daemon without a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

PASSWORD_FILE = "web_password"  # noqa: S105 - a file name, not a password
SECRET_FILE = "web_secret"  # noqa: S105 - a file name; it signs session cookies; a new one signs everybody out
RUNTIME_FILE = "web.json"
MIN_PASSWORD_LENGTH = 8
# scrypt cost: 2**14 × 8 × 128 bytes = 16 MiB and about 50 ms per try on a Pi 4 core.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file that only the owner can read (replacing ``path``)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def hash_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return {
        "scheme": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": base64.b64encode(salt).decode(),
        "hash": base64.b64encode(digest).decode(),
    }


def set_password(state_dir: Path, password: str) -> Path:
    """Store the household password's hash; ValueError if it is too short."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    path = state_dir / PASSWORD_FILE
    _write_private(path, json.dumps(hash_password(password)))
    return path


def password_is_set(state_dir: Path) -> bool:
    return (state_dir / PASSWORD_FILE).is_file()


def check_password(state_dir: Path, password: str) -> bool:
    """Whether ``password`` is the household's (False if none is set or the file is bad)."""
    try:
        stored = json.loads((state_dir / PASSWORD_FILE).read_text(encoding="utf-8"))
        salt = base64.b64decode(stored["salt"])
        expected = base64.b64decode(stored["hash"])
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(stored["n"]),
            r=int(stored["r"]),
            p=int(stored["p"]),
            dklen=len(expected),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def session_secret(state_dir: Path) -> bytes:
    """The key that signs session cookies, created once (so sessions survive a restart)."""
    path = state_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        key = secrets.token_bytes(32)
        _write_private(path, key.hex())
        return key


def write_runtime(state_dir: Path, url: str, token: str) -> Path:
    """Tell local `moodbox` commands where the running daemon listens and its token."""
    path = state_dir / RUNTIME_FILE
    _write_private(path, json.dumps({"url": url, "token": token, "pid": os.getpid()}))
    return path


def read_runtime(state_dir: Path) -> dict[str, Any] | None:
    """The running daemon's URL and token, or None (no daemon, or not readable by us)."""
    try:
        data = json.loads((state_dir / RUNTIME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not {"url", "token", "pid"} <= set(data):
        return None
    return data


class SignInLimiter:
    """At most ``attempts`` failed sign-ins per ``window_s`` from one address, and
    ``4 × attempts`` from all addresses together (a guesser with many addresses)."""

    def __init__(
        self,
        *,
        attempts: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > self.window_s:
            times.popleft()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again; 0 when it may now."""
        now = self._clock()
        with self._lock:
            mine = self._failures.get(address, deque())
            self._trim(mine, now)
            self._trim(self._all, now)
            waits = []
            if len(mine) >= self.attempts:
                waits.append(self.window_s - (now - mine[0]))
            if len(self._all) >= 4 * self.attempts:
                waits.append(self.window_s - (now - self._all[0]))
            return max(waits, default=0.0)

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > 1000:  # bounded: forget the oldest addresses
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(address, deque()).append(now)
            self._all.append(now)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)
