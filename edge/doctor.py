"""`moodbox doctor`: check that this machine can run moodbox, and say what to fix.

Each check is a row of one table (adding a check is adding a row) and returns PASS, FAIL
or SKIP with a one-line detail. The checks use the installed runtime exactly
as the daemon would: the same config loader, the same frame source factory,
the same TFLite loader, the pygame mixer, a TCP connection to the broker.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge.config import MoodboxConfig
from edge.errors import MoodboxError

# Less free space than this in the state directory is a failure: SQLite needs
# room for its journal, and a full disk is how stores get corrupted.
MIN_FREE_BYTES = 100 * 1024 * 1024


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check status, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"
    WARN = "WARN"  # works, but exposes something; does not fail the doctor


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the report."""

    check: str
    status: Status
    detail: str


def check_models(config: MoodboxConfig) -> list[Result]:
    """Every .tflite file the config names (in enabled sections) loads and runs once."""
    import numpy as np

    from edge.tflite import load_interpreter

    results: list[Result] = []
    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        if getattr(section, "enabled", True) is False:
            continue
        for field_name in type(section).model_fields:
            value = getattr(section, field_name)
            if not isinstance(value, Path) or value.suffix != ".tflite":
                continue
            path = config.resolve(value)
            name = f"model {section_name}"
            try:
                interpreter = load_interpreter(path)
                detail = interpreter.get_input_details()[0]
                interpreter.set_tensor(
                    detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"])
                )
                interpreter.invoke()
            except MoodboxError as err:
                results.append(Result(name, Status.FAIL, str(err)))
                continue
            except (ValueError, RuntimeError) as err:
                results.append(Result(name, Status.FAIL, f"{path}: cannot run: {err}"))
                continue
            runtime = type(interpreter).__module__.split(".")[0]
            shape = "x".join(str(d) for d in detail["shape"])
            results.append(Result(name, Status.PASS, f"{path.name} ({runtime}, input {shape})"))
    return results


# Path settings that name something moodbox creates, or that may be left unset.
_NOT_INPUTS = frozenset({("general", "state_dir")})


def check_files(config: MoodboxConfig) -> list[Result]:
    """Every input file or folder the config names (in enabled sections) exists."""
    missing: list[str] = []
    checked = 0
    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        if getattr(section, "enabled", True) is False:
            continue
        if section_name == "mqtt" and not config.mqtt.host:
            continue
        for field_name in type(section).model_fields:
            if (section_name, field_name) in _NOT_INPUTS:
                continue
            value = getattr(section, field_name)
            paths = value if isinstance(value, tuple) else (value,)
            for item in paths:
                if not isinstance(item, Path):
                    continue
                checked += 1
                path = config.resolve(item)
                if not path.exists():
                    missing.append(f"{section_name}.{field_name}: {path} does not exist")
    if missing:
        return [Result("files", Status.FAIL, problem) for problem in missing]
    return [Result("files", Status.PASS, f"{checked} configured file(s) and folder(s) exist")]


def file_problems(config: MoodboxConfig) -> list[str]:
    """What `moodbox check-config` adds to validation: missing inputs, models that do not load."""
    return [
        result.detail
        for result in (*check_files(config), *check_models(config))
        if result.status is Status.FAIL
    ]


def check_camera(config: MoodboxConfig) -> list[Result]:
    """The configured source opens and delivers one frame in time."""
    from edge.camera import open_source

    outcome: dict[str, Any] = {}

    def grab() -> None:
        started = time.monotonic()
        try:
            with open_source(config) as source:
                frame = source.read()
            outcome["frame"] = frame.image.shape
            outcome["seconds"] = time.monotonic() - started
        except (MoodboxError, OSError) as err:
            outcome["error"] = err

    # A wedged driver must not hang the doctor: read on a helper thread.
    worker = threading.Thread(target=grab, name="doctor-camera", daemon=True)
    worker.start()
    timeout = config.camera.open_timeout_s + 10
    worker.join(timeout)
    what = f"{config.camera.type} {config.camera.source}"
    if worker.is_alive():
        return [Result("camera", Status.FAIL, f"{what}: no frame within {timeout:.0f} s")]
    if "error" in outcome:
        hint = " (is the user in the video group?)" if config.camera.type != "replay" else ""
        return [Result("camera", Status.FAIL, f"{what}: {outcome['error']}{hint}")]
    height, width = outcome["frame"][:2]
    return [
        Result(
            "camera", Status.PASS, f"{what}: {width}x{height} frame in {outcome['seconds']:.2f} s"
        )
    ]


