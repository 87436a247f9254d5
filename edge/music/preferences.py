"""Per-user, per-mood music preferences in SQLite: skips, replays and likes move feature weights.

Each piece of feedback is kept (table ``feedback``) and folded into weights of
the track, its genre and its artist for that listener in that mood (table
``weights``), in one transaction: ``record`` returns after the commit, and WAL
with synchronous=FULL keeps every committed record through a kill -9 or a
power cut. A signed-in listener's feedback also teaches the household profile
(at half strength), which is what unknown listeners get.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from edge.statedir import make_state_dir, private_umask, tighten, write_private_text

logger = logging.getLogger(__name__)

Feedback = Literal["skip", "like", "replay", "complete"]
PREFERENCES_DB = "music.sqlite"
NOW_PLAYING = "music_now.json"
HOUSEHOLD = "*household*"  # not a valid user name, so it cannot collide
HOUSEHOLD_SHARE = 0.5
MAX_WEIGHT = 4.0


@dataclass(frozen=True, slots=True)
class Delta:
    """How one piece of feedback moves the weights of a track, its genre, its artist."""

    track: float
    genre: float
    artist: float


DELTAS: Mapping[str, Delta] = {
    "skip": Delta(track=-1.0, genre=-0.6, artist=-0.3),
    "like": Delta(track=1.0, genre=0.5, artist=0.3),
    "replay": Delta(track=0.6, genre=0.3, artist=0.2),
    "complete": Delta(track=0.1, genre=0.05, artist=0.02),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    user TEXT NOT NULL,
    mood TEXT NOT NULL,
    track_id TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS weights (
    user TEXT NOT NULL,
    mood TEXT NOT NULL,
    feature TEXT NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (user, mood, feature)
);
"""


def features(track_id: str, genre: str | None, artist: str | None) -> dict[str, str]:
    """Feature name per part (track, genre, artist) of a track."""
    parts = {"track": f"track:{track_id}"}
    if genre:
        parts["genre"] = f"genre:{genre.lower()}"
    if artist:
        parts["artist"] = f"artist:{artist.lower()}"
    return parts


class PreferenceStore:
    """SQLite preference store; a context manager. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_state_dir(path.parent)
        self._lock = threading.Lock()
        tighten(path)
        # Listening habits per named user: owner only (SQLite gives -wal/-shm the same mode).
        with private_umask():
            self._db = sqlite3.connect(
                path, timeout=5.0, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # A forgotten user's rows are overwritten, not left in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)

    def __enter__(self) -> PreferenceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self,
        user: str | None,
        mood: str,
        track_id: str,
        kind: Feedback,
        *,
        genre: str | None = None,
        artist: str | None = None,
        when: float | None = None,
    ) -> None:
        """Keep one piece of feedback and update the weights; returns after the commit."""
        delta = DELTAS.get(kind)
        if delta is None:
            raise ValueError(f"unknown feedback {kind!r} (expected one of {sorted(DELTAS)})")
        profiles = [(user or HOUSEHOLD, 1.0)]
        if user:
            profiles.append((HOUSEHOLD, HOUSEHOLD_SHARE))
        parts = features(track_id, genre, artist)
        stamp = time.time() if when is None else when
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO feedback (time, user, mood, track_id, kind) VALUES (?,?,?,?,?)",
                    (stamp, user or HOUSEHOLD, mood, track_id, kind),
                )
                for profile, share in profiles:
                    for part, feature in parts.items():
                        change = share * getattr(delta, part)
                        self._db.execute(
                            "INSERT INTO weights (user, mood, feature, weight) VALUES (?,?,?,?) "
                            "ON CONFLICT (user, mood, feature) DO UPDATE SET "
                            "weight = max(?, min(?, weight + excluded.weight))",
                            (profile, mood, feature, change, -MAX_WEIGHT, MAX_WEIGHT),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def weights(self, user: str | None, mood: str) -> dict[str, float]:
        """A listener's feature weights in a mood; the household's for unknown or new listeners."""
        with self._lock:
            rows = self._query(user or HOUSEHOLD, mood)
            if not rows and user:
                rows = self._query(HOUSEHOLD, mood)
        return dict(rows)

    def blended(self, users: Iterable[str | None], mood: str) -> dict[str, float]:
        """The mean weights of everyone present (household for nobody known)."""
        listeners = list(dict.fromkeys(users)) or [None]
        blended: dict[str, float] = {}
        for user in listeners:
            for feature, weight in self.weights(user, mood).items():
                blended[feature] = blended.get(feature, 0.0) + weight / len(listeners)
        return blended

    def forget(self, user: str) -> int:
        """Delete every feedback and weight row of ``user`` (compared as the user store
        compares names: any case, any Unicode form) in one transaction; rows deleted.

        secure_delete overwrites the freed pages, VACUUM rewrites the file and the
        WAL is emptied, so the name is not left in free pages or old frames.
        """
        from edge.identify.store import fold_name

        with self._lock:
            self._db.create_function("moodbox_fold", 1, fold_name, deterministic=True)
            key = fold_name(user)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                deleted = 0
                for table in ("feedback", "weights"):
                    deleted += self._db.execute(
                        f"DELETE FROM {table} WHERE moodbox_fold(user) = ?",  # noqa: S608 - fixed names
                        (key,),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if deleted:
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(deleted)

    def feedback_count(self, user: str | None = None) -> int:
        with self._lock:
            if user is None:
                row = self._db.execute("SELECT count(*) FROM feedback").fetchone()
            else:
                row = self._db.execute(
                    "SELECT count(*) FROM feedback WHERE user = ?", (user,)
                ).fetchone()
        return int(row[0])

    def _query(self, user: str, mood: str) -> list[tuple[str, float]]:
        cursor = self._db.execute(
            "SELECT feature, weight FROM weights WHERE user = ? AND mood = ?", (user, mood)
        )
        return [(str(f), float(w)) for f, w in cursor.fetchall()]


def forget_listener(state_dir: Path, user: str) -> None:
    """Remove ``user`` from the music state in ``state_dir``: preferences and now-playing."""
    database = state_dir / PREFERENCES_DB
    if database.exists():
        with PreferenceStore(database) as store:
            store.forget(user)
    scrub_now_playing(state_dir / NOW_PLAYING, user)


def scrub_now_playing(path: Path, user: str) -> None:
    """Rewrite the now-playing file without ``user`` (it lists who was listening)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as err:
        logger.warning("%s: unreadable (%s); deleting it", path, err)
        path.unlink(missing_ok=True)
        return
    from edge.identify.store import fold_name

    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list):
        return
    kept = [
        name for name in users if not (isinstance(name, str) and fold_name(name) == fold_name(user))
    ]
    if kept != users:
        data["users"] = kept
        write_private_text(path, json.dumps(data))
