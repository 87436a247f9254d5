"""The control API against the real daemon and server on a loopback port.

One daemon serves the module (the models load once): sign-in and its
refusals, CSRF, headers and cookies, the live stream, the player, people
(photo enrolment, rename, forget with their history), uploads refused, and
the CLI reaching the running daemon through its token file.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_client import PASSWORD, ROOT, Client, Running, multipart, running_daemon, wait_until

from edge.cli import main
from edge.history import HistoryStore

UPLOAD_LIMIT = 300_000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_daemon(
        tmp_path_factory.mktemp("web-api"), MOODBOX_WEB_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser(daemon: Running) -> Client:
    """A signed-in session (signed in before any test spends the sign-in attempts)."""
    client = Client(daemon.url)
    assert client.sign_in().status == 200
    return client


def test_nothing_is_served_before_sign_in(daemon: Running, browser: Client) -> None:
    anonymous = Client(daemon.url)
    for path in ("/api/state", "/api/preview.jpg", "/api/history", "/api/people"):
        assert anonymous.get(path).status == 401, path
    page = anonymous.get("/history")
    assert page.status == 302 and page.headers["Location"].endswith("/login")
    assert anonymous.get("/login").status == 200
    assert anonymous.get("/static/app.js").status == 200


def test_session_cookie_and_headers(daemon: Running, browser: Client) -> None:
    client = Client(daemon.url)
    client.csrf = client.get("/api/csrf").json()["csrf"]
    reply = client.post("/login", {"password": PASSWORD})
    assert reply.status == 200
    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    page = client.get("/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert b'<script src="/static/app.js"' in page.body and b"<script>" not in page.body


def test_a_state_change_without_the_csrf_token_is_refused(browser: Client) -> None:
    reply = browser.post("/api/player", {"action": "PAUSE"}, csrf=False)
    assert reply.status == 403 and "CSRF" in reply.json()["error"]
    forged = browser.request(
        "POST",
        "/api/volume",
        json_body={"volume": 10},
        headers={"X-CSRF-Token": "forged"},
        csrf=False,
    )
    assert forged.status == 403


def test_the_live_stream_sends_state_and_events(daemon: Running, browser: Client) -> None:
    host = urllib.parse.urlsplit(daemon.url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=20)
    cookies = "; ".join(f"{c.name}={c.value}" for c in browser.jar)
    connection.request("GET", "/api/events", headers={"Cookie": cookies})
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    names: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "mood_changed" not in names:
        line = response.fp.readline().decode()
        if line.startswith("event: "):
            names.append(line[len("event: ") :].strip())
    connection.close()
    assert names[0] == "state" and "mood_changed" in names


def test_player_commands_reach_the_player(browser: Client) -> None:
    wait_until("a track", lambda: browser.get("/api/state").json()["player"]["title"])
    first = browser.get("/api/state").json()["player"]["title"]
    assert browser.post("/api/player", {"action": "NEXT"}).status == 202
    wait_until("the next track", lambda: browser.player()["title"] != first)
    assert browser.post("/api/volume", {"volume": 35}).status == 202
    wait_until("volume 35", lambda: browser.get("/api/state").json()["player"]["volume"] == 35)
    assert browser.post("/api/mood_override", {"mood": "calm-ish"}).status == 400
    assert browser.post("/api/player", {"action": "EXPLODE"}).status == 400


def test_the_cli_uses_the_running_daemon(
    browser: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["player", "volume", "55"]) == 0
    assert "sent to the running moodbox" in capsys.readouterr().out
    wait_until("volume 55", lambda: browser.get("/api/state").json()["player"]["volume"] == 55)


def test_the_cli_enrols_from_the_daemons_camera_and_forgets_through_it(
    browser: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["enroll", "Cli"]) == 0  # the daemon holds the camera: it enrols
    assert "enrolled Cli" in capsys.readouterr().out
    assert browser.people() == ["Cli"]
    assert main(["music", "skip"]) == 0
    assert "sent to the running moodbox" in capsys.readouterr().out
    assert main(["forget", "Cli"]) == 0
    wait_until("forgotten", lambda: browser.people() == [])
    assert main(["forget", "Cli"]) == 1  # nobody of that name any more
    assert "nobody called" in capsys.readouterr().err


def test_enrol_from_photos_rename_and_forget_with_the_history(
    daemon: Running, browser: Client
) -> None:
    photo = (ROOT / "demo" / "faces" / "frame_002.jpg").read_bytes()
    body, content_type = multipart({"name": "Eileen"}, [("photos", "eileen.jpg", photo)])
    reply = browser.request(
        "POST", "/api/people/photos", data=body, headers={"Content-Type": content_type}
    )
    assert reply.status == 202, reply.body
    wait_until("Eileen listed", lambda: browser.people() == ["Eileen"])
    wait_until("Eileen recognised", lambda: "Eileen" in browser.get("/api/state").json()["present"])
    preview = browser.get("/api/preview.jpg")
    assert preview.status == 200 and preview.body.startswith(b"\xff\xd8")
    assert browser.post("/api/people/rename", {"old": "Eileen", "new": "Eileen C"}).status == 202
    wait_until("renamed", lambda: browser.people() == ["Eileen C"])
    wait_until("her history renamed", lambda: history_rows(daemon, "Eileen C") > 0)
    assert history_rows(daemon, "Eileen") == 0
    assert browser.post("/api/people/forget", {"name": "Eileen C"}).status == 400  # unconfirmed
    confirmed = {"name": "Eileen C", "confirm": "Eileen C"}
    assert browser.post("/api/people/forget", confirmed).status == 202
    wait_until("forgotten", lambda: browser.get("/api/people").json()["people"] == [])
    wait_until("her history erased", lambda: history_rows(daemon, "Eileen C") == 0)
    time.sleep(0.5)  # the stage signs her out on a later frame: that leaves no row either
    assert history_rows(daemon, "Eileen C") == 0 and history_rows(daemon, "Eileen") == 0


def history_rows(daemon: Running, user: str) -> int:
    """Rows about ``user`` in the daemon's history (its sign-in at least, once recognised)."""
    with sqlite3.connect(daemon.state_dir / HistoryStore.FILENAME) as db:
        return sum(
            db.execute(f"SELECT COUNT(*) FROM {table} WHERE user = ?", (user,)).fetchone()[0]  # noqa: S608
            for table in ("moods", "plays", "presence")
        )