def check_audio(config: MoodboxConfig) -> list[Result]:
    """The pygame mixer opens the sound device, or the MPD server answers."""
    if not config.music.enabled:
        return [Result("audio", Status.SKIP, "music.enabled is false")]
    if config.music.player.type == "mpd":
        return check_mpd(config)
    driver = os.environ.get("SDL_AUDIODRIVER", "default")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # its banner would go to stdout
    try:
        import pygame
    except ImportError as err:
        return [Result("audio", Status.FAIL, f"pygame not importable: {err}")]
    try:
        pygame.mixer.init()
        frequency, size, channels = pygame.mixer.get_init()
    except pygame.error as err:
        return [
            Result(
                "audio",
                Status.FAIL,
                f"mixer init failed (SDL_AUDIODRIVER={driver}): {err} "
                "(is a sound card there, and the user in the audio group?)",
            )
        ]
    finally:
        pygame.mixer.quit()
    return [
        Result(
            "audio",
            Status.PASS,
            f"mixer {frequency} Hz, {abs(size)} bit, {channels} ch (SDL_AUDIODRIVER={driver})",
        )
    ]


def check_music(config: MoodboxConfig) -> list[Result]:
    """The music folders hold something to play (the daemon would stay silent)."""
    if not config.music.enabled:
        return [Result("music", Status.SKIP, "music.enabled is false")]
    from edge.music.library import AUDIO_SUFFIXES

    folders = [config.resolve(folder) for folder in config.music.folders]
    count = 0
    for folder in folders:
        if folder.is_dir():
            count += sum(
                1 for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            )
    names = ", ".join(str(folder) for folder in folders)
    if count == 0:
        return [
            Result(
                "music",
                Status.FAIL,
                f"no music in {names}: copy mp3, ogg, wav or flac files there (a folder per "
                f"mood places them, e.g. {folders[0]}/happy/), then run `moodbox music scan`",
            )
        ]
    return [Result("music", Status.PASS, f"{count} audio file(s) in {names}")]


def check_mpd(config: MoodboxConfig) -> list[Result]:
    """music.player.type mpd: the server accepts the connection (and the password)."""
    from edge.music.mpd import read_password

    player = config.music.player
    where = f"MPD {player.mpd_host}:{player.mpd_port}"
    try:
        import mpd
    except ImportError as err:
        return [Result("audio", Status.FAIL, f"python-mpd2 not importable: {err}")]
    client = mpd.MPDClient()
    client.timeout = 5
    try:
        client.connect(player.mpd_host, player.mpd_port)
    except (OSError, mpd.MPDError) as err:
        return [Result("audio", Status.FAIL, f"{where} unreachable: {err}")]
    version = client.mpd_version
    try:
        password = read_password()
        if password:
            client.password(password)
        client.status()
    except (OSError, mpd.MPDError) as err:
        return [Result("audio", Status.FAIL, f"{where}: {err} (the mpd_password credential?)")]
    finally:
        client.disconnect()
    return [Result("audio", Status.PASS, f"{where}: MPD {version}")]


def check_broker(config: MoodboxConfig) -> list[Result]:
    """A TCP connection to mqtt.host:port (when MQTT is on)."""
    host, port = config.mqtt.host, config.mqtt.port
    if not host:
        return [Result("broker", Status.SKIP, "mqtt.host not set: MQTT is off")]
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as err:
        return [Result("broker", Status.FAIL, f"{host}:{port} unreachable: {err}")]
    return [Result("broker", Status.PASS, f"{host}:{port} accepts connections")]


