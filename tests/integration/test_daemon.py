"""The real daemon process end to end on the bundled demo clip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import FlakySource

from edge.app import App, RunLimits
from edge.config import load_config
from edge.events import Event, MoodChanged, StatusChanged


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process apps here keep their state in the test's folder, not the user's."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    env.update(
        {
            "SDL_AUDIODRIVER": "dummy",
            "SDL_VIDEODRIVER": "dummy",
            # fast demo: 10 fps and a short hold so both portraits get a mood
            "MOODBOX_CAMERA_FPS": "10",
            "MOODBOX_DECIDE_HOLD_S": "0.5",
        }
    )
    env.update(extra)
    return env


def test_demo_run_prints_mood_events(repo_root: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--max-frames", "26"],
        cwd=tmp_path,  # any working directory: config paths resolve against config.yaml
        # a face unseen for 0.2 s is gone: the 3 empty frames between the portraits end it
        env=daemon_env(
            STATE_DIRECTORY=str(tmp_path / "state"), MOODBOX_DECIDE_TRACK_TIMEOUT_S="0.2"
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    moods = [e for e in events if e["type"] == "mood_changed"]
    assert len({e["face_id"] for e in moods}) == 2  # astronaut and Grace Hopper
    for event in moods:
        assert set(event["probabilities"]) == {
            "angry",
            "disgust",
            "fear",
            "happy",
            "sad",
            "surprise",
            "neutral",
        }
        assert abs(sum(event["probabilities"].values()) - 1) < 0.01
        assert event["mood"] == max(event["probabilities"], key=event["probabilities"].get)
        x0, y0, x1, y1 = event["box"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
        assert event["time"].endswith("+00:00")
    assert any(e["type"] == "face_lost" for e in events)


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "run"],
        cwd=tmp_path,
        env=daemon_env(STATE_DIRECTORY=str(tmp_path / "state")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the loop is really running (its first event), however slow start-up is.
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("{"), first
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "signal SIGTERM: stopping" in err
    assert "stopped after" in err


def test_missing_model_exits_with_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--max-frames", "3"],
        cwd=tmp_path,
        env=daemon_env(MOODBOX_EMOTION_MODEL=str(tmp_path / "missing.tflite")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "missing.tflite is missing" in result.stderr


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def test_camera_loss_recovers_within_budget(repo_root: Path) -> None:
    from edge.camera import open_source

    config = load_config(
        repo_root / "config.yaml", environ={"MOODBOX_CAMERA_FPS": "0", "MOODBOX_DECIDE_HOLD_S": "0"}
    )
    sink = Collect()
    sleeps: list[float] = []
    app = App(
        config,
        source_factory=FlakySource(open_source, failures=2),
        sinks=[sink],
        sleep=sleeps.append,
    )
    assert app.run(RunLimits(max_frames=5)) == 0
    status = [(e.ok, e.component) for e in sink.events if isinstance(e, StatusChanged)]
    assert status == [(False, "camera"), (True, "camera")]  # loss and recovery once each
    assert sleeps == [1.0, 2.0]  # exponential backoff
    assert any(isinstance(e, MoodChanged) for e in sink.events)


def test_camera_loss_beyond_budget_exits_non_zero(repo_root: Path) -> None:
    from edge.camera import open_source

    config = load_config(
        repo_root / "config.yaml", environ={"MOODBOX_RUN_CAMERA_RESTART_BUDGET": "2"}
    )
    app = App(
        config,
        source_factory=FlakySource(open_source, failures=99),
        sinks=[],
        sleep=lambda _s: None,
    )
    assert app.run(RunLimits(max_frames=5)) == 3


@pytest.mark.parametrize("broken", ["sink"])
def test_a_failing_sink_does_not_stop_the_loop(repo_root: Path, broken: str) -> None:
    class Broken:
        def emit(self, event: Event) -> None:
            raise RuntimeError("boom")

    config = load_config(
        repo_root / "config.yaml", environ={"MOODBOX_CAMERA_FPS": "0", "MOODBOX_DECIDE_HOLD_S": "0"}
    )
    sink = Collect()
    app = App(config, sinks=[Broken(), sink])
    assert app.run(RunLimits(max_frames=4)) == 0
    assert any(isinstance(e, MoodChanged) for e in sink.events), broken


def test_a_loop_slower_than_the_camera_counts_dropped_frames(repo_root: Path) -> None:
    class Slow:
        """A service whose poll takes three frame periods at 20 fps."""

        def start(self, emit: object) -> None:
            pass

        def poll(self, now: float) -> None:
            time.sleep(0.15)

        def stop(self) -> None:
            pass

    config = load_config(
        repo_root / "config.yaml",
        environ={"MOODBOX_CAMERA_FPS": "20", "MOODBOX_RUN_EVENTS_STDOUT": "false"},
    )
    app = App(config, services=[Slow()], sinks=[])
    assert app.run(RunLimits(max_frames=4)) == 0
    # Three frames came late, each after about two missed slots.
    assert 4 <= app.stats.counters["dropped_frames"] <= 9
