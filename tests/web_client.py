"""Test helpers for the web app: a daemon built by ``build`` on a thread, and an HTTP client.

The daemon is the real one (models, replay camera, music on SDL's dummy
driver, the web server on a free loopback port); the client is urllib with a
cookie jar, so a test sees exactly what a browser would get: status, headers,
cookies, bodies.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.app import App, build
from edge.config import load_config
from edge.identify.store import make_state_dir
from edge.web.auth import read_runtime, set_password

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"  # noqa: S105 - the test household's
ASTRONAUT_FRAMES = range(10)  # frames 0–9 of the demo clip: one face, Eileen Collins


def astronaut_frames(folder: Path) -> Path:
    """A replay folder with one person in it, so an enrolment has exactly one face."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in ASTRONAUT_FRAMES:
        shutil.copy(ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg", folder)
    return folder


@dataclass
class Running:
    app: App
    url: str
    token: str
    state_dir: Path


@contextmanager
def running_daemon(tmp: Path, frames: Path | None = None, **settings: str) -> Iterator[Running]:
    """The daemon of config.yaml on the astronaut frames (or ``frames``), web on a free
    port, until the end."""
    state = make_state_dir(tmp / "state")
    set_password(state, PASSWORD)
    previous = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = str(state)
    environ = {
        "MOODBOX_CAMERA_SOURCE": str(frames or astronaut_frames(tmp / "frames")),
        "MOODBOX_CAMERA_FPS": "10",
        "MOODBOX_WEB_PORT": "0",
        "MOODBOX_RUN_EVENTS_STDOUT": "false",
        **settings,
    }
    try:
        app = build(load_config(ROOT / "config.yaml", environ=environ), sinks=[])
        thread = threading.Thread(target=app.run, name="test-daemon")
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while (runtime := read_runtime(state)) is None:
                assert thread.is_alive() and time.monotonic() < deadline, "web app did not start"
                time.sleep(0.05)
            yield Running(app, str(runtime["url"]), str(runtime["token"]), state)
        finally:
            app.stop()
            thread.join(timeout=30)
    finally:
        if previous is None:
            os.environ.pop("STATE_DIRECTORY", None)
        else:
            os.environ["STATE_DIRECTORY"] = previous


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One browser-like client: cookies kept, redirects not followed."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )
        self.csrf: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        csrf: bool = True,
    ) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if csrf and self.csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.headers, err.read())

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json_body=body if body is not None else {}, **kwargs)

    def upload(
        self, path: str, fields: dict[str, str], files: list[tuple[str, str, bytes]]
    ) -> Reply:
        body, content_type = multipart(fields, files)
        return self.request("POST", path, data=body, headers={"Content-Type": content_type})

    def people(self) -> list[str]:
        return [p["name"] for p in self.get("/api/people").json()["people"]]

    def player(self) -> dict[str, Any]:
        return dict(self.get("/api/state").json()["player"])

    def sign_in(self, password: str = PASSWORD) -> Reply:
        self.csrf = self.get("/api/csrf").json()["csrf"]
        reply = self.post("/login", {"password": password})
        if reply.status == 200:
            self.csrf = reply.json()["csrf"]
        return reply


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for field, filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_until(what: str, predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
