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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError
from edge.identify.store_sync import SyncedStore, SyncRecord, add_sync_schema
from edge.statedir import make_state_dir, private_umask, tighten

__all__ = ["SyncRecord", "UserRecord", "UserStore", "check_name", "make_state_dir"]

logger = logging.getLogger(__name__)

# The store's schema, version by version: _MIGRATIONS[i] takes a store from
# version i (PRAGMA user_version) to i + 1, in one transaction with the version
# bump. Version 0 is an empty file or a store from before versions, whose tables
# step 1 leaves as they are (CREATE ... IF NOT EXISTS). Append, never edit.
_SCHEMA_V1 = """
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
_FOLD_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS users_fold ON users(fold)"

# The one face model whose embeddings stores held before they recorded a model:
# the SFace file shipped since face sign-in began (models/face_embedding.tflite).
LEGACY_MODEL_ID = "sha256:3c35208f2591f0a7"


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _create_tables(db: sqlite3.Connection) -> None:
    for statement in (part for part in _SCHEMA_V1.split(";") if part.strip()):
        db.execute(statement)


def _add_model_ids(db: sqlite3.Connection) -> None:
    """Which embedding model made each vector; vectors of another model are never compared."""
    if "model" not in _columns(db, "embeddings"):
        db.execute("ALTER TABLE embeddings ADD COLUMN model TEXT")
    # Every vector stored so far came from LEGACY_MODEL_ID (a test keeps the two equal).
    db.execute("UPDATE embeddings SET model = 'sha256:3c35208f2591f0a7' WHERE model IS NULL")


def _add_name_folds(db: sqlite3.Connection) -> None:
    """The folded name of each user, unique (stores from before versions may have it)."""
    if "fold" not in _columns(db, "users"):
        db.execute("ALTER TABLE users ADD COLUMN fold TEXT")
    rows = db.execute("SELECT id, name FROM users WHERE fold IS NULL").fetchall()
    for user_id, name in rows:
        db.execute("UPDATE users SET fold = ? WHERE id = ?", (fold_name(name), user_id))
    db.execute(_FOLD_INDEX)


# Each step is idempotent: a store from before versions may already have some of it.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_tables,  # 1: the first schema
    _add_model_ids,  # 2: embeddings.model
    _add_name_folds,  # 3: users.fold
)
SCHEMA_VERSION = len(_MIGRATIONS)

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
                self._migrate()
                add_sync_schema(self._db)
            except sqlite3.DatabaseError as err:
                raise ConfigError(
                    f"user store {self.path}: {err} (a corrupt file? move it away to start afresh)"
                ) from err
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in place, one committed step at a time."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"user store {self.path}: schema version {version} is newer than this "
                f"moodbox knows ({SCHEMA_VERSION}); upgrade moodbox"
            )
        for step in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                _MIGRATIONS[step](self._db)
                self._db.execute(f"PRAGMA user_version = {step + 1}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if version:
                logger.info("user store %s: schema version %d → %d", self.path, step, step + 1)

    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

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
        self,
        name: str,
        vectors: Sequence[np.ndarray] | np.ndarray,
        now: float | None = None,
        *,
        model: str | None = None,
    ) -> int:
        """Add samples to ``name`` (creating the user); returns their count once committed.

        ``model`` is the id of the embedder that made them (``embed.model_id``);
        None (test doubles) leaves it unrecorded.
        """
        name = check_name(name)
        now = time.time() if now is None else now
        rows = [np.asarray(v, dtype=np.float32).ravel() for v in vectors]
        if not rows:
            raise ValueError("no embeddings to store")
        with self._lock, self._transaction() as db:
            user_id = self._user_id(db, name, now)
            db.executemany(
                "INSERT INTO embeddings (user_id, dim, vector, created, model) "
                "VALUES (?, ?, ?, ?, ?)",
                [(user_id, len(row), row.tobytes(), now, model) for row in rows],
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

    def embeddings(self, model: str | None = None) -> dict[str, np.ndarray]:
        """Each user's samples as an (n, dim) float32 array; with ``model``, only the
        samples that model made (or that say no model), since vectors of two models
        live in different spaces and comparing them means nothing."""
        with self._lock:
            rows = self._db.execute(
                "SELECT u.name, e.dim, e.vector FROM embeddings e JOIN users u "
                "ON u.id = e.user_id WHERE ? IS NULL OR e.model IS NULL OR e.model = ? "
                "ORDER BY u.name, e.id",
                (model, model),
            ).fetchall()
        gallery: dict[str, list[np.ndarray]] = {}
        for name, dim, blob in rows:
            vector = np.frombuffer(blob, dtype=np.float32)
            if vector.size != dim:
                logger.warning("user %s: skipping a damaged embedding", name)
                continue
            gallery.setdefault(name, []).append(vector)
        return {name: np.stack(vectors) for name, vectors in gallery.items()}

    def other_models(self, model: str) -> dict[str, set[str]]:
        """Users with samples made by another embedding model than ``model``: name → models."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT u.name, e.model FROM embeddings e JOIN users u "
                "ON u.id = e.user_id WHERE e.model IS NOT NULL AND e.model != ?",
                (model,),
            ).fetchall()
        found: dict[str, set[str]] = {}
        for name, other in rows:
            found.setdefault(name, set()).add(other)
        return found

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
