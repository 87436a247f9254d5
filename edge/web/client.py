"""The CLI's side of the control API: reach the running daemon on loopback with its token.

The daemon writes its URL and a fresh token to ``web.json`` (mode 0600) in the
state directory. A `moodbox` command that can read it and connect uses the
daemon, which holds the camera and the player; otherwise (no daemon, or a file
left by one that died) the command works on the files itself.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.web.auth import read_runtime


class DaemonError(RuntimeError):
    """The running daemon refused a request; the message is its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DaemonClient:
    """JSON requests to the running daemon."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # Loopback to our own daemon, authenticated by the token: its self-signed
        # certificate (if any) need not chain to a public authority.
        self._context = ssl._create_unverified_context() if url.startswith("https") else None  # noqa: S323

    @classmethod
    def find(cls, state_dir: Path) -> DaemonClient | None:
        """The running daemon's client, or None when none answers."""
        runtime = read_runtime(state_dir)
        if runtime is None:
            return None
        client = cls(str(runtime["url"]), str(runtime["token"]), timeout=3.0)
        try:
            client.get("/api/status")
        except (OSError, DaemonError):
            return None
        client.timeout = 10.0
        return client

    def _request(self, method: str, path: str, data: Any = None) -> Any:
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(  # noqa: S310 - our own http(s) URL
            self.url + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - our own http(s) URL
                request, timeout=self.timeout, context=self._context
            ) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except (ValueError, AttributeError):
                message = str(err.reason)
            raise DaemonError(err.code, str(message)) from err

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, data: Any) -> Any:
        return self._request("POST", path, data)
