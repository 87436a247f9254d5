"""`moodbox enroll --images` with the real detector and embedder: a face that already signs
in as someone else is refused without a terminal to ask on, unless --force; each stored
embedding carries the model's id; `users --json` gives ISO times."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from edge.identify.embed import model_id

ROOT = Path(__file__).resolve().parents[2]
GRACE = ROOT / "tests" / "data" / "grace_hopper.jpg"
ASTRONAUT = ROOT / "tests" / "data" / "astronaut.png"


def moodbox(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    env.update(
        STATE_DIRECTORY=str(tmp_path / "state"),
        MOODBOX_CONFIG=str(ROOT / "config.yaml"),
        SDL_AUDIODRIVER="dummy",
    )
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: nobody to ask
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_face_under_two_names(tmp_path: Path) -> None:
    first = moodbox(tmp_path, "enroll", "grace", "--images", str(GRACE))
    assert first.returncode == 0, first.stderr
    assert "enrolled grace" in first.stdout

    again = moodbox(tmp_path, "enroll", "amazing", "--images", str(GRACE))
    assert again.returncode == 1
    assert "warning: this face already signs in as grace" in again.stderr
    assert "error: not enrolling amazing: pass --force to store it anyway" in again.stderr

    other = moodbox(tmp_path, "enroll", "eileen", "--images", str(ASTRONAUT))
    assert other.returncode == 0, other.stderr  # another face: no question
    assert "already signs in" not in other.stderr

    forced = moodbox(tmp_path, "enroll", "amazing", "--images", str(GRACE), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "warning: this face already signs in as grace" in forced.stderr

    listed = moodbox(tmp_path, "users", "--json")
    users = json.loads(listed.stdout)
    assert [u["name"] for u in users] == ["amazing", "eileen", "grace"]
    for user in users:
        assert datetime.fromisoformat(user["created"]).utcoffset() is not None
        assert user["last_seen"] is None

    db = sqlite3.connect(tmp_path / "state" / "users.sqlite3")
    models = {row[0] for row in db.execute("SELECT model FROM embeddings")}
    db.close()
    assert models == {model_id(ROOT / "models" / "face_embedding.tflite")}
