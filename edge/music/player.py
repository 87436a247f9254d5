"""Players: the Player protocol, the pygame.mixer adapter, and a behavioural fake.

A player plays one track at a time, can have the next one queued, fades, and
reports what happened through ``poll(now)``: a track started, ended, failed to
decode, or the audio device went away or came back. Nothing here raises for a
bad file or a missing sound card; the daemon keeps running and the controller
picks again. pygame is imported lazily inside the adapter, so the rest of the
package and its tests run without it, and a lost device is logged once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

logger = logging.getLogger(__name__)

PlayerEventKind = Literal["started", "ended", "failed", "unavailable", "available"]


@dataclass(frozen=True, slots=True)
class PlayerEvent:
    """Something the controller must know: ``path`` is the track concerned, if any."""

    kind: PlayerEventKind
    path: Path | None = None
    detail: str = ""


class Player(Protocol):
    """What the music controller needs from an audio output."""

    @property
    def available(self) -> bool:
        """Whether an audio device is open (False while retrying)."""
        ...

    def play(self, path: Path, *, fade_ms: int = 0, start_s: float = 0.0) -> None:
        """Start ``path`` now: cold with a fade-in, or fading the current track out first.

        ``start_s``: seconds into the track (a backend that cannot seek starts at 0).
        """
        ...

    def position(self) -> float | None:
        """Seconds into the current track, None when nothing plays or it is unknown."""
        ...

    def queue(self, path: Path | None) -> None:
        """Play ``path`` when the current track ends (None: nothing queued)."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self, *, fade_ms: int = 0) -> None: ...

    def set_volume(self, volume: float) -> None:
        """0.0 to 1.0."""
        ...

    def poll(self, now: float) -> list[PlayerEvent]:
        """Advance (retries, fades, track ends) and report what happened since the last poll."""
        ...

    def close(self) -> None: ...


