"""The state directory and its files: created private, never loosened, refused when shared.

Issue 16, finding 6: a read-only `moodbox users` with a state dir pointing at a
shared 1777 folder made it drwx------ (through a symlink too), and the music
files beside the user store were 0644. These run the real CLI and daemon.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import daemon_env, run_cli
from music_audio import write_wav

from edge.errors import ConfigError
from edge.identify.store import UserStore
from edge.music.preferences import PreferenceStore
from edge.statedir import make_state_dir, write_private_text

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


moodbox = run_cli


@pytest.fixture
def shared_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    return folder


def test_users_refuses_a_world_writable_state_dir_and_leaves_its_mode(
    tmp_path: Path, shared_folder: Path
) -> None:
    result = moodbox(tmp_path, shared_folder, "users")
    assert result.returncode == 2, result.stderr
    assert "other users can write to it" in result.stderr
    assert "Traceback" not in result.stderr
    assert mode(shared_folder) == 0o1777
    assert not (shared_folder / UserStore.FILENAME).exists()


def test_a_symlink_to_a_shared_folder_is_refused_and_not_followed_to_chmod(
    tmp_path: Path, shared_folder: Path
) -> None:
    link = tmp_path / "state-link"
    link.symlink_to(shared_folder)
    result = moodbox(tmp_path, link, "users")
    assert result.returncode == 2
    assert mode(shared_folder) == 0o1777
    assert link.is_symlink()


def test_the_daemon_refuses_a_group_writable_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o770)
    result = moodbox(tmp_path, state, "run", "--max-frames", "3")
    assert result.returncode == 2, result.stderr
    assert "state directory" in result.stderr and "0770" in result.stderr
    assert mode(state) == 0o770


def test_an_existing_private_enough_dir_keeps_its_mode(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o750)
    result = moodbox(tmp_path, state, "users")
    assert result.returncode == 0, result.stderr
    assert mode(state) == 0o750
    assert mode(state / UserStore.FILENAME) == 0o600


def test_a_missing_state_dir_is_created_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = make_state_dir(tmp_path / "a" / "state")
    finally:
        os.umask(old)
    assert mode(path) == 0o700
    (path / "file").touch()
    with pytest.raises(ConfigError, match="not a directory"):
        make_state_dir(path / "file")


def test_files_an_older_version_left_0644_are_tightened(tmp_path: Path) -> None:
    state = make_state_dir(tmp_path / "state")
    with PreferenceStore(state / "music.sqlite") as prefs:
        prefs.record("Ada", "happy", "t1", "like")
    (state / "music.sqlite").chmod(0o644)
    with PreferenceStore(state / "music.sqlite"):
        pass
    assert mode(state / "music.sqlite") == 0o600


def test_write_private_text_does_not_write_through_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    target = tmp_path / "now.json"
    (tmp_path / "now.json.tmp").symlink_to(outside)
    with pytest.raises(OSError):
        write_private_text(target, "{}")
    assert outside.read_text() == "keep"


def test_every_file_the_daemon_writes_in_the_state_dir_is_0600(tmp_path: Path) -> None:
    music = tmp_path / "music"
    for index, mood in enumerate(("happy", "sad", "neutral")):
        write_wav(music / mood / f"{mood}.wav", seconds=0.5, freq=300 + 100 * index)
    state = tmp_path / "state"
    old = os.umask(0o022)  # the usual login umask; files must not inherit 0644 from it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--max-seconds", "8"],
            cwd=tmp_path,
            env=daemon_env(
                tmp_path,
                STATE_DIRECTORY=str(state),
                MOODBOX_MUSIC_FOLDERS=f"[{music}]",
                MOODBOX_CAMERA_FPS="20",
            ),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert mode(state) == 0o700
    files = [path for path in state.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"music.sqlite", "music_library.json", "music_now.json"} <= names, names
    assert {path.name: oct(mode(path)) for path in files} == {
        path.name: oct(0o600) for path in files
    }
