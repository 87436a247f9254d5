"""The user store's schema version and migrations, the embedding model's id, and the
enrolment guard against one face under two names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.identify.embed import embedder_model_id, model_id, normalise
from edge.identify.recognize import Gallery, resembling
from edge.identify.store import LEGACY_MODEL_ID, SCHEMA_VERSION, UserStore

ROOT = Path(__file__).resolve().parents[2]

# The store as it was before schema versions (user_version 0, no model column).
OLD_SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL,
    last_seen REAL);
CREATE TABLE embeddings (id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    dim INTEGER NOT NULL, vector BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE debug_images (id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL, created REAL NOT NULL);
"""


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return normalise(np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32))


def old_store(path: Path) -> np.ndarray:
    rows = vectors(3)
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO users (name, created, last_seen) VALUES ('ada', 1.0, 2.0)")
    db.executemany(
        "INSERT INTO embeddings (user_id, dim, vector, created) VALUES (1, 128, ?, 1.0)",
        [(row.tobytes(),) for row in rows],
    )
    db.commit()
    db.close()
    return rows


def test_a_new_store_has_the_current_version(tmp_path: Path) -> None:
    with UserStore(tmp_path / "u.sqlite3") as store:
        assert store.schema_version() == SCHEMA_VERSION == 3


def test_an_old_store_is_migrated_in_place_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    rows = old_store(path)
    with UserStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        [user] = store.users()
        assert (user.name, user.created, user.last_seen, user.samples) == ("ada", 1.0, 2.0, 3)
        np.testing.assert_array_equal(store.embeddings(LEGACY_MODEL_ID)["ada"], rows)
        assert store.other_models(LEGACY_MODEL_ID) == {}
    with UserStore(path) as again:  # opening again changes nothing
        assert again.schema_version() == SCHEMA_VERSION
        assert len(again.embeddings()["ada"]) == 3
    db = sqlite3.connect(path)
    assert db.execute("SELECT fold FROM users").fetchall() == [("ada",)]
    db.close()


def test_a_store_with_name_folds_but_no_version_is_migrated(tmp_path: Path) -> None:
    # What the release with name folding wrote: the fold column and index, user_version 0.
    path = tmp_path / "u.sqlite3"
    old_store(path)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE users ADD COLUMN fold TEXT")
    db.execute("UPDATE users SET fold = 'ada'")
    db.execute("CREATE UNIQUE INDEX users_fold ON users(fold)")
    db.commit()
    db.close()
    with UserStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert [u.name for u in store.users()] == ["ada"]
        assert len(store.embeddings(LEGACY_MODEL_ID)["ada"]) == 3


def test_a_store_from_a_newer_moodbox_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer than this moodbox knows"):
        UserStore(path)


def test_the_legacy_id_is_the_shipped_model() -> None:
    assert model_id(ROOT / "models" / "face_embedding.tflite") == LEGACY_MODEL_ID
    source = (ROOT / "edge" / "identify" / "store.py").read_text()
    assert f"SET model = '{LEGACY_MODEL_ID}'" in source


def test_vectors_of_another_model_are_not_compared(tmp_path: Path) -> None:
    with UserStore(tmp_path / "u.sqlite3") as store:
        store.add_embeddings("ada", vectors(2), model="sha256:aaaa")
        store.add_embeddings("bob", vectors(2, 1), model="sha256:bbbb")
        store.add_embeddings("cy", vectors(1, 2))  # a test double's: no model recorded
        assert set(store.embeddings("sha256:aaaa")) == {"ada", "cy"}
        assert set(store.embeddings()) == {"ada", "bob", "cy"}
        assert store.other_models("sha256:aaaa") == {"bob": {"sha256:bbbb"}}


def test_the_stage_warns_with_the_way_to_re_enrol(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from edge.config import IdentifyConfig
    from edge.identify.stage import IdentityStage

    class Embedder:
        dim = 128
        model_id = "sha256:new"

        def embed(self, face: np.ndarray) -> np.ndarray:
            return vectors(1)[0]

    store = UserStore(tmp_path / "u.sqlite3")
    store.add_embeddings("ada", vectors(2), model="sha256:old")
    store.add_embeddings("bob", vectors(2, 1), model="sha256:new")
    stage = IdentityStage(IdentifyConfig(background=False), embedder=Embedder(), store=store)
    try:
        assert stage.recognizer.gallery.names == ("bob",)
        text = caplog.text
        assert "user ada was enrolled with another face model (sha256:old" in text
        assert "re-enrol: moodbox forget ada && moodbox enroll ada" in text
        assert embedder_model_id(Embedder()) == "sha256:new"
        assert embedder_model_id(object()) is None  # type: ignore[arg-type]
    finally:
        stage.close()
        store.close()


def test_resembling_names_others_the_face_would_sign_in_as() -> None:
    ada, bob = vectors(4, 1), vectors(4, 2)
    gallery = Gallery.from_embeddings({"ada": ada, "bob": bob})
    near_ada = normalise(ada + 0.05 * vectors(4, 3))
    assert resembling(near_ada, gallery, threshold=0.5, besides="carol") == ["ada"]
    assert resembling(near_ada, gallery, threshold=0.5, besides="ada") == []
    assert resembling(vectors(4, 9), gallery, threshold=0.5, besides="carol") == []
    assert resembling(near_ada, Gallery.empty(), threshold=0.5, besides="carol") == []


def test_users_marks_people_enrolled_with_another_model(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_env: None,
) -> None:
    import json

    from edge.cli import main

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("MOODBOX_CONFIG", str(ROOT / "config.yaml"))
    with UserStore.in_state_dir(tmp_path / "state") as store:
        store.add_embeddings("ada", vectors(2), model="sha256:old")
        store.add_embeddings("bob", vectors(2, 1), model=LEGACY_MODEL_ID)
    assert main(["users"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ada\t2 samples")
    assert lines[0].endswith(
        "enrolled with another face model: re-enrol: moodbox forget ada && moodbox enroll ada"
    )
    assert "another face model" not in lines[1]
    assert main(["users", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["other_model"]) for u in listed] == [("ada", True), ("bob", False)]
