"""Mood and play history in SQLite under the state directory, kept ``web.history_days``.

``HistoryRecorder`` is an event sink: each reported mood, sign-in, sign-out
and started track becomes a row. Rows are small and rare (a mood is reported
after seconds of hysteresis), so they are written on the loop thread; WAL
with ``synchronous=NORMAL`` makes a commit a write to the log, not a disk
flush, and a power cut loses at most the last few rows of a history, never
the database. Forgetting a person deletes their rows (``secure_delete``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.events import (
    Event,
    MoodChanged,
    TrackStarted,
    UserForgotten,
    UserSignedIn,
    UserSignedOut,
)
from edge.household import Household

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS moods (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, user TEXT, face_id INTEGER NOT NULL,
    mood TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plays (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, title TEXT NOT NULL, artist TEXT NOT NULL,
    mood TEXT, user TEXT
);
CREATE TABLE IF NOT EXISTS presence (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, user TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS moods_time ON moods(time);
CREATE INDEX IF NOT EXISTS plays_time ON plays(time);
CREATE INDEX IF NOT EXISTS presence_time ON presence(time);
"""

PRUNE_EVERY_S = 3600.0
# A guest's mood row lasts until the next guest mood, or this long at most: their
# leaving is not recorded, and nobody is assumed to stay in one mood for hours.
MAX_SEGMENT_S = 300.0
GUESTS = "guests"  # the timeline row of faces nobody enrolled


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a person's timeline: from ``start`` to ``end`` in ``mood``."""

    start: float
    end: float
    mood: str


