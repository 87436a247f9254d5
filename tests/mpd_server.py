"""A real Music Player Daemon (or Mopidy) on a free loopback port, with no sound card.

Its own music directory, database and log under ``workdir``, no state file, so
a restart comes back stopped with an empty queue, as after a crash. It can be
killed and started again on the same port to inject outages. ``MopidyServer``
is Mopidy with its MPD frontend and local library, playing into a fakesink.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from mqtt_broker import HOST, free_port


def find_mpd() -> str | None:
    return shutil.which("mpd") or shutil.which(
        "mpd", path=os.pathsep.join(["/usr/bin", "/usr/sbin", "/usr/local/bin"])
    )


class MpdServer:
    """One ``mpd --no-daemon`` process; ``music`` is its music_directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        mixer: str = "software",
        connection_timeout_s: int = 60,
    ) -> None:
        binary = find_mpd()
        if binary is None:
            raise FileNotFoundError("mpd not found (apt-get install mpd)")
        self.binary = binary
        self.workdir = workdir
        self.music = workdir / "music"
        self.host = HOST
        self.port = port or free_port()
        self.password = password
        self.mixer = mixer
        self.connection_timeout_s = connection_timeout_s
        self.log_file = workdir / "mpd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        lines = [
            f'music_directory "{self.music}"',
            f'db_file "{self.workdir / "mpd.db"}"',
            f'log_file "{self.log_file}"',
            f'bind_to_address "{HOST}"',
            f'port "{self.port}"',
            'zeroconf_enabled "no"',
            f'connection_timeout "{self.connection_timeout_s}"',
            # A software mixer makes setvol work (and visible in status) on the null output.
            f'audio_output {{\n  type "null"\n  name "null"\n  mixer_type "{self.mixer}"\n}}',
        ]
        if self.password:
            lines.append(f'password "{self.password}@read,add,control,admin"')
            lines.append('default_permissions ""')
        path = self.workdir / "mpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout_s: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.music.mkdir(exist_ok=True)
        config = self._write_config()
        self._process = subprocess.Popen(
            [self.binary, "--no-daemon", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise RuntimeError(f"mpd exited at start: {log[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2) as sock:
                    sock.settimeout(2)
                    if sock.recv(64).startswith(b"OK MPD"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mpd did not listen on {self.port} within {timeout_s} s")

    def client(self) -> Any:
        """A python-mpd2 client of its own (the observer's view of the server)."""
        import mpd

        client = mpd.MPDClient()
        client.timeout = 5
        client.connect(self.host, self.port)
        if self.password:
            client.password(self.password)
        return client

    def update(self, timeout_s: float = 10.0) -> None:
        """Rescan the music directory and wait until the database has it."""
        client = self.client()
        try:
            client.update()
            deadline = time.monotonic() + timeout_s
            while "updating_db" in client.status():
                if time.monotonic() > deadline:
                    raise RuntimeError("mpd database update did not finish")
                time.sleep(0.02)
        finally:
            client.disconnect()

    def kill(self) -> None:
        """Abrupt death (SIGKILL)."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers (a hung server)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def find_mopidy() -> str | None:
    """mopidy with the MPD frontend and the local library (Debian: mopidy-mpd, mopidy-local)."""
    binary = shutil.which("mopidy")
    if binary is None:
        return None
    probe = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        return None
    dist = Path("/usr/lib/python3/dist-packages")
    if not ((dist / "mopidy_mpd").is_dir() and (dist / "mopidy_local").is_dir()):
        return None
    return binary


class MopidyServer(MpdServer):
    """Mopidy's MPD frontend on a free loopback port; tracks are ``local:track:`` URIs."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        binary = find_mopidy()
        if binary is None:
            raise FileNotFoundError(
                "mopidy not found (apt-get install mopidy mopidy-mpd mopidy-local)"
            )
        self.binary = binary
        self.workdir = workdir
        self.music = workdir / "music"
        self.host = HOST
        self.port = port or free_port()
        self.password = None
        self.mixer = "software"
        self.log_file = workdir / "mopidy.log"
        self._process = None

    def _write_config(self) -> Path:
        text = f"""
[core]
cache_dir = {self.workdir}/cache
config_dir = {self.workdir}/config
data_dir = {self.workdir}/data
[logging]
verbosity = 0
[audio]
output = fakesink sync=true
[mpd]
hostname = {HOST}
port = {self.port}
zeroconf =
[http]
enabled = false
[local]
media_dir = {self.music}
[file]
enabled = false
[m3u]
enabled = false
[stream]
enabled = false
"""
        path = self.workdir / "mopidy.conf"
        path.write_text(text)
        return path

    def start(self, timeout_s: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.music.mkdir(exist_ok=True)
        config = self._write_config()
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mopidy exited at start: {self.log_file.read_text()[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2) as sock:
                    sock.settimeout(5)
                    if sock.recv(64).startswith(b"OK MPD"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mopidy did not listen on {self.port} within {timeout_s} s")

    def update(self, timeout_s: float = 120.0) -> None:
        """Mopidy-Local's scan (the library is read when Mopidy starts: run it before)."""
        config = self._write_config()
        subprocess.run(
            [self.binary, "--config", str(config), "local", "scan"],
            capture_output=True,
            timeout=timeout_s,
            check=True,
        )
