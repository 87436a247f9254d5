"""MusicController: the decide-to-play policy, an App service.

It listens to every event (``emit``): moods per face, faces lost, users
signing in and out. On the loop thread (``poll(now)``) it turns the blended
mood of everyone present into a target in valence–arousal, keeps the next
track queued for that target, and changes the music at the track boundary;
only a strong change (the playing track is ``switch_distance`` from the new
target) to a mood that a face sustains (``MoodSustained``: decide's slow
average agrees) and that lasts ``switch_hold_s`` switches mid-track, with a short
cross-fade, at most once per ``min_switch_interval_s``. All timing uses the
``now`` passed to ``poll``; nothing here reads a clock.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.config import MoodboxConfig, MusicConfig
from edge.events import (
    Event,
    FaceLost,
    MoodChanged,
    MoodSustained,
    PlayerState,
    StatusChanged,
    TrackStarted,
    UserForgotten,
    UserSignedIn,
    UserSignedOut,
)
from edge.music.library import Library, Track, scan_library
from edge.music.moods import EMOTION_POINTS, Point, blend_probabilities, mood_point
from edge.music.moods import target_from_probabilities as point_of
from edge.music.player import Player, PlayerEvent
from edge.music.players import make_player
from edge.music.preferences import NOW_PLAYING, PREFERENCES_DB, Feedback, PreferenceStore
from edge.music.recommend import Recommender, strategy_target
from edge.statedir import write_private_text

logger = logging.getLogger(__name__)

LIBRARY_CACHE = "music_library.json"
SKIP_FADE_MS = 300


class MusicController:
    """Plays music that follows the mood of the people present; see the module docstring."""

    def __init__(
        self,
        *,
        library: Library | Callable[[], Library],
        player: Player,
        config: MusicConfig | None = None,
        preferences: PreferenceStore | None = None,
        rng: random.Random | None = None,
        now_playing_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or MusicConfig()
        self.player = player
        self.preferences = preferences
        self._rng = rng or random.Random()
        # A loader is called in ``start``, after the daemon's signal handlers are in place:
        # a first scan of a large library takes a while.
        self._library_loader = None if isinstance(library, Library) else library
        self._use_library(library if isinstance(library, Library) else Library(()))
        self._now_playing_file = now_playing_file
        self._clock = clock  # stamps events only; decisions use poll's ``now``
        self._emit: Callable[[Event], None] = lambda _event: None
        self._faces: dict[int, tuple[dict[str, float], str | None]] = {}
        # The latest sustained mood of each face (decide's slow average agrees).
        self._sustained: dict[int, str] = {}
        self._signed_in: set[str] = set()
        self._changed = False
        self._mood: str | None = None  # the listeners' mood the music follows
        self._target: Point | None = None
        self._listener: Point = EMOTION_POINTS["neutral"]
        self._lift_step = 0
        self._auto = True
        self._override: str | None = None
        self._want_play = True
        self._started_once = False
        self._volume = self.config.volume
        self._current: Track | None = None
        self._current_mood: str | None = None
        self._current_user: str | None = None
        self._queued: Track | None = None
        self._pending_reason = "start"
        self._recent: deque[str] = deque(maxlen=max(self.config.recency_window, 1) * 4)
        self._bad: set[str] = set()
        self._strong_since: float | None = None
        self._last_switch = float("-inf")
        self._now = 0.0
        self._force_switch = False
        # Handed over to another room and nobody in view here: no new track until a face
        # appears or a play command comes.
        self._standby = False
        self._leaving: set[str] = set()  # took their music to another room
        self._leaving_fade_ms = 0
        # (now, track id, reason) of every track started:
        # start|boundary|switch|skip|override|handover
        self.history: list[tuple[float, str, str]] = []
        self.player.set_volume(self._volume / 100)

    @classmethod
    def from_config(cls, config: MoodboxConfig) -> MusicController:
        """Scan the configured folders (cached in the state dir); the player by its type."""
        music = config.music
        state = config.state_dir()
        folders = [config.resolve(folder) for folder in music.folders]

        def library() -> Library:
            return scan_library(folders, cache_path=state / LIBRARY_CACHE)

        player = make_player(config)  # music.player.type: pygame here, or an MPD server
        return cls(
            library=library,
            player=player,
            config=music,
            preferences=PreferenceStore(state / PREFERENCES_DB),
            now_playing_file=state / NOW_PLAYING,
        )

    def _use_library(self, library: Library) -> None:
        self.library = library
        self.recommender = Recommender(
            library.tracks,
            rng=self._rng,
            recency_window=self.config.recency_window,
            closeness=self.config.closeness,
        )

    # -- Service -------------------------------------------------------------

    def start(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        if self._library_loader is not None:
            self._use_library(self._library_loader())
            self._library_loader = None
            if not self.library.tracks:
                logger.warning("no playable music found; music stays silent")

    def stop(self) -> None:
        self.player.stop(fade_ms=0)
        self.player.close()
        if self.preferences is not None:
            self.preferences.close()

    def emit(self, event: Event) -> None:
        """Every app event; only state changes here, the player is driven from ``poll``."""
        if isinstance(event, MoodChanged):
            self._faces[event.face_id] = (dict(event.probabilities), event.user)
            self._changed = True
            self._standby = False
        elif isinstance(event, MoodSustained):
            self._sustained[event.face_id] = event.mood
        elif isinstance(event, FaceLost):
            self._sustained.pop(event.face_id, None)
            if self._faces.pop(event.face_id, None) is not None:
                self._changed = True
                self._fade_if_left()
        elif isinstance(event, UserSignedIn):
            self._signed_in.add(event.user)
            self._changed = True
        elif isinstance(event, UserSignedOut):
            self._signed_in.discard(event.user)
            self._changed = True
        elif isinstance(event, UserForgotten):
            self._forget(event.user)

    def _forget(self, user: str) -> None:
        """Drop a forgotten user from memory, the now-playing file and the player state."""
        self._signed_in.discard(user)
        for face_id, (probabilities, face_user) in list(self._faces.items()):
            if face_user == user:
                self._faces[face_id] = (probabilities, None)
        if self._current_user is not None and user in self._current_user.split(", "):
            self._current_user = self._user_label()
        if self._current is not None:
            self._write_now_playing(self._current)
        self._changed = True
        self._publish_state()

    def poll(self, now: float) -> None:
        self._now = now
        for player_event in self.player.poll(now):
            self._on_player(player_event, now)
        if (
            self._current is None
            and self._queued is not None
            and self._pending_reason == "boundary"
        ):
            # The track ended before its successor reached the player's queue (a track
            # shorter than one poll): start the successor now.
            self._start(now, "start")
        if self._changed:
            self._changed = False
            self._retarget()
        if self._target is None:
            return
        if self._want_play and not self._standby and self._current is None and self._idle():
            self._start(now, self._pending_reason)
            return
        self._check_switch(now)

    # -- commands (MQTT, CLI; loop thread) -----------------------------------

    def play(self) -> None:
        """Resume, or start music now (for the household's mood if nobody is seen)."""
        self._want_play = True
        self._standby = False
        self._leaving.clear()
        if self._current is not None:
            self.player.resume()
        if self._target is None:
            self._retarget(fallback=True)
        self._publish_state()

    def pause(self) -> None:
        self._want_play = False
        self.player.pause()
        self._publish_state()

    def next(self) -> None:
        """Skip: remember the listeners skipped this track in this mood, play another now."""
        if self._current is not None:
            self._feedback("skip", self._current)
        self._want_play = True
        self._switch(self._now, "skip", fade_ms=SKIP_FADE_MS)

    def like(self) -> None:
        if self._current is not None:
            self._feedback("like", self._current)

    def replay(self) -> None:
        """Play the current track again from the start (a strong positive signal)."""
        if self._current is not None:
            self._feedback("replay", self._current)
            self.player.play(self._current.path, fade_ms=SKIP_FADE_MS)
            self._pending_reason = "replay"

    def set_volume(self, percent: int) -> None:
        self._volume = max(0, min(100, int(percent)))
        self.player.set_volume(self._volume / 100)
        self._publish_state()

    def set_mood_override(self, mood: str | None) -> None:
        """Play for this mood whatever the camera says; None: back to the camera's mood."""
        if mood is not None and mood_point(mood) is None:
            logger.warning("ignoring unknown mood override %r", mood)
            return
        self._override = None if mood is None else mood.strip().lower()
        self._force_switch = self._current is not None
        self._retarget(fallback=True)
        self._publish_state()

    def set_auto(self, enabled: bool) -> None:
        """auto: the music follows the mood; off: it keeps the current target."""
        self._auto = bool(enabled)
        if self._auto:
            self._changed = True
        self._publish_state()

    def handover_in(self, track_id: str | None, position_s: float, user: str) -> Track | None:
        """Continue music that played for ``user`` in another room: that track at that
        position when this box has it (else the next pick for them). The track, or None."""
        self._standby = False
        self._leaving.discard(user)
        self._want_play = True
        if self._target is None:
            self._retarget(fallback=True)
        track = self.library.by_id.get(track_id or "")
        start_s = max(0.0, position_s)
        if track is not None and track.duration and start_s >= track.duration - 1.0:
            track = None  # it has ended by now: the next one for them
        if track is None or track.id in self._bad:
            track, start_s = self._pick(), 0.0
        if track is None:
            return None
        logger.info("rooms: continuing %r for %s at %.1f s", track.title or track.id, user, start_s)
        self._strong_since = None
        self._pending_reason = "handover"
        self._queued = track
        self.player.queue(None)
        self.player.play(track.path, fade_ms=self.config.crossfade_ms, start_s=start_s)
        return track

    def handover_out(self, user: str, *, fade_ms: int) -> bool:
        """Another room took ``user``'s music: fade out once nobody else is in view here.

        Their own face does not count (its track lingers a moment after they walked
        out). True if the music stopped now; else it stops when the last other face
        (a guest's too) leaves. Until a face appears again, or a play command, no new
        track starts.
        """
        self._leaving.add(user)
        self._leaving_fade_ms = fade_ms
        return self._fade_if_left()

    def _fade_if_left(self) -> bool:
        if not self._leaving or self._current is None:
            return False
        if any(face_user not in self._leaving for _, face_user in self._faces.values()):
            return False  # someone else (known or not) listens here
        logger.info("rooms: the music went with %s; fading out", ", ".join(sorted(self._leaving)))
        self._leaving.clear()
        self.player.stop(fade_ms=self._leaving_fade_ms)
        self._current = self._queued = None
        self._pending_reason = "start"
        self._standby = True
        self._publish_state()
        return True

    def listening(self) -> dict[str, Any] | None:
        """What plays here for another room to continue: track id, position, mood."""
        track = self._current
        if track is None or not self._want_play or self._standby:
            return None
        return {"track": track.id, "position_s": self.player.position(), "mood": self._mood}

    def state(self) -> dict[str, Any]:
        track = self._current
        return {
            "state": self._state_name(),
            "title": track.title if track else None,
            "artist": track.artist if track else None,
            "mood": self._current_mood,
            "user": self._current_user,
            "volume": self._volume,
            "auto": self._auto,
            "mood_override": self._override,
        }

    # -- policy ----------------------------------------------------------------

    @property
    def current(self) -> Track | None:
        """The track playing (or paused) now."""
        return self._current

    @property
    def mood(self) -> str | None:
        """The mood the music follows now (override, else the blended listeners' mood)."""
        return self._mood

    def listeners(self) -> list[str | None]:
        """Who is present: signed-in users and the users of seen faces (None: unknown)."""
        users: list[str | None] = [*sorted(self._signed_in)]
        for _, user in self._faces.values():
            if user not in users:
                users.append(user)
        return users or [None]

    def _retarget(self, *, fallback: bool = False) -> None:
        if self._override is not None:
            mood, listener = self._override, mood_point(self._override)
        elif not self._auto and self._target is not None:
            return
        elif self._faces:
            probabilities = blend_probabilities(p for p, _ in self._faces.values())
            mood = max(probabilities, key=lambda label: probabilities[label])
            listener = point_of(probabilities)
        elif fallback or self._target is not None:
            # Nobody in view: keep following the last mood, or start from neutral.
            mood = self._mood or "neutral"
            listener = point_of({mood: 1.0}) if mood in EMOTION_POINTS else mood_point(mood)
        else:
            return
        assert listener is not None
        if mood != self._mood:
            self._lift_step = 0
        self._mood = mood
        self._listener = listener
        self._target = self._strategy_target()
        self._queue_next()

    def _strategy_target(self) -> Point:
        return strategy_target(
            self.config.strategy, self._listener, self._lift_step, self.config.lift_tracks
        )

    def _check_switch(self, now: float) -> None:
        if self._current is None or self._target is None or not self._want_play:
            self._strong_since = None
            return
        if self._force_switch:
            self._force_switch = False
            self._switch(now, "override", fade_ms=self.config.crossfade_ms)
            return
        strong = (
            self._current_mood != self._mood
            and self._current.point.distance(self._target) >= self.config.switch_distance
            # A passing misreading never interrupts a track: only a mood that a face
            # sustains (decide's slow average) does; others wait for the boundary.
            and (self._override is not None or self._mood in self._sustained.values())
        )
        if not strong:
            self._strong_since = None
            return
        if self._strong_since is None:
            self._strong_since = now
        if (
            now - self._strong_since >= self.config.switch_hold_s
            and now - self._last_switch >= self.config.min_switch_interval_s
        ):
            self._switch(now, "switch", fade_ms=self.config.crossfade_ms)

    def _switch(self, now: float, reason: str, *, fade_ms: int) -> None:
        track = self._pick()
        if track is None:
            return
        self._strong_since = None
        if reason == "switch":
            self._last_switch = now
        self._pending_reason = reason
        self._queued = track
        self.player.queue(None)
        self.player.play(track.path, fade_ms=fade_ms)

    def _start(self, now: float, reason: str) -> None:
        track = self._queued or self._pick()
        if track is None:
            return
        self._queued = track
        self._pending_reason = reason
        self.player.play(track.path, fade_ms=self.config.fade_in_ms)

    def _idle(self) -> bool:
        """Nothing on its way (a start waits for the player's answer: started or failed)."""
        return self._queued is None

    def _pick(self) -> Track | None:
        if self._target is None or self._mood is None:
            return None
        weights = None
        if self.preferences is not None:
            weights = self.preferences.blended(self.listeners(), self._mood)
        return self.recommender.pick(
            self._target, recent=list(self._recent), preferences=weights, exclude=self._bad
        )

    def _queue_next(self) -> None:
        if self._current is None:
            self._queued = None  # picked fresh when playback starts
            return
        self._queued = self._pick()
        self._pending_reason = "boundary"
        self.player.queue(None if self._queued is None else self._queued.path)

    def _on_player(self, event: PlayerEvent, now: float) -> None:
        if event.kind == "started" and event.path is not None:
            self._on_started(event.path, now)
        elif event.kind == "ended":
            if self._current is not None and event.path == self._current.path:
                self._feedback("complete", self._current)
                self._current = None
        elif event.kind == "failed" and event.path is not None:
            track = self.library.by_path.get(event.path)
            if track is not None:
                self._bad.add(track.id)
            if self._current is not None and self._current.path == event.path:
                self._current = None
            self._queued = None
            self._pending_reason = "boundary"
        elif event.kind in {"unavailable", "available"}:
            ok = event.kind == "available"
            self._emit(
                StatusChanged(time=self._clock(), component="audio", ok=ok, detail=event.detail)
            )
            self._publish_state()

    def _on_started(self, path: Path, now: float) -> None:
        track = self.library.by_path.get(path)
        if track is None:
            return
        reason = self._pending_reason
        self._current, self._queued = track, None
        self._current_mood = self._mood
        self._current_user = self._user_label()
        self._recent.append(track.id)
        self._started_once = True
        self.history.append((now, track.id, reason))
        self._lift_step += 1
        if self._target is not None and self.config.strategy == "lift":
            self._target = self._strategy_target()
        self._queue_next()
        # The file first: a program that reacts to the event (`moodbox music like`) reads it.
        self._write_now_playing(track)
        self._emit(
            TrackStarted(
                time=self._clock(),
                title=track.title,
                artist=track.artist,
                mood=self._current_mood,
                user=self._current_user,
                path=str(track.path),
            )
        )
        self._publish_state()

    def _feedback(self, kind: Feedback, track: Track) -> None:
        if self.preferences is None:
            return
        mood = self._current_mood or self._mood or "neutral"
        for user in self.listeners():
            try:
                self.preferences.record(
                    user, mood, track.id, kind, genre=track.genre, artist=track.artist
                )
            except Exception:  # a full disk must not stop the music
                logger.exception("cannot record %s for %s", kind, track.id)

    def _user_label(self) -> str | None:
        known = [user for user in self.listeners() if user]
        return ", ".join(known) if known else None

    def _state_name(self) -> str:
        if not self.player.available:
            return "unavailable"
        if self._current is None:
            return "stopped"
        return "playing" if self._want_play else "paused"

    def _publish_state(self) -> None:
        state = self.state()
        self._emit(
            PlayerState(
                time=self._clock(),
                state=state["state"],
                title=state["title"],
                artist=state["artist"],
                mood=state["mood"],
                user=state["user"],
                volume=state["volume"],
            )
        )

    def _write_now_playing(self, track: Track) -> None:
        """For `moodbox music like|skip` in another process: which track, which mood."""
        if self._now_playing_file is None:
            return
        data = {
            "track_id": track.id,
            "path": str(track.path),
            "mood": self._current_mood,
            "users": [user for user in self.listeners() if user],
        }
        try:
            write_private_text(self._now_playing_file, json.dumps(data))
        except OSError as err:
            logger.debug("cannot write %s: %s", self._now_playing_file, err)
