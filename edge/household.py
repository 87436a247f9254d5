"""The household's state, built from typed events: faces in view, who is present, the player.

Every front-end reads this one model instead of keeping its own copy: the
MQTT adapter renders its retained topics from it, and a web page or a local
control socket can show the same state. It is pure bookkeeping (events in,
state out, no clock and no I/O); the app applies every event to it before
any sink sees the event, so a sink that reads it sees the state that event made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from edge.events import (
    Event,
    FaceLost,
    MoodChanged,
    PlayerState,
    TrackStarted,
    UserForgotten,
    UserSignedIn,
    UserSignedOut,
)

Aspect = Literal["faces", "presence", "player"]


@dataclass(frozen=True, slots=True)
class FaceMood:
    """One face in view and its latest reported mood."""

    face_id: int
    mood: str
    probabilities: dict[str, float]
    box: tuple[int, int, int, int]
    user: str | None
    time: float


@dataclass(frozen=True, slots=True)
class PlayerView:
    """What the player does, as its events last said."""

    state: str = "stopped"
    title: str | None = None
    artist: str | None = None
    mood: str | None = None
    user: str | None = None
    volume: int | None = None


HISTORY_TYPES = (MoodChanged, UserSignedIn, UserSignedOut, TrackStarted)


class Household:
    """Faces and their moods, present users, the player, recent history."""

    def __init__(self, *, history: int = 200) -> None:
        self._faces: dict[int, FaceMood] = {}  # in order of their last mood change
        self._present: dict[str, float] = {}  # user → sign-in time, in sign-in order
        self.player = PlayerView()
        self.history: deque[Event] = deque(maxlen=history)

    def apply(self, event: Event) -> frozenset[Aspect]:
        """Take one event; which parts of the state it changed."""
        if isinstance(event, HISTORY_TYPES):
            self.history.append(event)
        handler = _HANDLERS.get(type(event))
        return handler(self, event) if handler else frozenset()

    def _mood_changed(self, event: MoodChanged) -> frozenset[Aspect]:
        self._faces.pop(event.face_id, None)  # re-insert: the latest change comes last
        self._faces[event.face_id] = FaceMood(
            event.face_id, event.mood, dict(event.probabilities), event.box, event.user, event.time
        )
        return _FACES

    def _face_lost(self, event: FaceLost) -> frozenset[Aspect]:
        return _FACES if self._faces.pop(event.face_id, None) else _NOTHING

    def _signed_in(self, event: UserSignedIn) -> frozenset[Aspect]:
        self._present.pop(event.user, None)
        self._present[event.user] = event.time
        face = self._faces.get(event.face_id)
        if face is not None and face.user != event.user:
            # The face's mood may have been reported before it was recognised (or before
            # the person enrolled): it is theirs now, without waiting for its next change.
            self._faces[event.face_id] = replace(face, user=event.user)
            return _PRESENCE | _FACES
        return _PRESENCE

    def _signed_out(self, event: UserSignedOut) -> frozenset[Aspect]:
        return _PRESENCE if self._present.pop(event.user, None) is not None else _NOTHING

    def _forgotten(self, event: UserForgotten) -> frozenset[Aspect]:
        """A forgotten user leaves presence, the faces' names and the recent history."""
        self._present.pop(event.user, None)
        for face_id, face in list(self._faces.items()):
            if face.user == event.user:
                self._faces[face_id] = replace(face, user=None)
        kept = [e for e in self.history if getattr(e, "user", None) != event.user]
        self.history.clear()
        self.history.extend(kept)
        return _FACES_AND_PRESENCE

    def _player_state(self, event: PlayerState) -> frozenset[Aspect]:
        self.player = PlayerView(
            event.state, event.title, event.artist, event.mood, event.user, event.volume
        )
        return _PLAYER

    def _track_started(self, event: TrackStarted) -> frozenset[Aspect]:
        self.player = replace(
            self.player,
            state="playing",
            title=event.title,
            artist=event.artist,
            mood=event.mood,
            user=event.user,
        )
        return _PLAYER

    @property
    def faces(self) -> list[FaceMood]:
        """Faces in view with a mood, the one whose mood changed last at the end."""
        return list(self._faces.values())

    @property
    def mood(self) -> FaceMood | None:
        """The household mood: the face whose mood changed last among those in view."""
        return next(reversed(self._faces.values()), None)

    @property
    def present(self) -> list[str]:
        """Signed-in users, sorted by name."""
        return sorted(self._present)

    @property
    def latest_arrival(self) -> str | None:
        """The user who signed in last among those present."""
        return next(reversed(self._present), None)


_NOTHING: frozenset[Aspect] = frozenset()
_FACES: frozenset[Aspect] = frozenset({"faces"})
_PRESENCE: frozenset[Aspect] = frozenset({"presence"})
_PLAYER: frozenset[Aspect] = frozenset({"player"})
_FACES_AND_PRESENCE: frozenset[Aspect] = frozenset({"faces", "presence"})

# Event type → how it changes the household (an event of any other type changes nothing).
_HANDLERS: dict[type[Event], Callable[[Household, Any], frozenset[Aspect]]] = {
    MoodChanged: Household._mood_changed,
    FaceLost: Household._face_lost,
    UserSignedIn: Household._signed_in,
    UserSignedOut: Household._signed_out,
    UserForgotten: Household._forgotten,
    PlayerState: Household._player_state,
    TrackStarted: Household._track_started,
}
