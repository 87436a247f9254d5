"""Remote control: validate command payloads off-thread, run them on the loop thread.

MQTT callbacks run on paho's network thread while pygame and the identity
stage belong to the frame loop, so ``CommandDispatcher.submit`` only parses and
validates (size limit, UTF-8, schema) and queues; ``run_pending`` executes on the
loop thread from the MQTT service's ``poll``. A bad payload is counted, logged
once per command and reason, and ignored; a failing command is logged and
ignored. Nothing a broker client sends can raise out of either method.

Any broker client may publish to the command topics, so beyond validation:
a retained command is never run (it would run again at every restart), the
identity commands (``enroll``, ``forget``) are refused unless they are turned
on and carry a signature (``edge.publish.authority``), and each command kind has
a token bucket, so a flood of 300 ``NEXT``s is a handful of skips, not 300.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edge.classify import EMOTIONS

if TYPE_CHECKING:
    from edge.publish.authority import CommandAuthority

logger = logging.getLogger(__name__)

PLAYER_ACTIONS = ("PLAY", "PAUSE", "NEXT", "LIKE")
NAME_RE = re.compile(r"^[\w][\w .'-]{0,31}$")


class InvalidCommandError(ValueError):
    """A command payload that fails validation; ``reason`` is short and stable (log-once key)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason


class Controls(Protocol):
    """What remote commands can do; ``RemoteControls`` adapts the music and identity parts."""

    def player(self, action: str) -> None: ...

    def set_volume(self, percent: int) -> None: ...

    def set_mood_override(self, mood: str | None) -> None: ...

    def set_auto(self, enabled: bool) -> None: ...

    def enroll(self, name: str) -> None: ...

    def forget(self, name: str) -> None: ...

    def state(self) -> dict[str, Any]: ...


class MusicControl(Protocol):
    """The music controller's remote surface (implemented by the music service)."""

    def play(self) -> None: ...

    def pause(self) -> None: ...

    def next(self) -> None: ...

    def like(self) -> None: ...

    def set_volume(self, percent: int) -> None: ...

    def set_mood_override(self, mood: str | None) -> None: ...

    def set_auto(self, enabled: bool) -> None: ...

    def state(self) -> dict[str, Any]: ...


class IdentityControl(Protocol):
    """The identity stage's remote surface (enrol from the camera, forget a user)."""

    def enroll_from_camera(self, name: str) -> None: ...

    def forget(self, name: str) -> bool: ...


class RemoteControls:
    """``Controls`` over whichever music and identity parts exist; a missing one is logged once."""

    def __init__(
        self, *, music: MusicControl | None = None, identity: IdentityControl | None = None
    ) -> None:
        self.music = music
        self.identity = identity
        self._missing_logged: set[str] = set()

    def _missing(self, component: str, command: str) -> None:
        if component not in self._missing_logged:
            self._missing_logged.add(component)
            logger.warning("no %s in this moodbox: ignoring %s commands", component, command)

    def player(self, action: str) -> None:
        if self.music is None:
            return self._missing("music player", "player")
        {
            "PLAY": self.music.play,
            "PAUSE": self.music.pause,
            "NEXT": self.music.next,
            "LIKE": self.music.like,
        }[action]()
        return None

    def set_volume(self, percent: int) -> None:
        if self.music is None:
            return self._missing("music player", "volume")
        return self.music.set_volume(percent)

    def set_mood_override(self, mood: str | None) -> None:
        if self.music is None:
            return self._missing("music player", "mood_override")
        return self.music.set_mood_override(mood)

    def set_auto(self, enabled: bool) -> None:
        if self.music is None:
            return self._missing("music player", "auto")
        return self.music.set_auto(enabled)

    def enroll(self, name: str) -> None:
        if self.identity is None:
            return self._missing("identity stage", "enroll")
        return self.identity.enroll_from_camera(name)

    def forget(self, name: str) -> None:
        if self.identity is None:
            return self._missing("identity stage", "forget")
        # Once, not per message: any client could otherwise fill the log with made-up names.
        if not self.identity.forget(name) and "unknown user" not in self._missing_logged:
            self._missing_logged.add("unknown user")
            logger.info("forget %r: no such enrolled user (further ones are not logged)", name)
        return None

    def state(self) -> dict[str, Any]:
        return dict(self.music.state()) if self.music is not None else {}


# --- payload parsers: bytes in, a validated value out, InvalidCommandError otherwise ---


