"""The real pygame mixer under SDL's disk and dummy drivers; a missing device; bad files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from music_audio import write_corrupt, write_wav

from edge.music.player import PlayerEvent, PygamePlayer


def run_until(player: PygamePlayer, kinds: set[str], timeout: float = 5.0) -> list[PlayerEvent]:
    """Poll (with the real clock) until an event of one of ``kinds`` arrives."""
    seen: list[PlayerEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = player.poll(time.monotonic())
        seen.extend(events)
        if any(e.kind in kinds for e in events):
            return seen
        time.sleep(0.02)
    return seen


def test_disk_driver_produces_audio_and_queued_track_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "audio.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(out))
    first = write_wav(tmp_path / "a.wav", 0.25, 440)
    second = write_wav(tmp_path / "b.wav", 0.25, 660)
    player = PygamePlayer(frequency=22050, buffer=512)
    try:
        assert [e.kind for e in player.poll(time.monotonic())] == ["available"]
        player.set_volume(0.5)
        player.play(first, fade_ms=50)
        player.queue(second)
        events = run_until(player, {"ended"})
        assert [(e.kind, e.path) for e in events][:2] == [("started", first), ("ended", first)]
        assert ("started", second) in [(e.kind, e.path) for e in events]
        events = run_until(player, {"ended"})
        assert ("ended", second) in [(e.kind, e.path) for e in events]
    finally:
        player.close()
    data = out.read_bytes()
    assert len(data) > 10_000
    assert any(data[i] not in (0, 255) for i in range(0, len(data), 97))  # not silence


def test_pause_resume_and_fade_through(tmp_path: Path) -> None:
    first = write_wav(tmp_path / "a.wav", 2.0)
    second = write_wav(tmp_path / "b.wav", 0.2)
    player = PygamePlayer(frequency=22050, buffer=512)
    try:
        player.play(first)
        assert [e.kind for e in player.poll(time.monotonic())] == ["available", "started"]
        player.pause()
        time.sleep(0.1)
        assert player.poll(time.monotonic()) == []  # paused is not ended
        player.resume()
        player.play(second, fade_ms=200)  # fades the first out, then starts the second
        events = run_until(player, {"started"})
        assert [(e.kind, e.path) for e in events] == [("started", second)]
        events = run_until(player, {"ended"})
        assert [(e.kind, e.path) for e in events] == [("ended", second)]
    finally:
        player.close()


def test_undecodable_file_is_reported_not_raised(tmp_path: Path) -> None:
    bad = write_corrupt(tmp_path / "bad.ogg")
    player = PygamePlayer()
    try:
        player.poll(time.monotonic())
        player.play(bad)
        events = player.poll(time.monotonic())
        assert [(e.kind, e.path) for e in events] == [("failed", bad)]
        player.play(tmp_path / "gone.wav")
        assert [e.kind for e in player.poll(time.monotonic())] == ["failed"]
    finally:
        player.close()


def test_missing_device_retries_with_backoff_and_logs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    track = write_wav(tmp_path / "a.wav", 0.2)
    player = PygamePlayer(retry_s=1.0, retry_max_s=4.0)
    try:
        assert [e.kind for e in player.poll(100.0)] == ["unavailable"]
        player.play(track)  # remembered until the device is there
        assert not player.available
        assert player.poll(100.5) == []  # backoff: no retry yet
        assert player.poll(101.0) == []  # retried, failed again, not reported again
        assert player.poll(102.0) == []  # next retry only at 103.0 (doubling)
        warnings = [r for r in caplog.records if "audio device unavailable" in r.getMessage()]
        assert len(warnings) == 1
        monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
        events = player.poll(103.0)
        assert [(e.kind, e.path) for e in events] == [("available", None), ("started", track)]
        assert player.available
    finally:
        player.close()


def test_a_track_starts_at_a_position_and_says_where_it_is(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handover continues a track mid-way: OGG seeks; a WAV, which pygame cannot seek
    in, plays from its start instead of failing."""
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    song = repo_root / "music" / "happy" / "demo-happy-1.ogg"  # 15 s
    player = PygamePlayer()
    try:
        run_until(player, {"available"})
        assert player.position() is None
        player.play(song, start_s=12.0)
        assert [e.kind for e in player.poll(time.monotonic())] == ["started"]
        time.sleep(0.3)
        position = player.position()
        assert position is not None and 12.0 <= position < 14.5
        began = time.monotonic()
        events = run_until(player, {"ended"}, timeout=10)
        assert ("ended", song) in [(e.kind, e.path) for e in events]
        assert time.monotonic() - began < 10  # the last 3 s, not all 15
        wav = write_wav(tmp_path / "tone.wav", 1.0, 440)
        player.play(wav, start_s=0.5)
        assert [e.kind for e in player.poll(time.monotonic())] == ["started"]
    finally:
        player.close()
