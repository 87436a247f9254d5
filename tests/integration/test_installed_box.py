"""The box as `scripts/install-pi --root` leaves it: the CLI finds /etc/moodbox/config.yaml
by itself, the project's own variables do not break it, the unit's documentation exists,
the device id is the host's, and doctor says how to fill an empty music folder."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import device_id_from, load_config
from edge.doctor import Status, check_music

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-pi"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("box")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def at_box(box: Path) -> dict[str, str]:
    """Overrides that put the absolute paths of the written config under the box's root
    (on a Pi they are the same files; here / is not the box)."""
    models = box / "opt" / "moodbox" / "models"
    return {
        "MOODBOX_DETECT_MODEL": str(models / "face_detection_short_range.tflite"),
        "MOODBOX_EMOTION_MODEL": str(models / "emotion_int8.tflite"),
        "MOODBOX_EMOTION_LABELS": str(models / "emotion_labels.txt"),
        "MOODBOX_EMOTION_METADATA": str(models / "emotion_model.json"),
        "MOODBOX_IDENTIFY_MODEL": str(models / "face_embedding.tflite"),
        "MOODBOX_MUSIC_FOLDERS": str(box / "srv" / "moodbox" / "music"),
        "MOODBOX_GENERAL_STATE_DIR": str(box / "var" / "lib" / "moodbox"),
    }


def installed_cli(box: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed sources' `moodbox`, with /etc/moodbox standing at the box's /etc/moodbox
    and the config's absolute paths at the box's (``at_box``)."""
    code = (
        "import sys; from pathlib import Path; import edge.config as c; "
        f"c.SYSTEM_CONFIG = Path({str(box / 'etc' / 'moodbox' / 'config.yaml')!r}); "
        "from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    clean.pop("STATE_DIRECTORY", None)
    clean.update(
        PYTHONPATH=str(box / "opt" / "moodbox" / "src"),
        XDG_CONFIG_HOME=str(box / "no-user-config"),
        **at_box(box),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=box,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_finds_the_system_config_without_being_told(box: Path) -> None:
    result = installed_cli(box, "check-config")
    system = box / "etc" / "moodbox" / "config.yaml"
    assert result.returncode == 0, result.stderr
    assert f"reading {system} (the system config)" in result.stdout
    # It is the installed copy of the program, not this checkout, that ran.
    probe = subprocess.run(
        [sys.executable, "-c", "import edge; print(edge.__file__)"],
        cwd=box,  # not this checkout's folder, whose edge/ would come first
        env={**os.environ, "PYTHONPATH": str(box / "opt" / "moodbox" / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(box / "opt" / "moodbox" / "src")), probe.stdout


def test_the_service_user_can_list_users_with_that_config(box: Path) -> None:
    state = box / "var" / "lib" / "moodbox"
    result = installed_cli(box, "users")
    assert result.returncode == 0, result.stderr
    assert "nobody enrolled" in result.stdout
    # What `sudo -u moodbox moodbox users` needs: a config anyone may read, the program
    # readable, the state directory the service user's alone (chowned by the installer).
    assert stat.S_IMODE((box / "etc" / "moodbox" / "config.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((box / "opt" / "moodbox").stat().st_mode) == 0o755
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "sudo -u moodbox moodbox users" in readme


def test_the_projects_own_variables_do_not_break_a_command(box: Path) -> None:
    result = installed_cli(
        box,
        "check-config",
        MOODBOX_INSTALL_ROOT=str(box),
        MOODBOX_AARCH64_DIR="/tmp/aarch64",
        MOODBOX_SOMETHING="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("MOODBOX_SOMETHING is not a moodbox setting") == 1
    assert "MOODBOX_INSTALL_ROOT" not in result.stderr


def test_the_units_documentation_exists_after_install(box: Path) -> None:
    unit = (box / "etc" / "systemd" / "system" / "moodbox.service").read_text()
    docs = [
        line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("Documentation=")
    ]
    assert docs
    for url in " ".join(docs).split():
        assert url.startswith("file:///"), url
        assert (box / url.removeprefix("file:///")).is_file(), url


def test_the_device_id_is_the_hosts(box: Path) -> None:
    config = load_config(box / "etc" / "moodbox" / "config.yaml", environ={})
    assert config.general.device_id == device_id_from(socket.gethostname())
    assert "state_dir" in config.general.model_fields_set  # /var/lib/moodbox, as written


def test_doctor_says_how_to_fill_the_empty_music_folder(box: Path) -> None:
    music = box / "srv" / "moodbox" / "music"
    assert music.is_dir() and not any(music.iterdir())
    config = load_config(
        box / "etc" / "moodbox" / "config.yaml", environ={"MOODBOX_MUSIC_FOLDERS": str(music)}
    )
    [result] = check_music(config)
    assert result.status is Status.FAIL
    assert f"no music in {music}: copy mp3, ogg, wav or flac files there" in result.detail
    (music / "calm").mkdir()
    (music / "calm" / "a.ogg").write_bytes(b"")
    assert check_music(config)[0].status is Status.PASS


def test_the_readme_webcam_example_is_a_valid_config_there(box: Path) -> None:
    result = installed_cli(
        box, "check-config", MOODBOX_CAMERA_TYPE="opencv", MOODBOX_CAMERA_SOURCE="0"
    )
    assert result.returncode == 0, result.stderr
    config = load_config(
        box / "etc" / "moodbox" / "config.yaml",
        environ={"MOODBOX_CAMERA_TYPE": "opencv", "MOODBOX_CAMERA_SOURCE": "0"},
    )
    assert (config.camera.type, config.camera.source) == ("opencv", "0")


def test_the_service_logs_each_event_once_for_the_journal(box: Path) -> None:
    from edge.app import default_sinks
    from edge.events import LogSink

    config = load_config(box / "etc" / "moodbox" / "config.yaml", environ={})
    [sink] = default_sinks(config)
    assert isinstance(sink, LogSink)
