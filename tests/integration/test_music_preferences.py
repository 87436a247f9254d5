"""Preference store: real SQLite files, household defaults, blending, survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.music.preferences import HOUSEHOLD, PreferenceStore


def test_feedback_moves_track_genre_and_artist_weights(tmp_path: Path) -> None:
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        store.record("ann", "sad", "t1", "skip", genre="Metal", artist="X")
        store.record("ann", "sad", "t1", "skip", genre="metal", artist="x")
        store.record("ann", "happy", "t1", "like", genre="metal", artist="x")
        sad = store.weights("ann", "sad")
        assert sad["track:t1"] == pytest.approx(-2.0)
        assert sad["genre:metal"] == pytest.approx(-1.2)
        assert sad["artist:x"] == pytest.approx(-0.6)
        assert store.weights("ann", "happy")["track:t1"] == pytest.approx(1.0)
        assert store.feedback_count("ann") == 3
        with pytest.raises(ValueError, match="unknown feedback"):
            store.record("ann", "sad", "t1", "love")  # type: ignore[arg-type]


def test_weights_are_clipped(tmp_path: Path) -> None:
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        for _ in range(10):
            store.record(None, "neutral", "t1", "skip")
        assert store.weights(None, "neutral")["track:t1"] == pytest.approx(-4.0)


def test_unknown_and_new_listeners_get_the_household(tmp_path: Path) -> None:
    with PreferenceStore(tmp_path / "p.sqlite") as store:
        store.record("ann", "calm", "t1", "like", genre="jazz")
        household = store.weights(None, "calm")
        assert household["track:t1"] == pytest.approx(0.5)  # half strength
        assert store.weights("bob", "calm") == household  # bob has no own weights yet
        store.record("bob", "calm", "t2", "skip")
        assert "track:t1" not in store.weights("bob", "calm")
        blended = store.blended(["ann", "bob"], "calm")
        assert blended["track:t1"] == pytest.approx(0.5)
        assert blended["track:t2"] == pytest.approx(-0.5)
        assert store.feedback_count(HOUSEHOLD) == 0  # the log keeps who gave the feedback


def test_records_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from edge.music.preferences import PreferenceStore\n"
        "store = PreferenceStore(Path(sys.argv[1]))\n"
        "for i in range(25):\n"
        "    store.record('ann', 'sad', f't{i}', 'like', genre='pop')\n"
        "print('done', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "done"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with PreferenceStore(db) as store:
        assert store.feedback_count("ann") == 25
        weights = store.weights("ann", "sad")
    assert len([f for f in weights if f.startswith("track:")]) == 25
    assert weights["genre:pop"] == pytest.approx(4.0)  # 25 x 0.5, clipped
