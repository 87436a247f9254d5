"""`moodbox doctor` against the real runtime: models, replay camera, dummy mixer, mosquitto."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import load_config
from edge.doctor import Status, check_broker, check_models, check_secret, check_state_dir

ROOT = Path(__file__).resolve().parents[2]


def doctor_config(
    tmp_path: Path,
    extra: str = "",
    *,
    state_mode: int = 0o700,
    camera_source: Path = ROOT / "demo" / "faces",
    emotion_model: Path = ROOT / "models" / "emotion_int8.tflite",
    music_folder: Path = ROOT / "music",
) -> Path:
    """A config for the demo with absolute paths and a private state dir in tmp_path."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    state.chmod(state_mode)
    embedding = ROOT / "models" / "face_embedding.tflite"
    path = tmp_path / "config.yaml"
    path.write_text(
        f"general:\n  state_dir: {state}\n"
        f"camera:\n  source: {camera_source}\n"
        f"detect:\n  model: {ROOT / 'models' / 'face_detection_short_range.tflite'}\n"
        f"emotion:\n  model: {emotion_model}\n"
        f"  labels: {ROOT / 'models' / 'emotion_labels.txt'}\n"
        f"  metadata: {ROOT / 'models' / 'emotion_model.json'}\n"
        # The face-embedding model ships with face sign-in; check it when it is there.
        f"identify:\n  enabled: {str(embedding.is_file()).lower()}\n  model: {embedding}\n"
        f"music:\n  folders: [{music_folder}]\n" + extra
    )
    return path


def run_doctor(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    env.pop("STATE_DIRECTORY", None)
    env.update(SDL_AUDIODRIVER="dummy", SDL_VIDEODRIVER="dummy")
    return subprocess.run(
        [sys.executable, "-m", "edge", "doctor", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(stdout: str) -> dict[str, str]:
    """check name → status from the report table."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split(maxsplit=1)
        if parts and parts[0] in {"PASS", "FAIL", "SKIP"}:
            detail = parts[1]
            name = detail[:15].strip() if detail.startswith("model") else detail.split()[0]
            if detail.startswith("state dir"):
                name = "state dir"
            found[name] = parts[0]
    return found


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A real broker on a free loopback port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto not installed (.ci/run installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_doctor_passes_on_a_healthy_demo_setup(tmp_path: Path) -> None:
    result = run_doctor(doctor_config(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert table["config"] == "PASS"
    assert table["model detect"] == "PASS"
    assert table["model emotion"] == "PASS"
    assert table["camera"] == "PASS"
    assert table["audio"] == "PASS"
    assert table["music"] == "PASS"
    assert table["broker"] == "SKIP"  # mqtt.host unset
    assert table["disk"] == "PASS"
    assert table["state dir"] == "PASS"
    assert "0 failed" in result.stdout


def test_doctor_reports_each_problem_and_exits_1(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 64)
    config = doctor_config(
        tmp_path,
        state_mode=0o755,
        camera_source=tmp_path / "no-such-folder",
        emotion_model=corrupt,
    )
    result = run_doctor(config)
    assert result.returncode == 1
    table = rows(result.stdout)
    assert table["model detect"] == "PASS"
    assert table["model emotion"] == "FAIL"
    assert table["camera"] == "FAIL"
    assert table["state dir"] == "FAIL"
    assert "cannot load model" in result.stdout
    assert "does not exist" in result.stdout
    assert "chmod 700" in result.stdout


def test_doctor_fails_on_an_empty_music_library_and_says_how_to_fill_it(tmp_path: Path) -> None:
    empty = tmp_path / "music"
    empty.mkdir()
    result = run_doctor(doctor_config(tmp_path, music_folder=empty))
    assert result.returncode == 1, result.stdout
    assert rows(result.stdout)["music"] == "FAIL"
    assert f"no music in {empty}: copy mp3, ogg, wav or flac files there" in result.stdout
    assert "moodbox music scan" in result.stdout


def test_doctor_on_an_invalid_config_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("camera:\n  fps: 5\n  colour: blue\n")
    result = run_doctor(config)
    assert result.returncode == 1
    assert "FAIL  config" in result.stdout
    assert "camera.colour (line 3)" in result.stdout


def test_broker_check_against_a_real_mosquitto(
    tmp_path: Path, mosquitto: int, clean_env: None
) -> None:
    config = load_config(
        doctor_config(tmp_path, extra=f"mqtt:\n  host: 127.0.0.1\n  port: {mosquitto}\n")
    )
    [result] = check_broker(config)
    assert result.status is Status.PASS
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = load_config(
        doctor_config(tmp_path, extra=f"mqtt:\n  host: 127.0.0.1\n  port: {closed_port}\n")
    )
    [result] = check_broker(config)
    assert result.status is Status.FAIL
    assert "unreachable" in result.detail


def test_state_dir_missing_and_model_checks_in_process(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = load_config(doctor_config(tmp_path))
    shutil.rmtree(tmp_path / "state")
    [result] = check_state_dir(config)
    assert result.status is Status.FAIL
    assert "install -d -m 0700" in result.detail
    statuses = {r.check: r.status for r in check_models(config)}
    assert statuses["model detect"] is Status.PASS
    assert statuses["model emotion"] is Status.PASS


def test_secret_file_must_be_private(tmp_path: Path, clean_env: None) -> None:
    config = load_config(doctor_config(tmp_path))
    [result] = check_secret(config)
    assert result.status is Status.SKIP
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    [result] = check_secret(config)
    assert result.status is Status.FAIL
    assert "chmod 600" in result.detail
    secret.chmod(0o600)
    [result] = check_secret(config)
    assert result.status is Status.PASS