def _text(payload: bytes) -> str:
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise InvalidCommandError("not UTF-8") from err
    if not text:
        raise InvalidCommandError("empty")
    return text


def parse_player(payload: bytes) -> str:
    action = _text(payload).upper()
    if action not in PLAYER_ACTIONS:
        raise InvalidCommandError("unknown action", f"expected one of {', '.join(PLAYER_ACTIONS)}")
    return action


def parse_volume(payload: bytes) -> int:
    text = _text(payload)
    try:
        value = float(text)
    except ValueError as err:
        raise InvalidCommandError("not a number") from err
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise InvalidCommandError("out of range", "expected 0–100")
    return round(value)


def parse_mood_override(payload: bytes) -> str | None:
    mood = _text(payload).lower()
    if mood == "auto":
        return None
    if mood not in EMOTIONS:
        raise InvalidCommandError("unknown mood", f"expected auto or one of {', '.join(EMOTIONS)}")
    return mood


def parse_switch(payload: bytes) -> bool:
    value = _text(payload).upper()
    if value not in ("ON", "OFF"):
        raise InvalidCommandError("not ON or OFF")
    return value == "ON"


def _valid_name(name: object) -> str:
    # NFC: "José" typed on two keyboards is one person, whichever form of é each sends.
    if isinstance(name, str):
        name = unicodedata.normalize("NFC", name)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name.strip()):
        raise InvalidCommandError(
            "bad name", "1–32 letters, digits, spaces, . ' _ - (starting with a letter or digit)"
        )
    return name.strip()


def parse_signed(payload: bytes) -> dict[str, Any]:
    """A signed identity command's JSON object (checked by ``CommandAuthority.verify``)."""
    text = _text(payload)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise InvalidCommandError("not JSON", 'expected {"name", "ts", "nonce", "sig"}') from err
    if not isinstance(data, dict) or set(data) != {"name", "ts", "nonce", "sig"}:
        raise InvalidCommandError(
            "unsigned", 'expected {"name", "ts", "nonce", "sig"}: see `moodbox sign-command`'
        )
    return data


def parse_enroll(payload: bytes) -> str:
    text = _text(payload)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise InvalidCommandError("not JSON", 'expected {"name": NAME}') from err
    if not isinstance(data, dict) or set(data) != {"name"}:
        raise InvalidCommandError("bad schema", 'expected {"name": NAME}')
    return _valid_name(data["name"])


