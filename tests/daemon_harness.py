"""Run the real `python -m edge run` process and watch it: events, logs, sd_notify messages.

Fault-injection tests drive the daemon from outside, as systemd and the world
would: files appear and vanish under its replay source, brokers die, signals
arrive. The harness collects stdout (JSON events), stderr (logs) and the
datagrams the daemon sends to a notify socket bound here, and waits on them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from edge.config import MoodboxConfig

ROOT = Path(__file__).resolve().parent.parent
EMBEDDING = ROOT / "models" / "face_embedding.tflite"


def env_for(tmp_path: Path, source: Path, **extra: str) -> dict[str, str]:
    """daemon_env with a replay folder at 20 fps, short timeouts and a quick backoff."""
    settings = {
        "MOODBOX_CAMERA_SOURCE": str(source),
        "MOODBOX_CAMERA_FPS": "20",
        # 5 s: a clean stop on a loaded machine stays inside the 11 s stop deadline.
        "MOODBOX_CAMERA_OPEN_TIMEOUT_S": "5",
        "MOODBOX_RUN_CAMERA_BACKOFF_S": "0.2",
        "MOODBOX_RUN_CAMERA_RESTART_BUDGET": "50",
    }
    # Face sign-in's model is optional for these tests: without it, run without sign-in.
    if "identify" in MoodboxConfig.model_fields and not EMBEDDING.is_file():
        settings["MOODBOX_IDENTIFY_ENABLED"] = "false"
    settings.update(extra)
    return daemon_env(tmp_path, **settings)


# Waits are upper bounds, not timing assertions: generous, because a loaded
# 2-core CI machine can take a minute to start the daemon.
def daemon_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without the developer's MOODBOX_* settings, headless SDL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"):
        env.pop(name, None)
    env.update(
        SDL_AUDIODRIVER="dummy",
        SDL_VIDEODRIVER="dummy",
        STATE_DIRECTORY=str(tmp_path / "state"),
        PYTHONUNBUFFERED="1",
        # The repository's demo config, not one in the developer's ~/.config; and the
        # topics the tests subscribe to, not ones named after this machine.
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        MOODBOX_GENERAL_DEVICE_ID="moodbox",
    )
    env.update(extra)
    return env


class Daemon:
    """One daemon process with its outputs collected on background threads."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        env: dict[str, str],
        args: Sequence[str] = (),
        watchdog_usec: int | None = None,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.notifications: list[str] = []
        self._lock = threading.Lock()
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        address = tmp_path / "notify.sock"
        self._notify.bind(str(address))
        self._notify.settimeout(0.2)
        env = {**env, "NOTIFY_SOCKET": str(address)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._closed = False
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: IO[str], is_stdout: bool) -> None:
        for line in stream:
            with self._lock:
                if is_stdout and line.startswith("{"):
                    self.events.append(json.loads(line))
                elif not is_stdout:
                    self.logs.append(line.rstrip("\n"))

    def _receive(self) -> None:
        while not self._closed:
            try:
                message = self._notify.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.notifications.append(message)

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return
            if self.process.poll() is not None:
                time.sleep(0.3)  # let the readers drain what the process left
                with self._lock:
                    if predicate():
                        return
                raise AssertionError(
                    f"daemon exited ({self.process.returncode}) before {what}; log:\n"
                    + "\n".join(self.logs[-40:])
                )
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; log:\n" + "\n".join(self.logs[-40:]))

    def count_logs(self, text: str) -> int:
        with self._lock:
            return sum(text in line for line in self.logs)

    def count_notifications(self, prefix: str) -> int:
        with self._lock:
            return sum(m.startswith(prefix) for m in self.notifications)

    def wait_log(self, text: str, timeout: float = 120, count: int = 1) -> None:
        self.wait_for(
            f"log {text!r}", lambda: sum(text in line for line in self.logs) >= count, timeout
        )

    def wait_notify(self, prefix: str, count: int = 1, timeout: float = 120) -> None:
        self.wait_for(
            f"{count}x {prefix!r} on the notify socket",
            lambda: sum(m.startswith(prefix) for m in self.notifications) >= count,
            timeout,
        )

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads[:2]:
            thread.join(timeout=5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for thread in self._threads[:2]:
            thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._closed = True
        self._threads[2].join(timeout=5)
        self._notify.close()


def run_cli(tmp_path: Path, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`moodbox ARGS` as a user of the box with state dir ``state`` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        cwd=tmp_path,
        env=daemon_env(tmp_path, STATE_DIRECTORY=str(state)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_frames(tmp_path: Path, count: int | None = None) -> Path:
    """A replay folder of demo frames that a test may take away and give back."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in sorted((ROOT / "demo" / "faces").glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def keeps_processing(daemon: Daemon, pings: int = 3) -> None:
    """The frame loop is alive: the watchdog gets fresh pings."""
    daemon.wait_notify("WATCHDOG=1", count=daemon.count_notifications("WATCHDOG=1") + pings)


def stop_cleanly(daemon: Daemon) -> None:
    """SIGTERM gives exit 0 and no traceback anywhere in the log."""
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, "\n".join(daemon.logs[-30:])
    assert not [line for line in daemon.logs if "Traceback" in line]
