"""The user store's side of people sync (rooms.sync): the schema change, versions, tombstones.

Kept apart from ``store.py`` so the store's own schema and migrations stay its
own: the store calls ``add_sync_schema`` once when it opens and inherits these
methods; ``edge/identify/sync.py`` (the household protocol) is their one user.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np


def add_sync_schema(db: sqlite3.Connection) -> None:
    """People sync (rooms.sync): per-person versions on users, and tombstones. Idempotent.

    ``sync_id`` is the person's opaque household id (a keyed hash the sync layer
    assigns), ``sync_version``/``sync_origin`` the last write (a per-person Lamport
    clock and the box that made it), ``sync_dirty`` a local change not yet shared.
    A tombstone keeps only the id and version of a forgotten person, never a name.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
    for column, declaration in (
        ("sync_id", "TEXT"),
        ("sync_version", "INTEGER NOT NULL DEFAULT 0"),
        ("sync_origin", "TEXT NOT NULL DEFAULT ''"),
        ("sync_dirty", "INTEGER NOT NULL DEFAULT 1"),
    ):
        if column not in columns:
            db.execute(f"ALTER TABLE users ADD COLUMN {column} {declaration}")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS users_sync_id ON users(sync_id)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS sync_tombstones (sync_id TEXT PRIMARY KEY, "
        "version INTEGER NOT NULL, origin TEXT NOT NULL, pending INTEGER NOT NULL)"
    )


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """One person as the household shares them: live (name and vectors) or a tombstone."""

    person_id: str
    version: int
    origin: str
    name: str | None = None  # None: forgotten
    vectors: np.ndarray | None = None  # (n, dim) float32

    @property
    def deleted(self) -> bool:
        return self.name is None

    @property
    def order(self) -> tuple[int, str]:
        """Last writer wins: the higher version, then the higher origin on a tie."""
        return (self.version, self.origin)


class SyncedStore:
    """Versions and tombstones over the store's connection (mixed into ``UserStore``)."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _user_id(self, db: sqlite3.Connection, name: str, now: float) -> int:
        raise NotImplementedError

    def sync_take_local(
        self, person_id: Callable[[str], str], origin: str, floor: Callable[[str], int]
    ) -> list[SyncRecord]:
        """Version this box's unshared changes (enrolments, forgets) and return them.

        One transaction, so an enrolment committed meanwhile waits for the next call.
        Each new version is above the person's stored one, their tombstone's and
        ``floor(id)`` (the highest the broker has shown), as a Lamport clock is.
        """
        out: list[SyncRecord] = []
        with self._lock, self._transaction() as db:
            rows = db.execute(
                "SELECT id, name, fold, sync_id, sync_version FROM users WHERE sync_dirty = 1"
            ).fetchall()
            for user_id, name, fold, sync_id, version in rows:
                pid = sync_id or person_id(fold)
                tomb = db.execute(
                    "SELECT version FROM sync_tombstones WHERE sync_id = ?", (pid,)
                ).fetchone()
                new = max(version, tomb[0] if tomb else 0, floor(pid)) + 1
                db.execute("DELETE FROM sync_tombstones WHERE sync_id = ?", (pid,))
                db.execute(
                    "UPDATE users SET sync_id = ?, sync_version = ?, sync_origin = ?, "
                    "sync_dirty = 0 WHERE id = ?",
                    (pid, new, origin, user_id),
                )
                out.append(SyncRecord(pid, new, origin, name, self._vectors(db, user_id)))
            for pid, version in db.execute(
                "SELECT sync_id, version FROM sync_tombstones WHERE pending = 1"
            ).fetchall():
                new = max(version, floor(pid)) + 1
                db.execute(
                    "UPDATE sync_tombstones SET version = ?, origin = ?, pending = 0 "
                    "WHERE sync_id = ?",
                    (new, origin, pid),
                )
                out.append(SyncRecord(pid, new, origin))
        return out

    def sync_records(self) -> list[SyncRecord]:
        """Every shared person this box knows: live ones and tombstones (not pending ones)."""
        with self._lock:
            users = self._db.execute(
                "SELECT id, name, sync_id, sync_version, sync_origin FROM users "
                "WHERE sync_id IS NOT NULL AND sync_dirty = 0"
            ).fetchall()
            out = [
                SyncRecord(pid, version, origin, name, self._vectors(self._db, user_id))
                for user_id, name, pid, version, origin in users
            ]
            tombs = self._db.execute(
                "SELECT sync_id, version, origin FROM sync_tombstones WHERE pending = 0"
            ).fetchall()
        return out + [SyncRecord(pid, version, origin) for pid, version, origin in tombs]

    def sync_record(self, person_id: str) -> SyncRecord | None:
        """What this box holds for ``person_id`` (a tombstone, a person), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, sync_version, sync_origin FROM users WHERE sync_id = ?",
                (person_id,),
            ).fetchone()
            if row is not None:
                user_id, name, version, origin = row
                vectors = self._vectors(self._db, user_id)
                return SyncRecord(person_id, version, origin, name, vectors)
            tomb = self._db.execute(
                "SELECT version, origin FROM sync_tombstones WHERE sync_id = ?", (person_id,)
            ).fetchone()
        return None if tomb is None else SyncRecord(person_id, tomb[0], tomb[1])

    def sync_apply(self, record: SyncRecord, now: float | None = None) -> None:
        """Take another box's newer version of a person: their name and samples replace
        ours, or (a tombstone) only the tombstone is stored; use ``forget_user`` first
        to delete a person who is enrolled here."""
        now = time.time() if now is None else now
        with self._lock, self._transaction() as db:
            if record.name is None or record.vectors is None:
                db.execute(
                    "INSERT OR REPLACE INTO sync_tombstones (sync_id, version, origin, pending) "
                    "VALUES (?, ?, ?, 0)",
                    (record.person_id, record.version, record.origin),
                )
                return
            row = db.execute(
                "SELECT id FROM users WHERE sync_id = ?", (record.person_id,)
            ).fetchone()
            # The id is a hash of the name the person was first shared under: a user
            # enrolled here under that name (not yet shared) is this person. A rename
            # keeps the id, so the winner's name (and its folded form) is taken as it is.
            user_id = int(row[0]) if row else self._user_id(db, record.name, now)
            folded = unicodedata.normalize("NFC", record.name).strip().casefold()
            db.execute(
                "UPDATE users SET name = ?, fold = ? WHERE id = ?", (record.name, folded, user_id)
            )
            db.execute("DELETE FROM embeddings WHERE user_id = ?", (user_id,))
            vectors = np.ascontiguousarray(record.vectors, dtype=np.float32)
            db.executemany(
                "INSERT INTO embeddings (user_id, dim, vector, created) VALUES (?, ?, ?, ?)",
                [(user_id, vectors.shape[1], v.tobytes(), now) for v in vectors],
            )
            db.execute("DELETE FROM sync_tombstones WHERE sync_id = ?", (record.person_id,))
            db.execute(
                "UPDATE users SET sync_id = ?, sync_version = ?, sync_origin = ?, sync_dirty = 0 "
                "WHERE id = ?",
                (record.person_id, record.version, record.origin, user_id),
            )

    @staticmethod
    def _vectors(db: sqlite3.Connection, user_id: int) -> np.ndarray:
        rows = db.execute(
            "SELECT dim, vector FROM embeddings WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
        vectors = [np.frombuffer(blob, dtype=np.float32) for dim, blob in rows]
        vectors = [v for v, (dim, _) in zip(vectors, rows, strict=True) if v.size == dim]
        return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