def parse_forget(payload: bytes) -> str:
    text = _text(payload)
    if text.startswith("{"):
        return parse_enroll(payload)
    return _valid_name(text)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One remote command: its name (topic ``<prefix>/<name>/set``), parser and action.

    ``burst`` commands may run at once, then one per ``every_s`` (a token bucket);
    ``identity`` commands change who the box recognises and need authority.
    """

    name: str
    parse: Callable[[bytes], Any]
    run: Callable[[Controls, Any], None]
    burst: int = 10
    every_s: float = 1.0
    identity: bool = False


# Buckets sized for a person at Home Assistant's controls, not for a script: a volume
# slider sends one value per release, a Next button one per press.
COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("player", parse_player, lambda c, v: c.player(v), burst=10, every_s=2.0),
        CommandSpec("volume", parse_volume, lambda c, v: c.set_volume(v), burst=60, every_s=0.05),
        CommandSpec(
            "mood_override",
            parse_mood_override,
            lambda c, v: c.set_mood_override(v),
            burst=10,
            every_s=2.0,
        ),
        CommandSpec("auto", parse_switch, lambda c, v: c.set_auto(v), burst=10, every_s=2.0),
        CommandSpec(
            "enroll", parse_enroll, lambda c, v: c.enroll(v), burst=3, every_s=20.0, identity=True
        ),
        CommandSpec(
            "forget", parse_forget, lambda c, v: c.forget(v), burst=5, every_s=10.0, identity=True
        ),
    )
}


@dataclass(slots=True)
class TokenBucket:
    """``burst`` tokens, one back every ``every_s``; ``take`` is False when none is left."""

    burst: int
    every_s: float
    tokens: float = field(init=False)
    updated: float = field(default=float("-inf"))

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        if self.updated != float("-inf"):
            self.tokens = min(self.burst, self.tokens + (now - self.updated) / self.every_s)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class CommandDispatcher:
    """Validates commands on any thread, queues them (bounded), runs them on the loop thread.

    ``invalid`` counts every refused command; ``retained``, ``unauthorized`` and
    ``rate_limited`` count the refusals of those kinds among them.
    ``authority``: None keeps the identity commands off; set, they need its signature.
    ``commands``: the commands this dispatcher knows (the web app adds rename and photo
    enrolment to the MQTT ones). ``trusted``: every sender was authenticated before the
    dispatcher (the web app's signed-in session and CSRF token, the CLI's local token),
    so identity commands need no signature; rate limits apply all the same.
    """

    def __init__(
        self,
        controls: Controls,
        *,
        max_bytes: int = 1024,
        max_pending: int = 64,
        authority: CommandAuthority | None = None,
        commands: Mapping[str, CommandSpec] | None = None,
        trusted: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controls = controls
        # The web app adds its own commands (rename, photo enrolment) to the MQTT ones.
        self.commands = COMMANDS if commands is None else commands
        self.max_bytes = max_bytes
        self.authority = authority
        self.trusted = trusted
        self.invalid = 0
        self.failed = 0
        self.retained = 0
        self.unauthorized = 0
        self.rate_limited = 0
        self._clock = clock
        self._buckets = {
            name: TokenBucket(spec.burst, spec.every_s) for name, spec in self.commands.items()
        }
        self._bucket_lock = threading.Lock()
        self._pending: queue.Queue[tuple[CommandSpec, Any]] = queue.Queue(maxsize=max_pending)
        self._logged: set[tuple[str, str]] = set()

    def _log_once(self, command: str, reason: str, detail: object) -> None:
        if (command, reason) not in self._logged:
            self._logged.add((command, reason))
            logger.warning(
                "ignoring %s command: %s (further ones like it are not logged)", command, detail
            )

    def submit(self, name: str, payload: bytes, *, retained: bool = False) -> bool:
        """Validate and queue; False (counted, logged once per kind) if the command is refused."""
        # Log-once keys use a fixed label for unknown names, so no topic can grow the set.
        label = name if name in self.commands else "unknown"
        try:
            spec = self.commands.get(name)
            if spec is None:
                raise InvalidCommandError("unknown command", repr(name[:40]))
            if retained:
                # Kept by the broker, it would run again at every (re)connect, long after
                # whoever sent it has gone: a command is something that happens once.
                self.retained += 1
                raise InvalidCommandError("retained", "a retained message is never a command")
            if len(payload) > self.max_bytes:
                raise InvalidCommandError("too large", f"{len(payload)} > {self.max_bytes} bytes")
            signed = spec.identity and not self.trusted
            value = self._authorized(spec, payload) if signed else spec.parse(payload)
            with self._bucket_lock:
                allowed = self._buckets[spec.name].take(self._clock())
            if not allowed:
                self.rate_limited += 1
                raise InvalidCommandError(
                    "rate limited",
                    f"more than {spec.burst} at once or one per {spec.every_s:g} s",
                )
            self._pending.put_nowait((spec, value))
        except InvalidCommandError as err:
            self.invalid += 1
            self._log_once(label, err.reason, err)
            return False
        except queue.Full:
            self.invalid += 1
            self._log_once(label, "flood", "too many commands waiting for the loop")
            return False
        except Exception as err:  # a parser bug must not kill paho's network thread
            self.invalid += 1
            self._log_once(label, type(err).__name__, repr(err))
            return False
        return True

    def _authorized(self, spec: CommandSpec, payload: bytes) -> str:
        """The name of a signed identity command; InvalidCommandError when unauthorized."""
        from edge.publish.authority import AuthorityError

        if self.authority is None:
            self.unauthorized += 1
            raise InvalidCommandError(
                "identity commands off",
                "enroll and forget over MQTT are off (mqtt.identity_commands)",
            )
        try:
            data = parse_signed(payload)
            name = self.authority.verify(spec.name, data)
        except InvalidCommandError:
            self.unauthorized += 1
            raise
        except AuthorityError as err:
            self.unauthorized += 1
            raise InvalidCommandError(err.reason, f"not authorized: {err.reason}") from err
        return _valid_name(name)

    def run_pending(self) -> list[str]:
        """Run queued commands (loop thread); the names of those that ran without error."""
        done: list[str] = []
        while True:
            try:
                spec, value = self._pending.get_nowait()
            except queue.Empty:
                return done
            try:
                spec.run(self.controls, value)
            except Exception:  # a component's failure must not stop the loop
                self.failed += 1
                logger.exception("%s command %r failed", spec.name, value)
            else:
                done.append(spec.name)
