"""Which config file a command reads, how MOODBOX_* variables are read, where state lives,
and the device id a box gets when nobody sets one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge import config as config_module
from edge.cli import main
from edge.config import (
    DEFAULT_CONFIG,
    GeneralConfig,
    MoodboxConfig,
    device_id_from,
    find_config,
    load_config,
    resolve_state_dir,
)
from edge.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_env")

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_lookup_order(tmp_path: Path) -> None:
    system = tmp_path / "etc" / "moodbox" / "config.yaml"
    xdg_home = tmp_path / "xdg"
    user = xdg_home / "moodbox" / "config.yaml"
    env = {"XDG_CONFIG_HOME": str(xdg_home)}

    # Nothing installed: the bundled demo.
    assert find_config(environ=env, system_config=system) == (
        DEFAULT_CONFIG,
        "the bundled demo config",
    )
    write(user)
    assert find_config(environ=env, system_config=system)[0] == user
    write(system)
    assert find_config(environ=env, system_config=system) == (system, "the system config")
    named = write(tmp_path / "named.yaml")
    assert find_config(environ={**env, "MOODBOX_CONFIG": str(named)}, system_config=system) == (
        named,
        "$MOODBOX_CONFIG",
    )
    explicit = tmp_path / "explicit.yaml"  # taken as given, even before it exists
    assert find_config(
        explicit, environ={**env, "MOODBOX_CONFIG": str(named)}, system_config=system
    ) == (explicit, "--config")


def test_xdg_config_home_defaults_to_dot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    user = write(tmp_path / ".config" / "moodbox" / "config.yaml")
    assert find_config(environ={}, system_config=tmp_path / "none")[0] == user


def test_no_config_anywhere_names_the_places_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", tmp_path / "not-bundled.yaml")
    with pytest.raises(ConfigError) as info:
        find_config(environ={"XDG_CONFIG_HOME": str(tmp_path)}, system_config=tmp_path / "etc.yaml")
    message = str(info.value)
    assert "pass --config FILE or set $MOODBOX_CONFIG" in message
    assert str(tmp_path / "etc.yaml") in message
    assert str(tmp_path / "moodbox" / "config.yaml") in message


def test_check_config_without_a_file_says_which_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Absolute paths to this checkout's files: check-config also checks that they exist.
    system = write(tmp_path / "etc" / "config.yaml", (ROOT / "config.yaml").read_text())
    for part in ("demo", "models", "music"):
        (tmp_path / "etc" / part).symlink_to(ROOT / part)
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", system)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert f"reading {system} (the system config)" in out
    assert f"{system}: OK" in out

    named = tmp_path / "etc" / "named.yaml"
    named.write_text(system.read_text())
    assert main(["check-config", str(named)]) == 0
    assert capsys.readouterr().out == f"{named}: OK\n"


def test_a_missing_config_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("cannot read config file") == 1, err


def test_env_values_take_each_fields_type(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml")
    config = load_config(
        path,
        environ={
            "MOODBOX_CAMERA_TYPE": "opencv",
            "MOODBOX_CAMERA_SOURCE": "0",  # a string setting: the text "0"
            "MOODBOX_CAMERA_FPS": "12.5",
            "MOODBOX_CAMERA_WIDTH": "800",
            "MOODBOX_CAMERA_LOOP": "no",
            "MOODBOX_MQTT_USERNAME": "007",  # leading zeros kept
            "MOODBOX_MQTT_HOST": "",  # empty: unset (MQTT off)
            "MOODBOX_MUSIC_FOLDERS": "[/srv/a, /srv/b]",
        },
    )
    assert config.camera.type == "opencv"
    assert config.camera.source == "0"
    assert config.camera.fps == 12.5
    assert config.camera.width == 800
    assert config.camera.loop is False
    assert config.mqtt.username == "007"
    assert config.mqtt.host is None
    assert config.music.folders == (Path("/srv/a"), Path("/srv/b"))
    one = load_config(path, environ={"MOODBOX_MUSIC_FOLDERS": "/srv/music"})
    assert one.music.folders == (Path("/srv/music"),)


def test_a_device_index_in_yaml_is_text(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "camera:\n  type: opencv\n  source: 0\n")
    assert load_config(path, environ={}).camera.source == "0"


def test_other_moodbox_variables_are_warned_about_once_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "c.yaml")
    env = {"MOODBOX_SOMETHING_ELSE": "1", "MOODBOX_INSTALL_ROOT": "/tmp/x"}
    with caplog.at_level(logging.WARNING, logger="edge.config"):
        load_config(path, environ=env)
        load_config(path, environ=env)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings  # once, and not for the project's own variable
    assert "MOODBOX_SOMETHING_ELSE is not a moodbox setting" in warnings[0]


def test_a_typo_under_a_section_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"MOODBOX_CAMERA_FSP": "10", "MOODBOX_MUSIC_ZZZ": "1"})
    problems = "\n".join(info.value.problems)
    assert "MOODBOX_CAMERA_FSP: unknown setting (did you mean MOODBOX_CAMERA_FPS?)" in problems
    assert "MOODBOX_MUSIC_ZZZ: unknown setting (settings of music: enabled, folders" in problems


def test_state_dir_order(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path / "plain.yaml"), environ={})
    set_here = load_config(
        write(tmp_path / "set.yaml", f"general:\n  state_dir: {tmp_path / 'mine'}\n"), environ={}
    )
    xdg = {"XDG_STATE_HOME": str(tmp_path / "xdg-state")}
    systemd = {**xdg, "STATE_DIRECTORY": f"{tmp_path / 'svc'}:{tmp_path / 'other'}"}
    assert resolve_state_dir(plain, systemd) == tmp_path / "svc"
    assert resolve_state_dir(set_here, systemd) == tmp_path / "svc"
    assert resolve_state_dir(plain, xdg) == tmp_path / "xdg-state" / "moodbox"
    # A state_dir the config names is the owner's choice and wins over the XDG default.
    assert resolve_state_dir(set_here, xdg) == tmp_path / "mine"
    assert resolve_state_dir(plain, {}) == Path("~/.local/state/moodbox").expanduser()
    # A relative XDG_STATE_HOME is invalid by the XDG spec and ignored.
    assert resolve_state_dir(plain, {"XDG_STATE_HOME": "rel"}) == resolve_state_dir(plain, {})


@pytest.mark.parametrize(
    ("hostname", "device_id"),
    [
        ("raspberrypi", "raspberrypi"),
        ("Kitchen-Pi.local", "kitchen-pi"),
        ("Living Room (2)", "living-room-2"),
        ("-_-", "moodbox"),
        ("", "moodbox"),
        ("x" * 40, "x" * 32),
    ],
)
def test_device_id_from_the_host_name(hostname: str, device_id: str) -> None:
    assert device_id_from(hostname) == device_id
    GeneralConfig(device_id=device_id)  # always valid for the setting's pattern


def test_device_id_defaults_to_this_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module.socket, "gethostname", lambda: "Den.example.org")
    config = load_config(write(tmp_path / "c.yaml", "general:\n  log_level: INFO\n"), environ={})
    assert config.general.device_id == "den"
    named = load_config(write(tmp_path / "n.yaml", "general:\n  device_id: kitchen\n"), {})
    assert named.general.device_id == "kitchen"
    assert isinstance(MoodboxConfig().general.device_id, str)
