"""Config: strict keys, line numbers in errors, env overrides, check-config exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config
from edge.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_env")


def test_repository_config_is_valid(repo_root: Path) -> None:
    config = load_config(repo_root / "config.yaml", environ={})
    assert config.camera.type == "replay"
    assert config.resolve(config.camera.source) == repo_root / "demo" / "faces"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    config = load_config(path, environ={})
    assert config.detect.min_score == 0.6
    assert config.decide.hold_s == 1.5


def test_unknown_key_reports_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  type: replay\n  fsp: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert any("camera.fsp (line 3)" in p and "Extra inputs" in p for p in info.value.problems)


def test_bad_value_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("general:\n  log_level: INFO\ndetect:\n  min_score: 7\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        "detect.min_score (line 4): Input should be less than or equal to 1"
    ]


def test_unknown_type_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  type: webcam\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "camera.type (line 2)" in info.value.problems[0]


def test_env_overrides_win_and_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  fps: 5\n")
    config = load_config(
        path,
        environ={
            "MOODBOX_CAMERA_FPS": "12.5",
            "MOODBOX_CAMERA_LOOP": "false",
            "MOODBOX_GENERAL_DEVICE_ID": "kitchen",
        },
    )
    assert config.camera.fps == 12.5
    assert config.camera.loop is False
    assert config.general.device_id == "kitchen"


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"MOODBOX_CAMERA_FPS": "fast", "MOODBOX_CAMERA_NOPE": "1"})
    problems = "\n".join(info.value.problems)
    assert "MOODBOX_CAMERA_NOPE: unknown setting" in problems
    assert "camera.fps (env MOODBOX_CAMERA_FPS)" in problems


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("camera:\n  type: [replay\n")
    with pytest.raises(ConfigError, match=r"line [23]"):
        load_config(path, environ={})


def test_check_config_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    assert main(["check-config", str(repo_root / "config.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera:\n  fps: -1\nmusic_typo: {}\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "camera.fps (line 2)" in err
    assert "music_typo (line 3)" in err


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", environ={})