class PygamePlayer:
    """pygame.mixer.music (streamed, one track at a time) behind the Player protocol.

    A track's end is seen by polling ``get_busy`` rather than by pygame's end
    event, which needs a display (absent on a headless Pi). The queue is ours,
    so a queued track starts at most one poll (one camera frame) after the
    previous one ends. A missing audio device is retried with doubling backoff
    and logged once when lost and once when back.
    """

    def __init__(
        self,
        *,
        retry_s: float = 2.0,
        retry_max_s: float = 60.0,
        frequency: int = 44100,
        buffer: int = 2048,
    ) -> None:
        self._retry_s = retry_s
        self._retry_max_s = retry_max_s
        self._frequency = frequency
        self._buffer = buffer
        self._pygame: Any = None
        self._ready = False
        self._failures = 0
        self._next_try = float("-inf")
        self._volume = 1.0
        self._current: Path | None = None
        self._queued: Path | None = None
        self._pending: tuple[Path, int] | None = None  # starts once the fade-out has finished
        self._pending_start_s = 0.0
        self._start_s = 0.0  # where the current track was started
        self._paused = False
        self._events: list[PlayerEvent] = []

    @property
    def available(self) -> bool:
        return self._ready

    def play(self, path: Path, *, fade_ms: int = 0, start_s: float = 0.0) -> None:
        self._pending_start_s = max(0.0, start_s)
        if self._ready and self._current is not None and fade_ms > 0 and self._busy():
            self._pending = (path, fade_ms // 2)
            self._call("fadeout", max(1, fade_ms // 2))
            return
        self._pending = (path, fade_ms)
        if self._ready:
            self._start_pending()

    def position(self) -> float | None:
        if not self._ready or self._current is None:
            return None
        try:
            played_ms = self._pygame.mixer.music.get_pos()  # since play(), not since 0:00
        except Exception:
            return None
        return None if played_ms < 0 else self._start_s + played_ms / 1000

    def queue(self, path: Path | None) -> None:
        self._queued = path

    def pause(self) -> None:
        if self._current is not None and not self._paused:
            self._paused = True
            self._call("pause")

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._call("unpause")

    def stop(self, *, fade_ms: int = 0) -> None:
        self._pending = None
        self._queued = None
        self._paused = False
        self._current = None
        if fade_ms > 0:
            self._call("fadeout", fade_ms)
        else:
            self._call("stop")

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, volume))
        self._call("set_volume", self._volume)

    def poll(self, now: float) -> list[PlayerEvent]:
        if not self._ready and now >= self._next_try:
            self._open(now)
        if self._ready and not self._paused:
            busy = self._busy()
            if self._pending is not None:
                if not busy:
                    self._start_pending()
            elif self._current is not None and not busy:
                ended, self._current = self._current, None
                self._events.append(PlayerEvent("ended", ended))
                if self._queued is not None:
                    self._pending, self._queued = (self._queued, 0), None
                    self._pending_start_s = 0.0
                    self._start_pending()
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        if self._ready:
            try:
                self._pygame.mixer.music.stop()
                self._pygame.mixer.quit()
            except Exception:  # closing must never fail the shutdown
                logger.debug("mixer quit failed", exc_info=True)
        self._ready = False

    def _open(self, now: float) -> None:
        # Importing pygame prints a banner on stdout, which carries our JSON events.
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            pygame = _import_pygame()
            self._pygame = pygame
            pygame.mixer.init(frequency=self._frequency, size=-16, channels=2, buffer=self._buffer)
            pygame.mixer.music.set_volume(self._volume)
        except Exception as err:  # pygame.error, or no pygame at all
            self._failures += 1
            delay = min(self._retry_max_s, self._retry_s * 2 ** (self._failures - 1))
            self._next_try = now + delay
            if self._failures == 1:
                logger.warning("audio device unavailable (%s); retrying in the background", err)
                self._events.append(PlayerEvent("unavailable", detail=str(err)))
                from edge.music.alsa import silence_alsa_errors

                silence_alsa_errors()  # the retries would repeat libasound's lines
            else:
                logger.debug("audio still unavailable (%s); next try in %.0f s", err, delay)
            return
        if self._failures:
            logger.info("audio device back after %d attempt(s)", self._failures)
        self._events.append(PlayerEvent("available", detail=str(pygame.mixer.get_init())))
        self._failures = 0
        self._ready = True
        if self._pending is not None:
            self._start_pending()

    def _start_pending(self) -> None:
        assert self._pending is not None
        path, fade_ms = self._pending
        start_s, self._pending_start_s = self._pending_start_s, 0.0
        self._pending = None
        self._paused = False
        music = self._pygame.mixer.music
        try:
            music.load(str(path))
            try:
                music.play(fade_ms=fade_ms, start=start_s)
            except Exception as err:  # a format pygame cannot seek in: from the start
                if not start_s:
                    raise
                logger.info("cannot start %s at %.1f s (%s); from the start", path, start_s, err)
                start_s = 0.0
                music.play(fade_ms=fade_ms)
        except Exception as err:  # pygame.error for an undecodable file, OSError for a lost one
            logger.warning("cannot play %s (%s); skipping it", path, err)
            self._current = None
            self._events.append(PlayerEvent("failed", path, str(err)))
            return
        self._current = path
        self._start_s = start_s
        self._events.append(PlayerEvent("started", path))

    def _busy(self) -> bool:
        try:
            return bool(self._pygame.mixer.music.get_busy())
        except Exception:
            return False

    def _call(self, name: str, *args: object) -> None:
        if not self._ready:
            return
        try:
            getattr(self._pygame.mixer.music, name)(*args)
        except Exception as err:  # a mixer call must never take the daemon down
            logger.warning("mixer %s failed: %s", name, err)


@dataclass
class FakePlayer:
    """A behavioural stand-in with time driven by ``poll(now)`` and failure injection.

    Tracks last ``durations[path]`` seconds (``default_duration`` otherwise);
    paths in ``undecodable`` fail to start; ``trigger_device_loss`` drops the
    device until ``restore_device``. ``started`` lists every track that played.
    """

    durations: dict[Path, float] = field(default_factory=dict)
    default_duration: float = 180.0
    undecodable: set[Path] = field(default_factory=set)
    start_available: bool = True
    current: Path | None = None
    queued: Path | None = None
    paused: bool = False
    volume: float = 1.0
    started: list[Path] = field(default_factory=list)
    fades: list[tuple[Path, int]] = field(default_factory=list)
    starts_at: list[float] = field(default_factory=list)  # start_s of each started track
    stops: list[int] = field(default_factory=list)  # fade_ms of each stop
    _available: bool = False
    _opened: bool = False
    _now: float = 0.0
    _ends_at: float = float("inf")
    _paused_left: float = 0.0
    _pending: tuple[Path, int] | None = None
    _pending_at: float = 0.0
    _pending_start_s: float = 0.0
    _duration: float = 0.0
    _events: list[PlayerEvent] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return self._available

    def trigger_device_loss(self) -> None:
        self._available = False
        self._opened = True
        self.current = None
        self._events.append(PlayerEvent("unavailable", detail="fake device lost"))

    def restore_device(self) -> None:
        self._available = True
        self._events.append(PlayerEvent("available"))
        if self._pending is not None:
            self._start(self._pending[0])

    def trigger_end(self) -> None:
        """The current track ends at the next poll."""
        self._ends_at = self._now

    def play(self, path: Path, *, fade_ms: int = 0, start_s: float = 0.0) -> None:
        self.fades.append((path, fade_ms))
        self._pending_start_s = max(0.0, start_s)
        if self.current is not None and fade_ms > 0 and self._available:
            self._pending, self._pending_at = (path, fade_ms), self._now + fade_ms / 2000
            return
        self._pending = (path, fade_ms)
        if self._available:
            self._start(path)

    def queue(self, path: Path | None) -> None:
        self.queued = path

    def pause(self) -> None:
        if self.current is not None and not self.paused:
            self.paused, self._paused_left = True, self._ends_at - self._now

    def resume(self) -> None:
        if self.paused:
            self.paused, self._ends_at = False, self._now + self._paused_left

    def stop(self, *, fade_ms: int = 0) -> None:
        self.stops.append(fade_ms)
        self.current = self.queued = self._pending = None
        self.paused = False

    def position(self) -> float | None:
        if self.current is None:
            return None
        left = self._paused_left if self.paused else self._ends_at - self._now
        return max(0.0, self._duration - left)

    def set_volume(self, volume: float) -> None:
        self.volume = min(1.0, max(0.0, volume))

    def poll(self, now: float) -> list[PlayerEvent]:
        self._now = now
        if not self._opened:
            self._opened = True
            if self.start_available:
                self._available = True
                self._events.append(PlayerEvent("available"))
            else:
                self._events.append(PlayerEvent("unavailable", detail="fake: no device"))
        if self._available and not self.paused:
            if self._pending is not None and self.current is not None and now >= self._pending_at:
                self._start(self._pending[0])
            elif self._pending is None and self.current is not None and now >= self._ends_at:
                ended, self.current = self.current, None
                self._events.append(PlayerEvent("ended", ended))
                if self.queued is not None:
                    path, self.queued = self.queued, None
                    self._start(path)
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._available = False

    def _start(self, path: Path) -> None:
        self._pending = None
        if path in self.undecodable:
            self.current = None
            self._events.append(PlayerEvent("failed", path, "fake: cannot decode"))
            return
        self.current = path
        self.paused = False
        self._duration = self.durations.get(path, self.default_duration)
        start_s, self._pending_start_s = min(self._pending_start_s, self._duration), 0.0
        self._ends_at = self._now + self._duration - start_s
        self.started.append(path)
        self.starts_at.append(start_s)
        self._events.append(PlayerEvent("started", path))


def _import_pygame() -> Any:
    """``import pygame`` without pkg_resources.

    pygame.pkgdata imports pkg_resources (5 MB and 0.2 s of setuptools) only to
    find pygame's bundled fonts and icons, which a music player never loads; it
    has a fallback for when the import fails, which this makes it take.
    """
    import sys

    blocked = "pkg_resources" not in sys.modules
    if blocked:
        sys.modules["pkg_resources"] = None  # type: ignore[assignment]
    try:
        import pygame
    finally:
        if blocked and sys.modules.get("pkg_resources", 0) is None:
            del sys.modules["pkg_resources"]
    return pygame
