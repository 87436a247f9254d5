"""The enrolled-user store on real SQLite files: durability settings, privacy, forgetting."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.identify.store import UserStore, check_name


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)


def test_state_dir_and_files_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state" / "moodbox"
    with UserStore.in_state_dir(state) as store:
        store.add_embeddings("ada", vectors(2), now=1.0)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / UserStore.FILENAME).stat().st_mode) & 0o077 == 0


def test_embeddings_survive_reopening_and_accumulate(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    with UserStore(path) as store:
        assert store.add_embeddings("ada", vectors(3, 1), now=10.0) == 3
    with UserStore(path) as store:
        assert store.add_embeddings("ada", vectors(2, 2), now=20.0) == 5
        store.add_embeddings("bob", vectors(1, 3), now=30.0)
        store.touch("ada", 40.0)
        users = {u.name: u for u in store.users()}
        gallery = store.embeddings()
    assert users["ada"].samples == 5 and users["ada"].created == 10.0
    assert users["ada"].last_seen == 40.0 and users["bob"].last_seen is None
    np.testing.assert_array_equal(gallery["ada"][:3], vectors(3, 1))
    assert gallery["bob"].shape == (1, 128)


def test_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    with UserStore(path) as store:
        store.add_embeddings("ada", vectors(1))
        mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = store._db.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal"
    assert sync == 2  # FULL
    # Another connection (the CLI beside the daemon) sees committed rows at once.
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1


def test_forget_removes_every_trace(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    with UserStore(path) as store:
        store.add_embeddings("ada", vectors(3))
        store.add_debug_image("ada", b"\xff\xd8jpeg", 1.0)
        store.add_embeddings("bob", vectors(1, seed=7))
        assert store.forget("ada")
        assert not store.forget("ada")
        assert [u.name for u in store.users()] == ["bob"]
        assert store.debug_image_count() == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    # The deleted bytes are gone from the file, not just unlinked from the tables.
    ada_bytes = vectors(3)[0].tobytes()[:32]
    assert ada_bytes not in path.read_bytes()


def test_debug_images_expire(tmp_path: Path) -> None:
    with UserStore(tmp_path / "u.sqlite3") as store:
        store.add_debug_image("ada", b"old", 100.0)
        store.add_debug_image("ada", b"new", 200.0)
        assert store.prune_debug_images(150.0) == 1
        assert store.debug_image_count() == 1


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with UserStore(tmp_path / "u.sqlite3") as store:
        with pytest.raises(ValueError, match="no embeddings"):
            store.add_embeddings("ada", [])
        assert store.users() == []


@pytest.mark.parametrize("name", ["", "   ", "a" * 65, "bad\nname"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="printable characters"):
        check_name(name)


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "users.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="corrupt"):
        UserStore(path)
