"""Enrolled users in SQLite under the state directory: names, embeddings, times. Never photos
unless the opt-in debug setting stores them, and then only for a limited time.

Every write is one transaction that has committed when the method returns;
the database runs in WAL mode with ``synchronous=FULL`` so a crash or a
``kill -9`` loses nothing that a method reported as stored.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError
from edge.identify.store_sync import SyncedStore, SyncRecord, add_sync_schema
from edge.statedir import make_state_dir, private_umask, tighten

__all__ = ["SyncRecord", "UserRecord", "UserStore", "check_name", "make_state_dir"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_seen REAL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS debug_images (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS embeddings_user ON embeddings(user_id);
CREATE INDEX IF NOT EXISTS debug_images_user ON debug_images(user_id);
"""

# Added after the first release: the NFC, case-folded name, unique, so "José" typed as
# one code point or as e + combining accent, or as "JOSÉ", is one user.
_FOLD_MIGRATION = """
ALTER TABLE users ADD COLUMN fold TEXT;
"""
_FOLD_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS users_fold ON users(fold)"

MAX_NAME_LENGTH = 64


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One enrolled person as listed by ``moodbox users``."""

    name: str
    created: float
    last_seen: float | None
    samples: int


def check_name(name: str) -> str:
    """A user name, NFC-normalised and stripped; ValueError if it is empty, too long or has
    control characters."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH or not cleaned.isprintable():
        raise ValueError(f"user name {name!r} must be 1 to {MAX_NAME_LENGTH} printable characters")
    return cleaned


def fold_name(name: str) -> str:
    """The form two names are compared in: NFC, stripped, case-folded."""
    return unicodedata.normalize("NFC", name).strip().casefold()


