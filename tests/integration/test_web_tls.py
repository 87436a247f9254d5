"""The web app over TLS with a given certificate: HTTPS only, and the session cookie Secure."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
from web_client import running_daemon

from edge.web.client import DaemonClient


def self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found (.ci/run installs it)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_with_a_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = {"MOODBOX_WEB_TLS_CERT": str(cert), "MOODBOX_WEB_TLS_KEY": str(key)}
    with running_daemon(tmp_path, **settings) as daemon:
        assert daemon.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False  # the test certificate names no IP address
        with urllib.request.urlopen(daemon.url + "/api/csrf", context=context) as reply:  # noqa: S310
            cookie = reply.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        plain = daemon.url.replace("https://", "http://")
        with pytest.raises(OSError):  # no plain HTTP on the TLS port
            urllib.request.urlopen(plain + "/login", timeout=5)  # noqa: S310
        # The CLI reaches its own daemon over TLS with the token.
        client = DaemonClient.find(daemon.state_dir)
        assert client is not None and client.get("/api/status")["version"]
