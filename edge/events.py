"""Events that leave the pipeline: what happened, to whom, when. JSON-ready.

Every event has a ``type`` (its wire name), ``time`` (Unix seconds, rendered
ISO-8601 in JSON) and its own fields. Sinks receive them in order.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, TextIO

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base event; subclasses set ``type``."""

    type: ClassVar[str] = "event"
    time: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = iso_time(self.time)
        if "face_id" in data:
            # face_id was called track_id before 0.2; the old key stays one release
            # so that existing consumers (HA templates, scripts) keep working.
            data["track_id"] = data["face_id"]
        return {"type": self.type, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class MoodChanged(Event):
    """A face's smoothed mood changed (or was first established)."""

    type: ClassVar[str] = "mood_changed"
    face_id: int
    mood: str
    previous: str | None
    probabilities: dict[str, float]
    box: tuple[int, int, int, int]
    user: str | None = None


@dataclass(frozen=True, slots=True)
class MoodSustained(Event):
    """A face's reported mood also leads its slow average: no passing misreading.

    The music may cross-fade mid-track only for a sustained mood; a mood that is
    reported but not (yet) sustained changes the music at the next track boundary.
    """

    type: ClassVar[str] = "mood_sustained"
    face_id: int
    mood: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class FaceLost(Event):
    """A face track ended (not seen for ``decide.track_timeout_s``)."""

    type: ClassVar[str] = "face_lost"
    face_id: int
    last_mood: str | None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged(Event):
    """A dependency went away or came back (camera, audio, broker)."""

    type: ClassVar[str] = "status"
    component: str
    ok: bool
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserSignedIn(Event):
    """An enrolled user was recognised and is now present."""

    type: ClassVar[str] = "user_signed_in"
    user: str
    face_id: int


@dataclass(frozen=True, slots=True)
class UserSignedOut(Event):
    """A present user has not been seen for ``identify.sign_out_after_s`` (or was forgotten)."""

    type: ClassVar[str] = "user_signed_out"
    user: str


@dataclass(frozen=True, slots=True)
class UserForgotten(Event):
    """A user was deleted (`forget`): every part drops what it holds about them.

    Not published on MQTT's event topic; the retained state topics are sent
    again without the name instead.
    """

    type: ClassVar[str] = "user_forgotten"
    user: str


@dataclass(frozen=True, slots=True)
class UnknownFace(Event):
    """A face track was decided to be nobody enrolled (reported once per track)."""

    type: ClassVar[str] = "unknown_face"
    face_id: int


@dataclass(frozen=True, slots=True)
class TrackStarted(Event):
    """A track began playing (``mood``: the mood it was picked for)."""

    type: ClassVar[str] = "track_started"
    title: str
    artist: str
    mood: str | None
    user: str | None
    path: str


@dataclass(frozen=True, slots=True)
class PlayerState(Event):
    """The player changed: playing, paused, stopped or unavailable, or its volume (percent)."""

    type: ClassVar[str] = "player_state"
    state: str
    title: str | None
    artist: str | None
    mood: str | None
    user: str | None
    volume: int


@dataclass(frozen=True, slots=True)
class EnrolmentStarted(Event):
    """A camera enrolment began (``moodbox enroll`` or ``<prefix>/enroll/set``)."""

    type: ClassVar[str] = "enrolment_started"
    user: str


@dataclass(frozen=True, slots=True)
class EnrolmentFinished(Event):
    """A camera enrolment ended: ``ok`` with the samples stored, or the reason it failed.

    ``also_matches`` names enrolled people the new face already resembled (the
    same face under two names signs in as whichever matches best).
    """

    type: ClassVar[str] = "enrolment_finished"
    user: str
    ok: bool
    samples: int
    reason: str | None = None
    also_matches: tuple[str, ...] = ()


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")


class EventSink(Protocol):
    """Receives every event; must not block the frame loop."""

    def emit(self, event: Event) -> None: ...


class JsonLinesSink:
    """Events as JSON lines on a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def emit(self, event: Event) -> None:
        stream = self._stream or sys.stdout
        stream.write(event.to_json() + "\n")
        stream.flush()


def _face(face_id: int, user: str | None) -> str:
    return f"face {face_id}" + (f" ({user})" if user else "")


def _mood_changed(e: MoodChanged) -> str:
    share = e.probabilities.get(e.mood)
    percent = f" {100 * share:.0f}%" if share is not None else ""
    was = f" (was {e.previous})" if e.previous else ""
    return f"{_face(e.face_id, e.user)}: mood {e.mood}{percent}{was}"


def _status(e: StatusChanged) -> str:
    return f"{e.component} {'ok' if e.ok else 'lost'}" + (f": {e.detail}" if e.detail else "")


def _track(e: TrackStarted) -> str:
    listener = f", for {e.user}" if e.user else ""
    return f"playing {e.title} – {e.artist}" + (f" ({e.mood}{listener})" if e.mood else "")


def _player(e: PlayerState) -> str:
    if e.state == "unavailable":
        return "player unavailable"
    what = f": {e.title} – {e.artist}" if e.title else ""
    return f"player {e.state}{what}, volume {e.volume}%"


def _enrolment_finished(e: EnrolmentFinished) -> str:
    also = f" (also looks like {', '.join(e.also_matches)})" if e.also_matches else ""
    if e.ok:
        return f"enrolled {e.user}: {e.samples} sample(s){also}"
    return f"enrolling {e.user} failed: {e.reason}{also}"


# One readable line per event type (an unknown type falls back to its JSON).
DESCRIBE: dict[type[Event], Callable[[Any], str]] = {
    MoodChanged: _mood_changed,
    MoodSustained: lambda e: f"{_face(e.face_id, e.user)}: mood {e.mood} sustained",
    FaceLost: lambda e: (
        f"{_face(e.face_id, e.user)} left" + (f" (last mood {e.last_mood})" if e.last_mood else "")
    ),
    StatusChanged: _status,
    UserSignedIn: lambda e: f"{e.user} signed in (face {e.face_id})",
    UserSignedOut: lambda e: f"{e.user} signed out",
    UnknownFace: lambda e: f"face {e.face_id}: nobody enrolled",
    TrackStarted: _track,
    PlayerState: _player,
    EnrolmentStarted: lambda e: f"enrolling {e.user}: look at the camera",
    EnrolmentFinished: _enrolment_finished,
}


def describe(event: Event) -> str:
    """The event as one readable line, without its time."""
    render = DESCRIBE.get(type(event))
    return render(event) if render else f"{event.type}: {event.to_json()}"


class TerminalSink:
    """Events as readable lines with the local time of day, for a person at a terminal:
    ``07:34:25 face 1 (alice): mood happy 81%``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def emit(self, event: Event) -> None:
        stream = self._stream or sys.stdout
        stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
        stream.write(f"{stamp} {describe(event)}\n")
        stream.flush()


class LogSink:
    """Events as one readable log line each (the journal stamps the time)."""

    def emit(self, event: Event) -> None:
        logger.info("%s", describe(event))
