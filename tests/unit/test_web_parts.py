"""The web app's parts one at a time: password hashes, sign-in limits, the history, the hub."""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import numpy as np
import pytest

from edge.control import InvalidCommandError
from edge.events import MoodChanged, TrackStarted, UserSignedIn, UserSignedOut
from edge.history import GUESTS, HistoryRecorder, HistoryStore
from edge.web.auth import (
    PASSWORD_FILE,
    SignInLimiter,
    check_password,
    read_runtime,
    session_secret,
    set_password,
    write_runtime,
)
from edge.web.commands import decode_vectors, encode_vectors, parse_rename
from edge.web.service import CLIENT_QUEUE, EventHub

PROBS = {"happy": 0.9, "neutral": 0.1}


def test_the_password_is_kept_as_a_salted_slow_hash(tmp_path: Path) -> None:
    path = set_password(tmp_path, "correct horse")
    stored = json.loads(path.read_text())
    assert path.name == PASSWORD_FILE and path.stat().st_mode & 0o777 == 0o600
    assert stored["scheme"] == "scrypt" and stored["n"] >= 2**14
    assert "correct horse" not in path.read_text()
    assert check_password(tmp_path, "correct horse")
    assert not check_password(tmp_path, "correct horsE")
    other = tmp_path / "other"
    other.mkdir()
    set_password(other, "correct horse")
    assert json.loads((other / PASSWORD_FILE).read_text())["salt"] != stored["salt"]


def test_a_short_password_or_none_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 8"):
        set_password(tmp_path, "short")
    assert not check_password(tmp_path, "anything at all")


def test_secret_and_runtime_files_are_private(tmp_path: Path) -> None:
    key = session_secret(tmp_path)
    assert session_secret(tmp_path) == key and len(key) == 32
    path = write_runtime(tmp_path, "http://127.0.0.1:1", "t0")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "web_secret").stat().st_mode & 0o777 == 0o600
    runtime = read_runtime(tmp_path)
    assert runtime is not None and runtime["pid"] > 0 and len(runtime) == 3


