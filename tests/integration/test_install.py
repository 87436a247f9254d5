"""scripts/install-pi into a throwaway root: layout, idempotence, uninstall, purge."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from edge.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-pi"


def install(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(target), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(target: Path) -> dict[str, tuple[int, str]]:
    """Every path under target: its mode and content hash (or link target)."""
    found = {}
    for path in sorted(target.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            content = "-> " + str(path.readlink())
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        found[str(path.relative_to(target))] = (stat.S_IMODE(info.st_mode), content)
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_layout_idempotence_and_uninstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "root"
    first = install(target)

    # System changes are only announced in a throwaway root.
    assert "would run: env DEBIAN_FRONTEND=noninteractive apt-get install" in first.stdout
    assert "python3-picamera2" in first.stdout
    assert "libglib2.0-0" in first.stdout
    assert "would run: useradd --system --user-group --groups video,audio" in first.stdout
    assert "pip install -q numpy<2" in first.stdout
    assert "would run: systemctl enable moodbox.service" in first.stdout

    opt = target / "opt" / "moodbox"
    assert (opt / "src" / "edge" / "app.py").is_file()
    assert (opt / "src" / "pyproject.toml").is_file()
    assert not list((opt / "src").rglob("__pycache__"))
    assert (opt / "models" / "face_detection_short_range.tflite").is_file()
    assert (opt / "config.example.yaml").read_text() == (ROOT / "config.yaml").read_text()
    pyvenv = (opt / "venv" / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in pyvenv
    unit = target / "etc" / "systemd" / "system" / "moodbox.service"
    assert unit.read_text() == (ROOT / "systemd" / "moodbox.service").read_text()
    assert str((target / "usr" / "local" / "bin" / "moodbox").readlink()) == (
        "/opt/moodbox/venv/bin/moodbox"
    )
    etc = target / "etc" / "moodbox"
    password = etc / "mqtt_password"
    assert password.read_bytes() == b""
    assert mode(password) == 0o600
    state = target / "var" / "lib" / "moodbox"
    assert state.is_dir()
    assert mode(state) == 0o700

    # The written config is valid and names files the installer put in place.
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = load_config(etc / "config.yaml", environ={})
    assert config.camera.type == "picamera"
    assert str(config.general.state_dir) == "/var/lib/moodbox"
    assert not config.run.events_stdout
    for model in (config.detect.model, config.emotion.model, config.emotion.labels):
        assert model.is_absolute()
        assert (target / model.relative_to("/")).is_file(), model

    # A second run changes nothing.
    before = snapshot(target)
    install(target)
    assert snapshot(target) == before

    # An upgrade keeps the owner's config and secret.
    (etc / "config.yaml").write_text((etc / "config.yaml").read_text() + "# mine\n")
    password.write_text("s3cret")
    third = install(target)
    assert "keeping existing" in third.stdout
    assert (etc / "config.yaml").read_text().endswith("# mine\n")
    assert password.read_text() == "s3cret"

    # Uninstall removes the program and the unit, keeps config and data.
    (state / "users.db").write_bytes(b"data")
    removed = install(target, "--uninstall")
    assert "would run: systemctl disable --now moodbox.service" in removed.stdout
    assert not opt.exists()
    assert not unit.exists()
    assert not (target / "usr" / "local" / "bin" / "moodbox").is_symlink()
    assert (etc / "config.yaml").is_file()
    assert (state / "users.db").is_file()

    # Purge removes the rest.
    purged = install(target, "--uninstall", "--purge")
    assert "would run: userdel moodbox" in purged.stdout
    assert not etc.exists()
    assert not state.exists()
