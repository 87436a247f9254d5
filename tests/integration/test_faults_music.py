"""Fault injection against the real daemon process: the sound device is missing and
then appears, the music folder holds corrupt songs. The frame loop keeps running
(the watchdog keeps getting pings), each loss and recovery is logged once, and a
SIGTERM still gives a clean exit 0."""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import Daemon, copy_frames, env_for, keeps_processing, stop_cleanly

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    return copy_frames(tmp_path)


def write_tone(path: Path, seconds: float = 0.5, hz: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = 22050
    samples = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)


@pytest.fixture
def run_daemon() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def test_missing_sound_device_is_retried_while_frames_flow(
    tmp_path: Path, frames: Path, run_daemon: list[Daemon]
) -> None:
    music = tmp_path / "music"
    write_tone(music / "neutral" / "tone.wav")
    device = tmp_path / "sound-card"  # SDL's disk driver cannot open a file in a missing folder
    env = env_for(
        tmp_path,
        frames,
        SDL_AUDIODRIVER="disk",
        SDL_DISKAUDIOFILE=str(device / "out.raw"),
        MOODBOX_MUSIC_FOLDERS=f"[{music}]",
        MOODBOX_MUSIC_AUDIO_RETRY_S="0.2",
        MOODBOX_MUSIC_AUDIO_RETRY_MAX_S="0.4",
    )
    daemon = Daemon(tmp_path, env=env, watchdog_usec=400_000)
    run_daemon.append(daemon)
    daemon.wait_log("audio device unavailable")
    keeps_processing(daemon, pings=5)  # several retries fail meanwhile
    assert daemon.count_logs("audio device unavailable") == 1

    device.mkdir()
    daemon.wait_log("audio device back")
    keeps_processing(daemon)
    assert daemon.count_logs("audio device back") == 1
    stop_cleanly(daemon)


def test_corrupt_songs_are_skipped_and_good_ones_play(
    tmp_path: Path, frames: Path, run_daemon: list[Daemon]
) -> None:
    music = tmp_path / "music"
    for mood in EMOTIONS:
        write_tone(music / mood / f"{mood}.wav")
    (music / "happy" / "noise.mp3").write_bytes(bytes(range(256)) * 40)
    (music / "sad" / "empty.flac").write_bytes(b"")
    (music / "neutral" / "truncated.ogg").write_bytes(b"OggS\x00\x02" + b"\x00" * 20)
    riff = music / "fear" / "bad-header.wav"
    riff.write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt " + b"\x01" * 40)
    env = env_for(
        tmp_path,
        frames,
        MOODBOX_MUSIC_FOLDERS=f"[{music}]",
        MOODBOX_DECIDE_HOLD_S="0.2",
    )
    daemon = Daemon(tmp_path, env=env, watchdog_usec=400_000)
    run_daemon.append(daemon)
    daemon.wait_for(
        "a good track to start",
        lambda: any(
            e["type"] == "track_started" and e["path"].endswith(".wav") for e in daemon.events
        ),
    )
    keeps_processing(daemon)
    corrupt = ("noise.mp3", "empty.flac", "truncated.ogg", "bad-header.wav")
    for name in corrupt:
        # Each corrupt file is refused once, when scanned or when it was to be played.
        assert daemon.count_logs(name) >= 1, name
    started = [e["path"] for e in daemon.events if e["type"] == "track_started"]
    assert not [path for path in started if path.endswith(corrupt)]
    stop_cleanly(daemon)