def test_sign_in_is_rate_limited_per_address_and_in_all() -> None:
    now = [0.0]
    limiter = SignInLimiter(attempts=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(60)
    assert limiter.retry_after("b") == 0  # another address may still try
    now[0] = 61
    assert limiter.retry_after("a") == 0
    for address in "cdefghijklmn":  # many addresses: the global limit (4 × 3) holds
        limiter.failed(address)
    assert limiter.retry_after("z") > 0


def test_history_keeps_moods_plays_and_presence_per_person(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        recorder = HistoryRecorder(store, retention_days=30, clock=lambda: 10_000.0)
        for event in (
            UserSignedIn(time=1000, user="ada", face_id=1),
            MoodChanged(1000, 1, "happy", None, PROBS, (0, 0, 9, 9), "ada"),
            MoodChanged(1100, 1, "sad", "happy", PROBS, (0, 0, 9, 9), "ada"),
            MoodChanged(1050, 2, "neutral", None, PROBS, (0, 0, 9, 9), None),
            TrackStarted(1010, "Morning", "Ann", "happy", "ada", "/m.ogg"),
            UserSignedOut(time=1200, user="ada"),
        ):
            recorder.emit(event)
        day = store.day(0, 86400, now=5000)
        ada = day["moods"]["ada"]
        assert [(s.mood, s.start, s.end) for s in ada] == [
            ("happy", 1000, 1100),
            ("sad", 1100, 1200),  # until she signed out
        ]
        guests = day["moods"][GUESTS]
        assert [(s.mood, s.end) for s in guests] == [("neutral", 1350)]  # five minutes at most
        assert day["plays"][0]["title"] == "Morning"
        store.rename("ada", "Ada L")
        assert "Ada L" in store.day(0, 86400)["moods"]
        still_here = store.day(0, 86400, now=1150)["moods"]["Ada L"]
        assert still_here[-1].end == 1150  # no sign-out yet: until now
        assert store.forget("Ada L") == 5  # two moods, one play, two presence rows
        assert set(store.day(0, 86400)["moods"]) == {GUESTS}
        # The stage signs a forgotten person out a frame later: no row comes back.
        assert not store.record(UserSignedOut(time=1300, user="Ada L"))
        assert store.forget("Ada L") == 0


def test_history_past_retention_is_pruned(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        day = 86400.0
        HistoryRecorder(store, retention_days=30, clock=lambda: 40 * day).emit(
            MoodChanged(1 * day, 1, "happy", None, PROBS, (0, 0, 9, 9), None)
        )
        assert store.counts()["moods"] == 0  # 39 days old: deleted by the same call's prune
        store.record(MoodChanged(39 * day, 1, "happy", None, PROBS, (0, 0, 9, 9), None))
        assert store.prune(10 * day) == 0 and store.counts()["moods"] == 1


def test_a_slow_page_loses_events_and_never_blocks_the_loop() -> None:
    hub = EventHub()
    slow, fast = hub.subscribe(), hub.subscribe()
    started = time.perf_counter()
    for i in range(CLIENT_QUEUE + 50):
        hub.publish("mood_changed", str(i))
        fast.messages.get_nowait()
    assert time.perf_counter() - started < 0.5
    assert slow.dropped == 50 and fast.dropped == 0 and hub.dropped == 50
    hub.close()
    assert fast.messages.get_nowait() is None  # the end of its stream
    with pytest.raises(queue.Empty):
        fast.messages.get_nowait()
    assert hub.clients == 0 and hub.closed


def test_web_command_payloads_are_validated() -> None:
    assert parse_rename(b'{"old": "ada", "new": "Ada L"}') == ("ada", "Ada L")
    for bad in (b'{"old": "ada"}', b"not json", b'{"old": "ada", "new": "\\u0000x"}'):
        with pytest.raises(InvalidCommandError):
            parse_rename(bad)
    vectors = [np.ones(128, np.float32)]
    assert np.array_equal(decode_vectors(encode_vectors(vectors))[0], vectors[0])
    with pytest.raises(InvalidCommandError, match="128"):
        decode_vectors(encode_vectors([np.ones(3, np.float32)]))
    with pytest.raises(InvalidCommandError):
        decode_vectors(encode_vectors([np.full(128, np.nan, np.float32)]))


def test_a_face_recognised_after_its_mood_gives_that_mood_to_the_person(tmp_path: Path) -> None:
    from edge.household import Household

    household = Household()
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        recorder = HistoryRecorder(store, retention_days=30, household=household)
        for event in (
            MoodChanged(1000, 7, "happy", None, PROBS, (0, 0, 9, 9), None),
            UserSignedIn(time=1003, user="ada", face_id=7),
        ):
            household.apply(event)
            recorder.emit(event)
        assert household.faces[0].user == "ada"
        assert [s.mood for s in store.day(0, 86400, now=1010)["moods"]["ada"]] == ["happy"]


def test_live_pages_are_capped_to_leave_threads_for_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.config import MoodboxConfig
    from edge.control import RemoteControls
    from edge.household import Household
    from edge.stats import Stats
    from edge.web.app import create_app
    from edge.web.service import WebService

    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    web = WebService(
        MoodboxConfig(), household=Household(), stats=Stats(), controls=RemoteControls()
    )
    client = create_app(web).test_client()
    auth = {"Authorization": f"Bearer {web.token}"}
    assert client.get("/api/events", headers={"Authorization": "Bearer wrong"}).status_code == 401
    held = [web.hub.subscribe() for _ in range(web.settings.threads - 2)]
    assert client.get("/api/events", headers=auth).status_code == 503
    web.hub.unsubscribe(held[0])
    stream = client.get("/api/events", headers=auth)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    assert next(stream.response).startswith(b"retry:")
    stream.close()
