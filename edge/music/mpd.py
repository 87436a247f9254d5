"""MpdPlayer: a Music Player Daemon (or Mopidy) behind the Player protocol, via python-mpd2.

moodbox owns the server's queue while it plays: the track playing now and at
most the one queued after it, so MPD itself moves to the next track at the
boundary (gapless). Tracks are sent as their path relative to
``music_root``, the folder that is MPD's ``music_directory`` as this machine
sees it, and must be in MPD's database (``mpc update``); Mopidy takes URIs
instead (``uri_prefix``: ``local:track:`` or a ``file://`` folder).

Fades are volume ramps (``setvol``) advanced by ``poll``: MPD's own
``crossfade`` only overlaps one song's end with the next one's start, is
skipped for songs under 20 s and between two audio formats (MPD 0.23), and
cannot fade in a cold start or fade out a stop. A ramp moves in steps of one
poll (one camera frame).

Nothing blocks the frame loop for long: every call has a socket timeout of
``timeout_s``, status is read at most every ``status_interval_s``, and
(re)connecting runs on a short-lived thread, because connecting to a host
that is down waits for the whole timeout. A lost server is logged once,
retried with doubling backoff and logged once when back; the track that was
playing then continues where it was. python-mpd2 is imported lazily, in the
connecting thread, so the rest of moodbox runs without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edge.errors import ConfigError
from edge.music.player import PlayerEvent

logger = logging.getLogger(__name__)

PASSWORD_ENV = "MOODBOX_MPD_PASSWORD"  # noqa: S105 (the variable's name, not a password)
PASSWORD_CREDENTIAL = "mpd_password"  # noqa: S105
START_GRACE_S = 2.0  # a started track not playing yet is not taken for ended before this
RESUME_FADE_MS = 500  # a track continued after the server came back fades in over this


def read_password(environ: Mapping[str, str] | None = None) -> str | None:
    """The MPD password: $MOODBOX_MPD_PASSWORD, else $CREDENTIALS_DIRECTORY/mpd_password."""
    environ = os.environ if environ is None else environ
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / PASSWORD_CREDENTIAL
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n") or None
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the MPD password: {err.strerror}") from err
    return None


@dataclass
class _Ramp:
    """A volume ramp from ``start`` to ``end`` (fractions of the set volume)."""

    start: float
    end: float
    duration_s: float
    began: float | None = None  # set by the first poll after the ramp was asked for

    def level(self, now: float) -> tuple[float, bool]:
        """The level at ``now`` and whether the ramp is over."""
        if self.began is None:
            self.began = now
        if self.duration_s <= 0:
            return self.end, True
        done = min(1.0, max(0.0, (now - self.began) / self.duration_s))
        return self.start + (self.end - self.start) * done, done >= 1.0


class MpdPlayer:
    """The Player protocol over the MPD protocol; see the module docstring."""

    def __init__(
        self,
        *,
        host: str,
        music_root: Path,
        uri_prefix: str = "",
        port: int = 6600,
        password: str | None = None,
        timeout_s: float = 0.5,
        retry_s: float = 2.0,
        retry_max_s: float = 60.0,
        status_interval_s: float = 0.2,
        keepalive_s: float = 20.0,
    ) -> None:
        self._host = host
        self._port = port
        self._password = password
        self._music_root = music_root.expanduser().resolve()
        self._uri_prefix = uri_prefix
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._retry_max_s = retry_max_s
        self._status_interval_s = status_interval_s
        self._keepalive_s = keepalive_s
        self._mpd: Any = None  # the python-mpd2 module, once imported
        self._client: Any = None  # an MPDClient, only while connected; loop thread only
        self._lock = threading.Lock()
        self._connecting: threading.Thread | None = None
        self._connected: Any = None  # the connecting thread's result: a client or an error
        self._closed = False
        self._failures = 0
        self._next_try = float("-inf")
        self._now = 0.0
        self._polling = False
        self._volume = 1.0
        self._level = 1.0  # the fade's share of the volume
        self._sent_volume: int | None = None
        self._mixer = True  # False once the server said it has no volume to set
        self._ramp: _Ramp | None = None
        self._after_ramp: str | None = None  # "start" (the pending track) or "stop"
        self._current: Path | None = None
        self._current_id: str | None = None
        self._elapsed = 0.0  # of the current track at the last status, to continue it
        self._started_at: float | None = None  # a start not yet seen playing in the status
        self._queued: Path | None = None
        self._queued_id: str | None = None
        self._pending: tuple[Path, int] | None = None
        self._pending_start_s = 0.0
        self._paused = False
        self._status_at = float("-inf")
        self._events: list[PlayerEvent] = []
        # python-mpd2 logs every connect attempt at INFO; the adapter logs loss and return once.
        logging.getLogger("mpd").setLevel(logging.WARNING)

    @property
    def available(self) -> bool:
        return self._client is not None

    def uri(self, path: Path) -> str | None:
        """``path`` as the server names it, None if outside the music root.

        MPD: the path relative to its music directory, as it is. Mopidy: a URI, the
        prefix and the URL-quoted relative path (it drops the connection on a plain path).
        """
        try:
            relative = path.expanduser().resolve().relative_to(self._music_root).as_posix()
        except ValueError:
            return None
        return self._uri_prefix + quote(relative) if self._uri_prefix else relative

    # -- Player ---------------------------------------------------------------

    def play(self, path: Path, *, fade_ms: int = 0, start_s: float = 0.0) -> None:
        self._pending_start_s = max(0.0, start_s)
        if self.available and self._current is not None and fade_ms > 0 and not self._paused:
            self._pending = (path, fade_ms // 2)
            self._fade_to(0.0, fade_ms // 2, then="start")
            return
        self._pending = (path, fade_ms)
        self._ramp = self._after_ramp = None
        if self.available:
            self._guard(self._start_pending)

    def position(self) -> float | None:
        """The elapsed time of the last status (at most ``status_interval_s`` old)."""
        return None if self._current is None else self._elapsed

    def queue(self, path: Path | None) -> None:
        self._queued = path
        if self.available and self._current_id is not None:
            self._guard(self._sync_queue)

    def pause(self) -> None:
        if self._current is not None and not self._paused:
            self._paused = True
            self._guard(lambda: self._client.pause(1))

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self._guard(lambda: self._client.pause(0))

    def stop(self, *, fade_ms: int = 0) -> None:
        self._pending = self._queued = None
        self._paused = False
        self._current = None
        if fade_ms > 0 and self._current_id is not None:
            self._fade_to(0.0, fade_ms, then="stop")
            return
        self._ramp = self._after_ramp = None
        self._guard(self._stop_now)

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, volume))
        self._guard(self._send_volume)

    def poll(self, now: float) -> list[PlayerEvent]:
        self._now, self._polling = now, True
        try:
            if not self.available:
                self._reconnect(now)
            if self.available:
                self._guard(lambda: self._advance(now))
        finally:
            self._polling = False
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        with self._lock:
            late, self._connected = self._connected, None
        for candidate in (client, late):
            if candidate is not None and not isinstance(candidate, BaseException):
                _disconnect(candidate)

    # -- connection -------------------------------------------------------------

    def _reconnect(self, now: float) -> None:
        """Take the connecting thread's result, or start one when the backoff allows."""
        with self._lock:
            result, self._connected = self._connected, None
        if result is not None:
            self._connecting = None
            if isinstance(result, BaseException):
                self._connect_failed(now, result)
            else:
                self._client = result
                self._guard(self._on_connected)
            return
        if self._connecting is None and now >= self._next_try and not self._closed:
            self._connecting = threading.Thread(
                target=self._connect_worker, name="mpd-connect", daemon=True
            )
            self._connecting.start()

    def _connect_worker(self) -> None:
        result: Any
        client: Any = None
        try:
            import mpd

            self._mpd = mpd
            client = mpd.MPDClient()
            client.timeout = self._timeout_s
            client.connect(self._host, self._port)
            if self._password:
                client.password(self._password)
            result = client
        except Exception as err:  # socket errors, a refused password, no python-mpd2
            if client is not None:
                _disconnect(client)  # a half-open connection (no greeting, bad password)
            result = err
        with self._lock:
            if self._closed and not isinstance(result, BaseException):
                _disconnect(result)
                return
            self._connected = result

    def _connect_failed(self, now: float, err: BaseException) -> None:
        self._failures += 1
        delay = min(self._retry_max_s, self._retry_s * 2 ** (self._failures - 1))
        self._next_try = now + delay
        if self._failures == 1:
            logger.warning(
                "MPD server %s:%d unavailable (%s); retrying in the background",
                self._host,
                self._port,
                _describe(err),
            )
            self._events.append(PlayerEvent("unavailable", detail=_describe(err)))
        else:
            logger.debug("MPD still unavailable (%s); next try in %.0f s", _describe(err), delay)

    def _on_connected(self) -> None:
        """Back on the loop thread with a fresh connection: take over the server's queue."""
        client = self._client
        if self._failures:
            logger.info(
                "MPD server %s:%d back after %d attempt(s)", self._host, self._port, self._failures
            )
        self._failures = 0
        self._sent_volume = None
        self._mixer = True  # the server may have been reconfigured while away
        self._events.append(
            PlayerEvent("available", detail=f"MPD {client.mpd_version} at {self._host}")
        )
        for option in ("random", "repeat", "single", "consume"):
            with contextlib.suppress(self._mpd.CommandError):  # a password without "control"
                getattr(client, option)(0)  # moodbox picks every track; MPD must not
        if self._pending is not None:  # asked for while away, or the fade before it was cut
            self._ramp = self._after_ramp = None
            self._start_pending()
        elif self._current is not None:
            self._continue_current()
        else:  # nothing of ours plays: the server's queue is ours (a stop cut short, too)
            self._ramp = self._after_ramp = None
            self._stop_now()

    def _continue_current(self) -> None:
        """The server came back: play the current track on from where it was."""
        assert self._current is not None
        uri = self.uri(self._current)
        if uri is None:  # it played, so it maps; only a changed music root gets here
            return
        song = self._client.currentsong()
        state = self._client.status().get("state")
        if song.get("file") == uri and state in ("play", "pause"):  # only the connection broke
            self._current_id = song.get("id")
            for entry in self._client.playlistinfo():  # the queued one is queued afresh below
                if entry.get("id") != self._current_id:
                    self._client.deleteid(entry["id"])
            self._client.pause(1 if self._paused else 0)  # a pause or resume sent while away
            self._send_volume()
        else:
            self._client.clear()
            self._current_id = self._client.addid(uri)
            self._level = 0.0
            self._send_volume()
            # seekid starts the song at the position (seekcur right after playid is refused:
            # the decoder is not open yet).
            self._client.seekid(self._current_id, f"{self._elapsed:.3f}")
            self._started_at = self._now
            if self._paused:
                self._client.pause(1)
            self._fade_to(1.0, RESUME_FADE_MS)
            logger.info("continuing %s at %.1f s", self._current.name, self._elapsed)
        self._queued_id = None
        self._sync_queue()

    def _guard(self, call: Any) -> None:
        """Run one step against the server; a lost connection is handled, never raised."""
        if self._client is None:
            return
        mpd = self._mpd
        try:
            call()
        except mpd.CommandError as err:  # a refused command: log it, the connection lives on
            logger.warning("MPD refused a command: %s", err)
        except (mpd.MPDError, OSError) as err:  # OSError: a reset socket, a timeout
            self._lost(err)
        except Exception as err:  # an answer we cannot read: start afresh, never raise
            logger.exception("unexpected MPD answer")
            self._lost(err)

    def _lost(self, err: BaseException) -> None:
        client, self._client = self._client, None
        if client is not None:
            _disconnect(client)
        self._current_id = self._queued_id = None
        self._failures = 1
        self._next_try = self._now + self._retry_s
        logger.warning(
            "MPD server %s:%d lost (%s); retrying in the background",
            self._host,
            self._port,
            _describe(err),
        )
        self._events.append(PlayerEvent("unavailable", detail=_describe(err)))

    # -- playback -----------------------------------------------------------------

    def _start_pending(self) -> None:
        assert self._pending is not None
        # ``_pending`` stays set until MPD plays it, so a connection lost half-way through
        # starts it again on reconnecting instead of forgetting it.
        path, fade_ms = self._pending
        self._paused = False
        uri = self.uri(path)
        if uri is None:
            self._pending = None
            self._fail(path, f"not under the MPD music root {self._music_root}")
            return
        client = self._client
        client.clear()
        self._current = self._current_id = self._queued_id = None
        try:
            song_id = client.addid(uri)
        except self._mpd.CommandError as err:  # not in MPD's database
            self._pending = None
            self._fail(path, f"{err} (is it in MPD's database? mpc update)")
            return
        self._level = 0.0 if fade_ms > 0 else 1.0
        self._send_volume()
        start_s = self._pending_start_s
        if start_s > 0:
            # seekid starts the song at the position (seekcur right after playid is refused:
            # the decoder is not open yet).
            client.seekid(song_id, f"{start_s:.3f}")
        else:
            client.playid(song_id)
        self._pending, self._pending_start_s = None, 0.0
        self._current, self._current_id, self._elapsed = path, song_id, start_s
        self._started_at = self._now
        self._status_at = float("-inf")
        self._events.append(PlayerEvent("started", path))
        if fade_ms > 0:
            self._fade_to(1.0, fade_ms)
        else:
            self._ramp = None
        self._sync_queue()

    def _fail(self, path: Path, detail: str) -> None:
        logger.warning("cannot play %s (%s); skipping it", path, detail)
        self._events.append(PlayerEvent("failed", path, detail))

    def _sync_queue(self) -> None:
        """MPD's queue after the current track: exactly ``self._queued``."""
        client = self._client
        if self._queued_id is not None:
            with contextlib.suppress(self._mpd.CommandError):  # gone already: played, cleared
                client.deleteid(self._queued_id)
            self._queued_id = None
        if self._queued is None or self._current_id is None:
            return
        uri = self.uri(self._queued)
        if uri is None:
            failed, self._queued = self._queued, None
            self._fail(failed, f"not under the MPD music root {self._music_root}")
            return
        try:
            self._queued_id = client.addid(uri)
        except self._mpd.CommandError as err:
            failed, self._queued = self._queued, None
            self._fail(failed, f"{err} (is it in MPD's database? mpc update)")

    def _stop_now(self) -> None:
        self._client.stop()
        self._client.clear()
        self._current_id = self._queued_id = None
        self._level = 1.0
        self._send_volume()

    def _fade_to(self, level: float, fade_ms: int, *, then: str | None = None) -> None:
        # Asked for inside a poll (a track that starts after a fade-out), the ramp starts
        # now; asked for by a command between polls, at the next poll.
        began = self._now if self._polling else None
        self._ramp = _Ramp(self._level, level, fade_ms / 1000, began)
        self._after_ramp = then

    def _send_volume(self) -> None:
        if self._client is None or not self._mixer:
            return
        volume = round(100 * self._volume * self._level)
        if volume == self._sent_volume:
            return
        try:
            self._client.setvol(volume)
        except self._mpd.CommandError as err:
            # An output without a mixer (a fifo into Snapcast, say) has no volume at all.
            self._mixer = False
            logger.warning(
                "MPD cannot set the volume (%s): volume and fades are off; give the "
                'audio_output mixer_type "software"',
                err,
            )
            return
        self._sent_volume = volume

    def _advance(self, now: float) -> None:
        """One poll: the fade's next step, then (at most every status_interval_s) track ends."""
        if self._ramp is not None and not self._paused:
            self._level, done = self._ramp.level(now)
            self._send_volume()
            if done:
                self._ramp, then = None, self._after_ramp
                self._after_ramp = None
                if then == "start" and self._pending is not None:
                    self._start_pending()
                elif then == "stop":
                    self._stop_now()
        if self._current_id is None or self._paused or self._ramp is not None:
            if now - self._status_at >= self._keepalive_s:
                # MPD drops a client that is silent for connection_timeout (60 s by default).
                self._status_at = now
                self._client.ping()
            return
        if now - self._status_at < self._status_interval_s:
            return
        self._status_at = now
        status = self._client.status()
        song_id = status.get("songid") if status.get("state") != "stop" else None
        if song_id == self._current_id:
            self._elapsed = float(status.get("elapsed", 0.0))
            self._started_at = None
            return
        if self._started_at is not None and now - self._started_at < START_GRACE_S:
            return  # Mopidy reports "stop" for a moment after playid: not an end yet
        self._started_at = None
        ended = self._current
        self._events.append(PlayerEvent("ended", ended))
        old_id, self._current, self._current_id = self._current_id, None, None
        if song_id is not None and song_id == self._queued_id:
            # MPD moved on to the queued track by itself (gapless).
            self._current, self._current_id = self._queued, self._queued_id
            self._queued = self._queued_id = None
            self._elapsed = float(status.get("elapsed", 0.0))
            self._events.append(PlayerEvent("started", self._current))
            with contextlib.suppress(self._mpd.CommandError):
                self._client.deleteid(old_id)  # keeps the server's queue at two entries
        elif self._queued is not None:
            # The queued track never reached the server (or another client cleared it).
            self._pending, self._queued = (self._queued, 0), None
            self._pending_start_s = 0.0
            self._start_pending()


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _disconnect(client: Any) -> None:
    try:
        client.disconnect()
    except Exception:  # closing must never fail
        logger.debug("MPD disconnect failed", exc_info=True)
