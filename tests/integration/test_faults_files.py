"""Fault injection against the real daemon process: corrupt model and config files
give a clear error and the documented exit status, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import copy_frames, daemon_env, env_for


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    return copy_frames(tmp_path, 2)


def run_once(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "run", "--max-frames", "5", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "content",
    [b"", bytes(range(256)) * 64],
    ids=["empty", "binary-noise"],
)
def test_corrupt_model_is_a_clear_fatal_error(tmp_path: Path, frames: Path, content: bytes) -> None:
    model = tmp_path / "emotion.tflite"
    model.write_bytes(content)
    result = run_once(tmp_path, env_for(tmp_path, frames, MOODBOX_EMOTION_MODEL=str(model)))
    assert result.returncode == 1
    assert f"error: cannot load model {model}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_model_names_the_file(tmp_path: Path, frames: Path) -> None:
    missing = tmp_path / "nowhere" / "detector.tflite"
    result = run_once(tmp_path, env_for(tmp_path, frames, MOODBOX_DETECT_MODEL=str(missing)))
    assert result.returncode == 1
    assert f"model file {missing} is missing" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("camera:\n  fps: 5\n  fsp: 7\n", "camera.fsp (line 3)"),
        ("camera:\n  fps: fast\n", "camera.fps (line 2)"),
        ("camera:\n  fps: 5\n   source: [unclosed\n", "(line 3)"),
        ("\x00\x01binary garbage", "not valid YAML"),
    ],
    ids=["unknown-key", "wrong-type", "broken-yaml", "binary"],
)
def test_corrupt_config_exits_2_with_the_line(
    tmp_path: Path, frames: Path, text: str, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    result = run_once(tmp_path, daemon_env(tmp_path), "--config", str(config))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
