"""MusicController with a FakePlayer and driven time: when music starts, follows, switches."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge.config import MusicConfig
from edge.events import (
    Event,
    FaceLost,
    MoodChanged,
    MoodSustained,
    PlayerState,
    StatusChanged,
    TrackStarted,
)
from edge.music.controller import MusicController
from edge.music.library import Library, Track
from edge.music.moods import MOOD_POINTS
from edge.music.player import FakePlayer
from edge.music.preferences import PreferenceStore

MOODS = ("happy", "sad", "calm", "angry", "neutral")


def library(per_mood: int = 6) -> Library:
    return Library(
        Track(
            id=f"{mood}/{i}",
            path=Path(f"/m/{mood}/{i}.ogg"),
            title=f"{mood} {i}",
            artist=f"artist {i % 2}",
            duration=100.0,
            genre="rock" if i % 2 else "jazz",
            point=MOOD_POINTS[mood],
            mood=mood,
            placed_by="folder",
        )
        for mood in MOODS
        for i in range(per_mood)
    )


def mood(label: str, face_id: int = 1, user: str | None = None, p: float = 0.8) -> MoodChanged:
    rest = (1 - p) / 6
    probs = dict.fromkeys(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), rest)
    probs[label] = p
    return MoodChanged(
        time=0,
        face_id=face_id,
        mood=label,
        previous=None,
        probabilities=probs,
        box=(0, 0, 1, 1),
        user=user,
    )


def sustained(label: str, face_id: int = 1) -> MoodSustained:
    return MoodSustained(time=0, face_id=face_id, mood=label)


class Rig:
    def __init__(self, tmp_path: Path | None = None, **config: object) -> None:
        self.player = FakePlayer(default_duration=100.0)
        self.events: list[Event] = []
        self.store = PreferenceStore(tmp_path / "prefs.sqlite") if tmp_path else None
        self.music = MusicController(
            library=library(),
            player=self.player,
            config=MusicConfig(**config),  # type: ignore[arg-type]
            preferences=self.store,
            rng=random.Random(1),
            clock=lambda: 1234.0,
        )
        self.music.start(self.events.append)
        self.now = 0.0

    def run(self, seconds: float, step: float = 0.2) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += step
            self.music.poll(self.now)

    def send(self, event: Event) -> None:
        self.events.append(event)
        self.music.emit(event)

    def started(self) -> list[TrackStarted]:
        return [e for e in self.events if isinstance(e, TrackStarted)]


def test_silent_until_a_mood_then_music_for_it() -> None:
    rig = Rig()
    rig.run(5)
    assert rig.started() == []
    rig.send(mood("sad"))
    rig.run(0.4)
    (started,) = rig.started()
    assert started.mood == "sad"
    assert "/sad/" in started.path
    assert started.time == 1234.0
    assert rig.music.state()["state"] == "playing"
    assert any(isinstance(e, StatusChanged) and e.component == "audio" for e in rig.events)


def test_weak_change_waits_for_the_track_boundary() -> None:
    rig = Rig()
    rig.send(mood("angry"))
    rig.run(1)
    rig.send(mood("disgust"))  # angry → disgust is a small step in valence–arousal
    rig.run(20)
    assert len(rig.started()) == 1
    rig.run(100)
    second = rig.started()[1]
    assert second.mood == "disgust"
    assert rig.music.history[1][2] == "boundary"


def test_sustained_strong_change_cross_fades_and_flicker_does_not() -> None:
    rig = Rig(switch_hold_s=1.0, crossfade_ms=1000)
    rig.send(mood("happy"))
    rig.run(1)
    rig.send(mood("sad"))
    rig.run(5)  # reported but never sustained (a passing misreading): no switch
    assert len(rig.started()) == 1
    rig.send(sustained("sad"))
    rig.run(0.6)
    rig.send(mood("happy"))  # back before switch_hold_s: no switch
    rig.run(5)
    assert len(rig.started()) == 1
    rig.send(mood("sad"))
    rig.run(2.4)  # still sustained: hold 1 s, then half the cross-fade
    assert [e.mood for e in rig.started()] == ["happy", "sad"]
    assert rig.music.history[-1][2] == "switch"
    assert rig.player.fades[-1][1] == 1000


def test_at_most_one_mid_track_switch_per_interval() -> None:
    rig = Rig(min_switch_interval_s=30)
    rig.send(mood("happy"))
    rig.run(1)
    rig.send(mood("sad"))
    rig.send(sustained("sad"))
    rig.run(3)
    rig.send(mood("happy"))
    rig.send(sustained("happy"))
    rig.run(10)
    assert [r for _, _, r in rig.music.history].count("switch") == 1
    rig.run(25)
    assert [r for _, _, r in rig.music.history].count("switch") == 2


def test_skip_like_and_preferences_per_user(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert rig.store is not None
    rig.send(mood("happy", user="ann"))
    rig.run(1)
    first = rig.started()[0]
    rig.music.next()
    rig.run(1)
    assert len(rig.started()) == 2
    assert rig.started()[1].path != first.path
    assert rig.started()[1].user == "ann"
    weights = rig.store.weights("ann", "happy")
    assert weights[f"track:{Path(first.path).parent.name}/{Path(first.path).stem}"] < 0
    rig.music.like()
    assert rig.store.feedback_count("ann") == 2
    assert rig.store.weights(None, "happy")  # the household learns too


def test_volume_pause_play_emit_player_state() -> None:
    rig = Rig()
    rig.send(mood("neutral"))
    rig.run(1)
    rig.music.set_volume(130)
    assert rig.player.volume == 1.0
    rig.music.pause()
    assert rig.player.paused
    assert rig.music.state()["state"] == "paused"
    rig.music.play()
    assert not rig.player.paused
    states = [e for e in rig.events if isinstance(e, PlayerState)]
    assert [s.state for s in states[-3:]] == ["playing", "paused", "playing"]
    assert states[-3].volume == 100


def test_override_switches_now_and_auto_off_freezes() -> None:
    rig = Rig()
    rig.send(mood("sad"))
    rig.run(1)
    rig.music.set_mood_override("happy")
    rig.run(1.5)
    assert rig.started()[-1].mood == "happy"
    rig.music.set_mood_override("grumpy")  # unknown: ignored
    assert rig.music.state()["mood_override"] == "happy"
    rig.music.set_mood_override(None)
    assert rig.music.mood == "sad"  # the camera's mood again
    rig.music.set_auto(False)
    rig.send(mood("angry"))
    rig.run(5)
    assert rig.music.mood == "sad"
    rig.music.set_auto(True)
    rig.run(0.2)
    assert rig.music.mood == "angry"


def test_device_missing_at_start_then_back() -> None:
    rig = Rig()
    rig.player.start_available = False
    rig.send(mood("happy"))
    rig.run(3)
    assert rig.started() == []
    assert rig.music.state()["state"] == "unavailable"
    rig.player.restore_device()
    rig.run(0.4)
    assert len(rig.started()) == 1
    statuses = [e.ok for e in rig.events if isinstance(e, StatusChanged)]
    assert statuses == [False, True]


def test_undecodable_track_is_skipped_and_never_retried() -> None:
    rig = Rig()
    rig.player.undecodable = {t.path for t in rig.music.library.tracks if t.mood == "sad"}
    rig.player.undecodable -= {Path("/m/sad/5.ogg")}
    rig.send(mood("sad"))
    rig.run(10)
    assert [e.path for e in rig.started()] == ["/m/sad/5.ogg"]


def test_several_people_blend_and_lost_faces_leave() -> None:
    rig = Rig()
    rig.send(mood("happy", face_id=1, user="ann"))
    rig.send(mood("sad", face_id=2, user="bob", p=0.9))
    rig.run(0.4)
    assert rig.music.listeners() == ["ann", "bob"]
    assert rig.started()[0].user == "ann, bob"
    assert rig.music.mood == "sad"  # bob's clearer mood leads the blend
    rig.send(FaceLost(time=0, face_id=2, last_mood="sad", user="bob"))
    rig.run(0.2)
    assert rig.music.listeners() == ["ann"]
    assert rig.music.mood == "happy"


@pytest.mark.parametrize("strategy", ["match", "lift"])
def test_strategies(strategy: str) -> None:
    rig = Rig(strategy=strategy, lift_tracks=2)
    rig.send(mood("angry"))
    for _ in range(4):
        rig.run(100)
    folders = [Path(e.path).parent.name for e in rig.started()]
    assert folders[0] == "angry"
    if strategy == "match":
        assert set(folders) == {"angry"}
    else:
        assert folders[-1] == "calm"


def test_tracks_shorter_than_a_poll_keep_the_music_going() -> None:
    rig = Rig()
    rig.player.default_duration = 0.1  # ends before the next poll, before a successor is queued
    rig.send(mood("happy"))
    rig.run(5)
    assert len(rig.started()) >= 10


def test_from_config_scans_on_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from music_audio import write_wav

    from edge.config import load_config

    write_wav(tmp_path / "songs" / "calm" / "a.wav", 0.2)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"general: {{state_dir: {tmp_path / 'state'}}}\nmusic: {{folders: [songs]}}\n"
    )
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    music = MusicController.from_config(load_config(config_file, environ={}))
    assert len(music.library) == 0  # nothing scanned before start
    music.start(lambda _e: None)
    try:
        assert [t.id for t in music.library.tracks] == ["songs/calm/a.wav"]
        assert (tmp_path / "state" / "music_library.json").is_file()
        assert (tmp_path / "state" / "music.sqlite").is_file()
    finally:
        music.stop()
