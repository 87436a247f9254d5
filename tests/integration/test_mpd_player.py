"""The mpd backend against a real Music Player Daemon (null output) on loopback.

It plays, queues, pauses, fades by volume ramps, reports ended tracks, fails
a track MPD does not have, survives the server being killed and started
again (unavailable, then available, each logged once, the track continuing
where it was), and under the real MusicController skips to another pick and
learns the skip as it does with pygame.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import write_config
from mpd_server import MopidyServer, MpdServer, find_mopidy, find_mpd
from mqtt_broker import HOST
from music_audio import write_wav

from edge.config import load_config
from edge.doctor import Status, check_audio
from edge.events import Event, MoodChanged, TrackStarted
from edge.music.controller import MusicController
from edge.music.mpd import MpdPlayer
from edge.music.player import PlayerEvent
from edge.music.players import make_player

PASSWORD = "s3cret"  # noqa: S105 (the test server's)


@contextmanager
def serve(workdir: Path, *, library: Path | None = None, **options: Any) -> Iterator[MpdServer]:
    """A real mpd, database up to date; its music: a few short tones, or ``library``."""
    if find_mpd() is None:
        message = "mpd not found: apt-get install mpd (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = MpdServer(workdir, **options)
    server.music.parent.mkdir(parents=True)
    if library is not None:
        server.music.symlink_to(library)
    else:
        server.music.mkdir()
        write_wav(server.music / "short_a.wav", 0.4, 440)
        write_wav(server.music / "short_b.wav", 0.4, 660)
        write_wav(server.music / "long.wav", 6.0, 550)
        for mood in ("happy", "sad"):
            for i in range(3):
                write_wav(server.music / mood / f"{mood}{i}.wav", 4.0, 300 + 50 * i)
    server.start()
    try:
        server.update()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mpd_server(tmp_path: Path) -> Iterator[MpdServer]:
    with serve(tmp_path / "mpd") as server:
        yield server


def player_for(server: MpdServer, **kwargs: object) -> MpdPlayer:
    options: dict[str, object] = {"timeout_s": 0.5, "retry_s": 0.2, "retry_max_s": 0.4}
    options.update(kwargs)
    return MpdPlayer(
        host=server.host,
        port=server.port,
        music_root=server.music,
        **options,  # type: ignore[arg-type]
    )


class Poller:
    """Polls a player as the frame loop would (about 50 times a second), timing each poll."""

    def __init__(self, player: MpdPlayer) -> None:
        self.player = player
        self.events: list[PlayerEvent] = []
        self.times: list[float] = []

    def poll(self) -> list[PlayerEvent]:
        begin = time.perf_counter()
        events = self.player.poll(time.monotonic())
        self.times.append(time.perf_counter() - begin)
        self.events.extend(events)
        return events

    def until(
        self, done: Callable[[list[PlayerEvent]], bool], timeout_s: float = 5.0
    ) -> list[PlayerEvent]:
        seen: list[PlayerEvent] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen.extend(self.poll())
            if done(seen):
                return seen
            time.sleep(0.02)
        raise AssertionError(f"timed out; saw {[(e.kind, e.path) for e in seen]}")

    def kinds(self, seen: list[PlayerEvent]) -> list[tuple[str, str | None]]:
        return [(e.kind, e.path.name if e.path else None) for e in seen]


def has(kind: str, name: str | None = None) -> Callable[[list[PlayerEvent]], bool]:
    return lambda seen: any(
        e.kind == kind and (name is None or (e.path is not None and e.path.name == name))
        for e in seen
    )


def test_plays_queues_and_reports_ended_tracks(mpd_server: MpdServer) -> None:
    player = player_for(mpd_server)
    poller = Poller(player)
    observer = mpd_server.client()
    try:
        assert poller.kinds(poller.until(has("available"))) == [("available", None)]
        assert player.available
        first, second = mpd_server.music / "short_a.wav", mpd_server.music / "short_b.wav"
        player.play(first)
        player.queue(second)
        assert poller.kinds(poller.poll()) == [("started", "short_a.wav")]
        assert observer.currentsong()["file"] == "short_a.wav"
        assert [song["file"] for song in observer.playlistinfo()] == [
            "short_a.wav",
            "short_b.wav",
        ]
        seen = poller.until(has("ended", "short_b.wav"))
        assert poller.kinds(poller.events) == [
            ("available", None),
            ("started", "short_a.wav"),
            ("ended", "short_a.wav"),
            ("started", "short_b.wav"),
            ("ended", "short_b.wav"),
        ]
        assert seen
        assert observer.status()["state"] == "stop"
        assert len(observer.playlistinfo()) <= 1  # the played entries do not pile up
    finally:
        observer.disconnect()
        player.close()
    median = statistics.median(poller.times)
    assert median < 0.005, f"poll median {median * 1000:.2f} ms"
    assert max(poller.times) < 0.5  # never beyond one call's timeout


def test_pause_resume_and_stop(mpd_server: MpdServer) -> None:
    player = player_for(mpd_server)
    poller = Poller(player)
    observer = mpd_server.client()
    try:
        poller.until(has("available"))
        player.play(mpd_server.music / "long.wav")
        poller.poll()
        player.pause()
        assert observer.status()["state"] == "pause"
        pause_end = time.monotonic() + 0.5
        while time.monotonic() < pause_end:
            assert poller.poll() == []  # paused is not ended
            time.sleep(0.02)
        player.resume()
        assert observer.status()["state"] == "play"
        player.stop()
        assert observer.status()["state"] == "stop"
        assert observer.playlistinfo() == []
        assert poller.poll() == []  # a stop is not an end
    finally:
        observer.disconnect()
        player.close()


def test_a_track_starts_at_a_position_for_a_handover(mpd_server: MpdServer) -> None:
    player = player_for(mpd_server)
    poller = Poller(player)
    observer = mpd_server.client()
    try:
        poller.until(has("available"))
        player.play(mpd_server.music / "long.wav", start_s=3.5)  # 6 s long
        assert poller.kinds(poller.poll()) == [("started", "long.wav")]
        assert observer.status()["state"] == "play"
        assert float(observer.status()["elapsed"]) >= 3.5
        poller.until(lambda _seen: (player.position() or 0) > 3.6)
        poller.until(has("ended", "long.wav"), timeout_s=4)  # 2.5 s left, not 6
    finally:
        observer.disconnect()
        player.close()


def test_fades_are_volume_ramps_on_poll(mpd_server: MpdServer) -> None:
    player = player_for(mpd_server)
    poller = Poller(player)
    observer = mpd_server.client()
    try:
        poller.until(has("available"))
        player.set_volume(0.8)
        player.play(mpd_server.music / "long.wav", fade_ms=600)
        assert int(observer.status()["volume"]) == 0  # a cold start begins silent
        levels = []
        began = time.monotonic()
        while time.monotonic() - began < 0.9:
            poller.poll()
            levels.append(int(observer.status()["volume"]))
            time.sleep(0.05)
        assert levels == sorted(levels)  # up, never down
        assert len(set(levels)) >= 5  # in steps, one per poll
        assert levels[-1] == 80
        # A skip with a fade: the first track ramps down, then the next ramps up.
        player.play(mpd_server.music / "happy" / "happy0.wav", fade_ms=600)
        down = []
        seen = []
        while not has("started", "happy0.wav")(seen):
            seen.extend(poller.poll())
            # MPD may show no current song for a moment while it changes songs.
            down.append((observer.currentsong().get("file"), int(observer.status()["volume"])))
            time.sleep(0.05)
        old = [v for f, v in down if f == "long.wav"]
        assert old == sorted(old, reverse=True)  # down, never up
        assert len(old) >= 2 and old[-1] < old[0]
        assert down[-1][1] == 0  # the next track starts silent
        poller.until(lambda _: observer.currentsong().get("file") == "happy/happy0.wav")
        poller.until(lambda _: int(observer.status()["volume"]) == 80, timeout_s=2)
    finally:
        observer.disconnect()
        player.close()


def test_a_track_mpd_cannot_play_fails_without_raising(
    mpd_server: MpdServer, tmp_path: Path
) -> None:
    player = player_for(mpd_server)
    poller = Poller(player)
    try:
        poller.until(has("available"))
        outside = write_wav(tmp_path / "elsewhere.wav", 0.2)
        player.play(outside)
        assert poller.kinds(poller.poll()) == [("failed", "elsewhere.wav")]
        unknown = write_wav(mpd_server.music / "not_in_db.wav", 0.2)  # no update since
        player.play(unknown)
        assert poller.kinds(poller.poll()) == [("failed", "not_in_db.wav")]
        player.play(mpd_server.music / "short_a.wav")
        assert poller.kinds(poller.poll()) == [("started", "short_a.wav")]
    finally:
        player.close()


def test_survives_mpd_killed_and_restarted(
    mpd_server: MpdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.music.mpd")
    player = player_for(mpd_server)
    poller = Poller(player)
    try:
        poller.until(has("available"))
        player.play(mpd_server.music / "long.wav")
        poller.until(lambda _: player._elapsed > 1.0, timeout_s=4)  # well into the track
        mpd_server.kill()
        lost = poller.until(has("unavailable"), timeout_s=3)
        assert not player.available
        assert [e.kind for e in lost] == ["unavailable"]
        down_times = []
        down_end = time.monotonic() + 1.5  # several reconnect attempts, all refused
        while time.monotonic() < down_end:
            begin = time.perf_counter()
            assert player.poll(time.monotonic()) == []  # reported once, never raised
            down_times.append(time.perf_counter() - begin)
            time.sleep(0.02)
        player.set_volume(0.5)  # commands while away do not raise either
        player.pause()
        player.resume()
        mpd_server.start()
        back = poller.until(has("available"), timeout_s=5)
        assert [e.kind for e in back] == ["available"]
        assert player.available
        observer = mpd_server.client()
        try:
            assert observer.currentsong()["file"] == "long.wav"
            status = observer.status()
            assert status["state"] == "play"
            assert float(status["elapsed"]) > 0.9  # continued where it was, not from 0
        finally:
            observer.disconnect()
        poller.until(has("ended", "long.wav"), timeout_s=8)
    finally:
        player.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "edge.music.mpd"]
    assert sum("lost" in m or "unavailable" in m for m in messages) == 1, messages
    assert sum("back after" in m for m in messages) == 1, messages
    assert max(down_times) < 0.05, f"poll while down: max {max(down_times) * 1000:.1f} ms"


def test_password_and_an_output_without_a_mixer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(tmp_path / "mpd", password=PASSWORD, mixer="none") as server:
        wrong = player_for(server, password="not" + PASSWORD)
        try:
            assert [e.kind for e in Poller(wrong).until(has("unavailable"))] == ["unavailable"]
        finally:
            wrong.close()
        player = player_for(server, password=PASSWORD)
        poller = Poller(player)
        try:
            poller.until(has("available"))
            player.set_volume(0.5)
            player.play(server.music / "short_a.wav", fade_ms=200)
            player.queue(server.music / "short_b.wav")
            poller.until(has("ended", "short_b.wav"))  # fades are cuts, the music plays on
            assert poller.kinds(poller.events)[1:] == [
                ("started", "short_a.wav"),
                ("ended", "short_a.wav"),
                ("started", "short_b.wav"),
                ("ended", "short_b.wav"),
            ]
        finally:
            player.close()
    warnings = [r for r in caplog.records if "cannot set the volume" in r.getMessage()]
    assert len(warnings) == 1


def test_an_idle_connection_is_kept_alive(tmp_path: Path) -> None:
    with serve(tmp_path / "mpd", connection_timeout_s=1) as server:
        player = player_for(server, keepalive_s=0.3)
        poller = Poller(player)
        try:
            poller.until(has("available"))
            player.play(server.music / "long.wav")
            player.pause()
            idle_end = time.monotonic() + 2.5  # paused: no status is read, only pings
            while time.monotonic() < idle_end:
                poller.poll()
                time.sleep(0.05)
            player.resume()
            poller.poll()
            assert [e.kind for e in poller.events] == ["available", "started"]
        finally:
            player.close()


def test_a_connection_dropped_while_paused_reconnects_and_resumes_the_same_play(
    tmp_path: Path,
) -> None:
    with serve(tmp_path / "mpd", connection_timeout_s=1) as server:
        player = player_for(server, keepalive_s=60)
        poller = Poller(player)
        observer = server.client()
        try:
            poller.until(has("available"))
            player.play(server.music / "long.wav")
            player.queue(server.music / "short_a.wav")
            poller.until(lambda _: player._elapsed > 0.5)
            player.pause()
            observer.ping()
            time.sleep(2.0)  # MPD drops the silent client after its connection_timeout
            observer.disconnect()
            observer = server.client()
            player.resume()  # finds the connection gone: lost, reconnect, then resumed
            poller.until(has("available"))
            assert [e.kind for e in poller.events] == [
                "available",
                "started",
                "unavailable",
                "available",
            ]
            status = observer.status()
            assert status["state"] == "play"
            assert observer.currentsong()["file"] == "long.wav"
            assert float(status["elapsed"]) > 0.5  # the same play, not started again
            assert [e["file"] for e in observer.playlistinfo()] == ["long.wav", "short_a.wav"]
        finally:
            observer.disconnect()
            player.close()


def test_a_hung_server_stalls_one_poll_at_most_by_the_timeout(mpd_server: MpdServer) -> None:
    player = player_for(mpd_server, timeout_s=0.3)
    poller = Poller(player)
    try:
        poller.until(has("available"))
        player.play(mpd_server.music / "long.wav")
        poller.poll()
        mpd_server.freeze()
        try:
            lost = poller.until(has("unavailable"), timeout_s=3)
            assert [e.kind for e in lost] == ["unavailable"]
            stalls = sorted(poller.times)[-2:]
            assert stalls[-1] < 0.45  # the one call that waited for its timeout
            assert stalls[0] < 0.05  # and only one
            polls_before = len(poller.times)
            frozen_end = time.monotonic() + 1.0  # reconnects wait on their thread, not here
            while time.monotonic() < frozen_end:
                poller.poll()
                time.sleep(0.02)
            assert max(poller.times[polls_before:]) < 0.05
        finally:
            mpd_server.thaw()
        poller.until(has("available"), timeout_s=5)
    finally:
        player.close()


def test_a_server_that_never_greets_never_blocks_the_loop() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind((HOST, 0))
        silent.listen(8)  # connections are accepted by the kernel and never answered
        port = silent.getsockname()[1]
        player = MpdPlayer(host=HOST, port=port, music_root=Path("/srv/music"), timeout_s=0.3)
        poller = Poller(player)
        try:
            player.play(Path("/srv/music/a.ogg"))
            poller.until(has("unavailable"), timeout_s=3)
            assert not player.available
            assert max(poller.times) < 0.05
        finally:
            player.close()


def test_controller_plays_skips_and_learns_through_mpd(
    mpd_server: MpdServer, tmp_path: Path, clean_env: None
) -> None:
    config = load_config(
        write_config(
            tmp_path,
            f"""