def check_broker_access(config: MoodboxConfig) -> list[Result]:
    """Warn when the broker lets anonymous clients in, or the password crosses the LAN in clear.

    The probe connects the way a stranger would, without user name or password:
    if it is let in, anyone on the network can read who is home and publish commands.
    """
    import dataclasses

    from edge.publish.mqtt import BrokerSettings, make_client, read_password

    if not config.mqtt.host:
        return [Result("broker access", Status.SKIP, "mqtt.host not set: MQTT is off")]
    results: list[Result] = []
    settings = BrokerSettings.from_config(config)
    if read_password() and not settings.tls:
        results.append(
            Result(
                "broker password",
                Status.WARN,
                "the MQTT password is sent without TLS: anyone on the network path can read "
                "it (set mqtt.tls: true and port 8883)",
            )
        )
    probe = make_client(
        dataclasses.replace(
            settings,
            client_id=f"{settings.client_id}-doctor",
            username=None,
            password=None,
            will_topic=None,
        )
    )
    outcome: dict[str, bool] = {}
    done = threading.Event()

    def on_connect(*args: Any) -> None:
        outcome["accepted"] = not args[3].is_failure
        done.set()

    probe.on_connect = on_connect
    try:
        probe.connect(settings.host, settings.port, keepalive=10)
    except (OSError, ValueError) as err:
        return [*results, Result("broker access", Status.SKIP, f"cannot connect: {err}")]
    probe.loop_start()
    try:
        answered = done.wait(5)
    finally:
        probe.disconnect()
        probe.loop_stop()
    if not answered:
        results.append(Result("broker access", Status.SKIP, "no answer to an anonymous connect"))
    elif outcome["accepted"]:
        results.append(
            Result(
                "broker access",
                Status.WARN,
                "the broker accepts anonymous clients: anyone on the network can read "
                "presence and moods and send player commands (README: MQTT security, "
                "allow_anonymous false and an ACL)",
            )
        )
    else:
        results.append(Result("broker access", Status.PASS, "anonymous clients are refused"))
    return results


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(config: MoodboxConfig) -> list[Result]:
    """Enough free space where the stores live."""
    path = _existing_parent(config.state_dir())
    free = shutil.disk_usage(path).free
    detail = f"{free / 2**30:.1f} GiB free at {path}"
    if free < MIN_FREE_BYTES:
        return [Result("disk", Status.FAIL, f"{detail} (need {MIN_FREE_BYTES // 2**20} MiB)")]
    return [Result("disk", Status.PASS, detail)]


def check_state_dir(config: MoodboxConfig) -> list[Result]:
    """The state directory exists, is private (0700) and writable by this user."""
    path = config.state_dir()
    if not path.is_dir():
        return [
            Result(
                "state dir",
                Status.FAIL,
                f"{path} does not exist (create it: install -d -m 0700 {path}; "
                "systemd creates /var/lib/moodbox itself)",
            )
        ]
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return [
            Result(
                "state dir",
                Status.FAIL,
                f"{path} is mode {mode:04o}, must be 0700: chmod 700 {path}",
            )
        ]
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as err:
        return [Result("state dir", Status.FAIL, f"{path} is not writable: {err}")]
    return [Result("state dir", Status.PASS, f"{path} (0700, writable, uid {info.st_uid})")]


def check_secret(config: MoodboxConfig) -> list[Result]:
    """The MQTT password file beside the config (LoadCredential's source) is private."""
    path = config.resolve("mqtt_password")
    if not path.exists():
        return [Result("secret", Status.SKIP, f"no {path} (MQTT without a password)")]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [
            Result(
                "secret", Status.FAIL, f"{path} is mode {mode:04o}, must be 0600: chmod 600 {path}"
            )
        ]
    return [Result("secret", Status.PASS, f"{path} (mode {mode:04o})")]


CHECKS: tuple[tuple[str, Callable[[MoodboxConfig], list[Result]]], ...] = (
    ("models", check_models),
    ("camera", check_camera),
    ("audio", check_audio),
    ("music", check_music),
    ("broker", check_broker),
    ("broker access", check_broker_access),
    ("disk", check_disk),
    ("state dir", check_state_dir),
    ("secret", check_secret),
)


def run_checks(config: MoodboxConfig) -> list[Result]:
    """Every check; a check that crashes is itself a failure, not the end of the report."""
    results: list[Result] = []
    for name, check in CHECKS:
        try:
            results.extend(check(config))
        except Exception as err:  # the report must finish whatever one check does
            results.append(Result(name, Status.FAIL, f"check crashed: {type(err).__name__}: {err}"))
    return results


def format_report(results: list[Result]) -> str:
    width = max(len(r.check) for r in results)
    lines = [f"  {r.status:<4}  {r.check:<{width}}  {r.detail}" for r in results]
    counts = {s: sum(r.status is s for r in results) for s in Status}
    summary = (
        f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
    if counts[Status.WARN]:
        summary += f", {counts[Status.WARN]} warning(s)"
    lines.append(summary)
    return "\n".join(lines)