class HistoryStore:
    """The history database. Thread-safe: one connection behind a lock."""

    FILENAME = "history.sqlite3"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        old_umask = os.umask(0o077)  # who was home and in which mood: owner only
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        finally:
            os.umask(old_umask)
        self._lock = threading.Lock()
        # Names forgotten or renamed here: the stage signs them out a frame later, and
        # that sign-out must not bring a row of them back.
        self._gone: set[str] = set()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> HistoryStore:
        from edge.identify.store import make_state_dir

        return cls(make_state_dir(state_dir) / cls.FILENAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def record(self, event: Event) -> bool:
        """Store the event if it belongs in the history; whether it did."""
        if isinstance(event, MoodChanged):
            sql = "INSERT INTO moods (time, user, face_id, mood) VALUES (?, ?, ?, ?)"
            row: tuple[Any, ...] = (event.time, event.user, event.face_id, event.mood)
        elif isinstance(event, TrackStarted):
            sql = "INSERT INTO plays (time, title, artist, mood, user) VALUES (?, ?, ?, ?, ?)"
            row = (event.time, event.title, event.artist, event.mood, event.user)
        elif isinstance(event, UserSignedOut) and event.user in self._gone:
            self._gone.discard(event.user)
            return False
        elif isinstance(event, UserSignedIn | UserSignedOut):
            self._gone.discard(event.user)  # enrolled again under that name
            sql = "INSERT INTO presence (time, user, kind) VALUES (?, ?, ?)"
            row = (event.time, event.user, "in" if isinstance(event, UserSignedIn) else "out")
        else:
            return False
        with self._transaction() as db:
            db.execute(sql, row)
        return True

    def prune(self, older_than: float) -> int:
        """Delete rows from before ``older_than``; how many went."""
        with self._transaction() as db:
            return sum(
                db.execute(f"DELETE FROM {table} WHERE time < ?", (older_than,)).rowcount  # noqa: S608 - fixed table names
                for table in ("moods", "plays", "presence")
            )

    def forget(self, user: str) -> int:
        """Delete every row about ``user`` (plays picked for them too); how many went."""
        self._gone.add(user)
        with self._transaction() as db:
            deleted = sum(
                db.execute(f"DELETE FROM {table} WHERE user = ?", (user,)).rowcount  # noqa: S608 - fixed table names
                for table in ("moods", "plays", "presence")
            )
        with self._lock:
            # secure_delete zeroes the freed cells, but the WAL still holds the pages as
            # they were until a checkpoint: rewrite the file and empty the WAL.
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def rename(self, old: str, new: str) -> None:
        self._gone.add(old)
        with self._transaction() as db:
            for table in ("moods", "plays", "presence"):
                db.execute(f"UPDATE {table} SET user = ? WHERE user = ?", (new, old))  # noqa: S608 - fixed table names

    def day(self, start: float, end: float, now: float | None = None) -> dict[str, Any]:
        """Between ``start`` and ``end``: each person's mood segments, and the plays.

        A person's mood lasts until their next one or until they sign out (or ``now``);
        a guest's, whose departure is not recorded, at most ``MAX_SEGMENT_S``.
        """
        now = time.time() if now is None else now
        with self._lock:
            moods = self._db.execute(
                "SELECT time, user, mood FROM moods WHERE time >= ? AND time < ? ORDER BY time",
                (start, end),
            ).fetchall()
            plays = self._db.execute(
                "SELECT time, title, artist, mood, user FROM plays "
                "WHERE time >= ? AND time < ? ORDER BY time",
                (start, end),
            ).fetchall()
            outs = self._db.execute(
                "SELECT time, user FROM presence WHERE kind = 'out' AND time >= ? ORDER BY time",
                (start,),
            ).fetchall()
        rows: dict[str, list[tuple[float, str]]] = {}
        for stamp, user, mood in moods:
            rows.setdefault(user or GUESTS, []).append((stamp, mood))
        departures: dict[str, list[float]] = {}
        for stamp, user in outs:
            departures.setdefault(user, []).append(stamp)
        timelines: dict[str, list[Segment]] = {}
        for person, changes in rows.items():
            segments = []
            for i, (stamp, mood) in enumerate(changes):
                following = changes[i + 1][0] if i + 1 < len(changes) else end
                if person == GUESTS:
                    limit = stamp + MAX_SEGMENT_S
                else:
                    left = [t for t in departures.get(person, ()) if t > stamp]
                    limit = left[0] if left else now
                segments.append(Segment(stamp, max(stamp, min(following, limit, end, now)), mood))
            timelines[person] = segments
        return {
            "moods": timelines,
            "plays": [
                {"time": t, "title": title, "artist": artist, "mood": mood, "user": user}
                for t, title, artist, mood, user in plays
            ],
        }

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed table names
                for table in ("moods", "plays", "presence")
            }


class HistoryRecorder:
    """Event sink: history rows from the app's events, pruned to the retention hourly."""

    def __init__(
        self,
        store: HistoryStore,
        *,
        retention_days: float,
        household: Household | None = None,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.household = household
        self.retention_s = retention_days * 86400
        self._clock = clock
        self._next_prune = 0.0
        self._failed = False

    def emit(self, event: Event) -> None:
        try:
            if isinstance(event, UserForgotten):
                # The enrolled name as the store had it, whatever case the command used.
                erased = self.store.forget(event.user)
                if erased:
                    logger.info("erased %d history row(s) of %s", erased, event.user)
                return
            self.store.record(event)
            if isinstance(event, UserSignedIn) and self.household is not None:
                # Their face's mood was reported before they were recognised: from now
                # on it is theirs (the household has applied this sign-in already).
                face = next((f for f in self.household.faces if f.face_id == event.face_id), None)
                if face is not None:
                    self.store.record(
                        MoodChanged(
                            event.time, face.face_id, face.mood, None, {}, face.box, event.user
                        )
                    )
            now = self._clock()
            if now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY_S
                pruned = self.store.prune(now - self.retention_s)
                if pruned:
                    logger.info("history: deleted %d row(s) past retention", pruned)
        except sqlite3.Error as err:  # a full disk must not stop the speaker
            if not self._failed:
                logger.warning("history not recorded: %s (logged once)", err)
                self._failed = True
        else:
            if self._failed:
                logger.info("history recorded again")
                self._failed = False