general:
  state_dir: {tmp_path / "state"}
music:
  folders: [{mpd_server.music}]
  fade_in_ms: 0
  player:
    type: mpd
    mpd_host: {mpd_server.host}
    mpd_port: {mpd_server.port}
""",
        )
    )
    assert isinstance(make_player(config), MpdPlayer)
    music = MusicController.from_config(config)
    assert isinstance(music.player, MpdPlayer)
    events: list[Event] = []
    music.start(events.append)
    observer = mpd_server.client()

    def started() -> list[TrackStarted]:
        return [e for e in events if isinstance(e, TrackStarted)]

    def poll_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            music.poll(time.monotonic())
            time.sleep(0.02)

    try:
        probabilities = dict.fromkeys(
            ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), 0.02
        )
        probabilities["happy"] = 0.88
        music.emit(
            MoodChanged(
                time=0,
                face_id=1,
                mood="happy",
                previous=None,
                probabilities=probabilities,
                box=(0, 0, 1, 1),
                user=None,
            )
        )
        poll_until(lambda: len(started()) == 1)
        first = music.current
        assert first is not None
        assert observer.currentsong()["file"] == first.path.relative_to(mpd_server.music).as_posix()
        music.pause()
        assert observer.status()["state"] == "pause"
        music.play()
        assert observer.status()["state"] == "play"
        music.next()  # a skip: remembered, and another pick plays
        poll_until(lambda: len(started()) == 2)
        second = music.current
        assert second is not None
        assert second.id != first.id
        assert (
            observer.currentsong()["file"] == second.path.relative_to(mpd_server.music).as_posix()
        )
        assert music.history[-1][2] == "skip"
        assert music.preferences is not None
        assert music.preferences.feedback_count() == 1
        assert music.preferences.weights(None, "happy")[f"track:{first.id}"] < 0
        poll_until(lambda: len(started()) == 3, timeout_s=8)  # the next pick at the boundary
        assert music.history[-1][2] == "boundary"
    finally:
        observer.disconnect()
        music.stop()


def test_doctor_checks_the_mpd_server(mpd_server: MpdServer, tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f"music:\n  player:\n    type: mpd\n    mpd_host: {mpd_server.host}\n"
        f"    mpd_port: {mpd_server.port}\n",
    )
    [result] = check_audio(load_config(path, environ={}))
    assert result.status == Status.PASS, result
    assert "MPD 0." in result.detail
    mpd_server.kill()
    [result] = check_audio(load_config(path, environ={}))
    assert result.status == Status.FAIL
    assert "unreachable" in result.detail


def test_mopidy_plays_queues_pauses_and_fades(tmp_path: Path) -> None:
    """The same adapter drives Mopidy's MPD frontend, with Mopidy-Local's URIs."""
    if find_mopidy() is None:
        message = "mopidy not found: apt-get install mopidy mopidy-mpd mopidy-local (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = MopidyServer(tmp_path / "mopidy")
    server.music.mkdir(parents=True)
    first = write_wav(server.music / "happy" / "sun ny.wav", 0.6, 440)
    second = write_wav(server.music / "b.wav", 0.6, 660)
    long = write_wav(server.music / "long.wav", 6.0, 550)
    server.update()
    server.start()
    player = MpdPlayer(
        host=server.host, port=server.port, music_root=server.music, uri_prefix="local:track:"
    )
    poller = Poller(player)
    observer = server.client()
    try:
        poller.until(has("available"), timeout_s=10)
        player.play(first)
        player.queue(second)
        poller.until(has("ended", "b.wav"))
        assert poller.kinds(poller.events) == [
            ("available", None),
            ("started", "sun ny.wav"),
            ("ended", "sun ny.wav"),
            ("started", "b.wav"),
            ("ended", "b.wav"),
        ]
        player.play(long, fade_ms=400)
        # Mopidy starts a track a moment after playid (MPD at once).
        poller.until(lambda _: observer.currentsong().get("file") == "local:track:long.wav")
        poller.until(lambda _: int(observer.status()["volume"]) == 100, timeout_s=3)
        player.pause()
        assert observer.status()["state"] == "pause"
        player.resume()
        assert observer.status()["state"] == "play"
        player.stop()
        assert observer.status()["state"] == "stop"
    finally:
        observer.disconnect()
        player.close()
        server.stop()
    assert statistics.median(poller.times) < 0.01


def test_daemon_plays_the_demo_through_mpd(tmp_path: Path, repo_root: Path) -> None:
    """`moodbox run` with type mpd: the demo's moods pick music that MPD plays."""
    # MPD's music directory is the demo library, so the daemon's paths map onto it.
    with serve(tmp_path / "mpd", library=repo_root / "music") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
        env.update(
            {
                "MOODBOX_MUSIC_PLAYER": f"{{type: mpd, mpd_host: {server.host}, "
                f"mpd_port: {server.port}}}",
                "MOODBOX_CAMERA_FPS": "10",
                "MOODBOX_DECIDE_HOLD_S": "0.5",
                "MOODBOX_IDENTIFY_ENABLED": "false",
                "STATE_DIRECTORY": str(tmp_path / "state"),
            }
        )
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--max-frames", "40"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        started = [e for e in events if e["type"] == "track_started"]
        assert started, result.stderr[-2000:]
        assert started[0]["path"].startswith(str(repo_root / "music"))
        observer = server.client()
        try:
            assert observer.status()["state"] == "stop"  # a clean stop stops the server too
            assert observer.playlistinfo() == []
        finally:
            observer.disconnect()