class UserStore(SyncedStore):
    """The enrolled users database. Thread-safe: one connection behind a lock."""

    FILENAME = "users.sqlite3"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        make_state_dir(self.path.parent)
        tighten(self.path)
        # The database file (SQLite gives its -wal/-shm siblings the same mode): owner only.
        with private_umask():
            try:
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.execute("PRAGMA secure_delete=ON")  # forgotten faces are overwritten
                self._db.execute("PRAGMA busy_timeout=5000")
                self._db.executescript(_SCHEMA)  # idempotent; executescript commits by itself
                self._migrate()
                add_sync_schema(self._db)
            except sqlite3.DatabaseError as err:
                raise ConfigError(
                    f"user store {self.path}: {err} (a corrupt file? move it away to start afresh)"
                ) from err
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(users)")}
        if "fold" not in columns:
            self._db.executescript(_FOLD_MIGRATION)
        rows = self._db.execute("SELECT id, name FROM users WHERE fold IS NULL").fetchall()
        for user_id, name in rows:
            self._db.execute("UPDATE users SET fold = ? WHERE id = ?", (fold_name(name), user_id))
        self._db.execute(_FOLD_INDEX)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> UserStore:
        return cls(make_state_dir(state_dir) / cls.FILENAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add_embeddings(
        self, name: str, vectors: Sequence[np.ndarray] | np.ndarray, now: float | None = None
    ) -> int:
        """Add samples to ``name`` (creating the user); returns their count once committed."""
        name = check_name(name)
        now = time.time() if now is None else now
        rows = [np.asarray(v, dtype=np.float32).ravel() for v in vectors]
        if not rows:
            raise ValueError("no embeddings to store")
        with self._lock, self._transaction() as db:
            user_id = self._user_id(db, name, now)
            db.executemany(
                "INSERT INTO embeddings (user_id, dim, vector, created) VALUES (?, ?, ?, ?)",
                [(user_id, len(row), row.tobytes(), now) for row in rows],
            )
            db.execute("UPDATE users SET sync_dirty = 1 WHERE id = ?", (user_id,))
            (count,) = db.execute(
                "SELECT COUNT(*) FROM embeddings WHERE user_id = ?", (user_id,)
            ).fetchone()
        return int(count)

    def _user_id(self, db: sqlite3.Connection, name: str, now: float) -> int:
        # The first spelling stays the user's name; later ones add to the same user.
        db.execute(
            "INSERT OR IGNORE INTO users (name, fold, created) VALUES (?, ?, ?)",
            (name, fold_name(name), now),
        )
        (user_id,) = db.execute(
            "SELECT id FROM users WHERE fold = ?", (fold_name(name),)
        ).fetchone()
        return int(user_id)

    def find(self, name: str) -> str | None:
        """The enrolled name that ``name`` denotes (any case, any Unicode form), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name FROM users WHERE fold = ?", (fold_name(name),)
            ).fetchone()
        return None if row is None else str(row[0])

    def users(self) -> list[UserRecord]:
        """Every enrolled user, by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.name, u.created, u.last_seen, COUNT(e.id) FROM users u "
                "LEFT JOIN embeddings e ON e.user_id = u.id GROUP BY u.id ORDER BY u.name"
            ).fetchall()
        return [UserRecord(name, created, seen, int(n)) for name, created, seen, n in rows]

    def embeddings(self) -> dict[str, np.ndarray]:
        """Each user's samples as an (n, dim) float32 array."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.name, e.dim, e.vector FROM embeddings e JOIN users u "
                "ON u.id = e.user_id ORDER BY u.name, e.id"
            ).fetchall()
        gallery: dict[str, list[np.ndarray]] = {}
        for name, dim, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32)
            if vector.size != dim:
                logger.warning("user %s: skipping a damaged embedding", name)
                continue
            gallery.setdefault(name, []).append(vector)
        return {name: np.stack(vectors) for name, vectors in gallery.items()}

    def forget(self, name: str) -> bool:
        """Remove the user and every embedding and image of them; False if unknown."""
        with self._lock, self._transaction() as db:
            # A person the household shares leaves a tombstone for the sync layer to publish.
            db.execute(
                "INSERT OR REPLACE INTO sync_tombstones (sync_id, version, origin, pending) "
                "SELECT sync_id, sync_version, sync_origin, 1 FROM users "
                "WHERE fold = ? AND sync_id IS NOT NULL",
                (fold_name(name),),
            )
            deleted = db.execute("DELETE FROM users WHERE fold = ?", (fold_name(name),)).rowcount
        if deleted:
            # Old copies of the rows may linger in the WAL: rewrite, then empty it.
            with self._lock:
                self._db.execute("VACUUM")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return bool(deleted)

    def rename(self, old: str, new: str) -> bool:
        """Give ``old``'s samples the name ``new``; False if ``old`` is unknown.

        ValueError if ``new`` is not a valid name or someone already has it.
        """
        new = check_name(new)
        with self._lock, self._transaction() as db:
            # Names compare as fold_name does (any case, any Unicode form), so a rename
            # that only changes case is allowed and one onto another's name is not.
            taken = db.execute("SELECT fold FROM users WHERE fold = ?", (fold_name(new),))
            if taken.fetchone() and fold_name(new) != fold_name(old):
                raise ValueError(f"{new!r} is already enrolled")
            # sync_dirty: a box that shares its people sends the new name under the
            # person's household id (the id stays, so the others rename, not re-enrol).
            renamed = db.execute(
                "UPDATE users SET name = ?, fold = ?, sync_dirty = 1 WHERE fold = ?",
                (new, fold_name(new), fold_name(old)),
            ).rowcount
        return bool(renamed)

    def touch(self, name: str, now: float) -> None:
        """Record that ``name`` was just recognised."""
        with self._lock, self._transaction() as db:
            db.execute("UPDATE users SET last_seen = ? WHERE fold = ?", (now, fold_name(name)))

    def add_debug_image(self, name: str, jpeg: bytes, now: float) -> None:
        """Opt-in debug only: keep one face image of ``name``."""
        with self._lock, self._transaction() as db:
            user_id = self._user_id(db, check_name(name), now)
            db.execute(
                "INSERT INTO debug_images (user_id, jpeg, created) VALUES (?, ?, ?)",
                (user_id, jpeg, now),
            )

    def data_version(self) -> int:
        """Changes whenever another connection (the CLI beside the daemon) commits."""
        with self._lock:
            (version,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(version)

    def debug_image_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM debug_images").fetchone()
        return int(count)

    def prune_debug_images(self, older_than: float) -> int:
        """Delete debug images created before ``older_than``; how many went."""
        with self._lock, self._transaction() as db:
            return int(
                db.execute("DELETE FROM debug_images WHERE created < ?", (older_than,)).rowcount
            )