def test_uploads_that_are_too_big_or_not_images_are_refused(browser: Client) -> None:
    big = b"\xff\xd8\xff" + b"0" * UPLOAD_LIMIT
    reply = browser.upload("/api/people/photos", {"name": "Big"}, [("photos", "big.jpg", big)])
    assert reply.status == 413 and "too large" in reply.json()["error"]
    text = b"<html>hello</html>"
    reply = browser.upload("/api/people/photos", {"name": "Text"}, [("photos", "a.jpg", text)])
    assert reply.status == 400 and "not a JPEG or PNG" in reply.json()["error"]
    assert browser.get("/api/people").json()["people"] == []


def test_export_and_import_a_backup(browser: Client, tmp_path: Path) -> None:
    photo = (ROOT / "demo" / "faces" / "frame_004.jpg").read_bytes()
    browser.upload("/api/people/photos", {"name": "Backup"}, [("photos", "p.jpg", photo)])
    wait_until("listed", lambda: browser.get("/api/people").json()["people"])
    backup = browser.get("/api/people/export")
    assert backup.status == 200 and "attachment" in backup.headers["Content-Disposition"]
    assert json.loads(backup.body)["people"][0]["name"] == "Backup"
    browser.post("/api/people/forget", {"name": "Backup", "confirm": "Backup"})
    wait_until("forgotten", lambda: browser.get("/api/people").json()["people"] == [])
    reply = browser.upload("/api/people/import", {}, [("backup", "b.json", backup.body)])
    assert reply.status == 202
    wait_until("restored", lambda: browser.get("/api/people").json()["people"])
    browser.post("/api/people/forget", {"name": "Backup", "confirm": "Backup"})
    wait_until("forgotten again", lambda: browser.get("/api/people").json()["people"] == [])


def test_settings_hide_nothing_secret_and_the_doctor_runs(browser: Client) -> None:
    settings = browser.get("/api/settings").json()
    assert settings["web"]["tls_key"] is None and settings["camera"]["fps"] == 10
    checks = {row["check"]: row["status"] for row in browser.get("/api/doctor").json()["checks"]}
    assert checks["camera"] == "PASS" and "state dir" in checks


def test_wrong_passwords_are_refused_then_rate_limited(daemon: Running, browser: Client) -> None:
    client = Client(daemon.url)
    statuses = [client.sign_in("wrong password").status for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert client.sign_in(PASSWORD).status == 429  # even the right one, until the window passes
    assert browser.get("/api/state").status == 200  # a signed-in session is not affected
