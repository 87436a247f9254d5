"""Every behavioural fake of the suite, for the parts whose hardware or peers are absent here.

The music and identity fakes record calls and emit the state events the real
parts emit, through the same ``emit`` the app gives services, so a command's
effect can be checked on its state topic end to end through a real broker.
The camera fakes stand in for a camera that fails or for picamera2 (no Pi
camera here); the classifier is the real one, counting its runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edge.classify import TFLiteEmotionClassifier
from edge.config import MoodboxConfig
from edge.errors import CameraError
from edge.events import Event, PlayerState, UserSignedIn, UserSignedOut

SONGS = [("Morning", "Ann"), ("Rain", "Bo"), ("Late", "Cy")]


class FakeMusic:
    """A music controller with a playlist; every change emits a PlayerState event."""

    def __init__(self, emit: Callable[[Event], None] | None = None) -> None:
        self.emit = emit or (lambda _e: None)
        self.calls: list[tuple[str, Any]] = []
        self.playing = "stopped"
        self.index = 0
        self.volume = 50
        self.auto = True
        self.override: str | None = None
        self.likes: list[str] = []
        self.fail_next = False  # failure injection: the next call raises

    def _call(self, name: str, value: Any = None) -> None:
        self.calls.append((name, value))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError(f"injected failure in {name}")

    def _changed(self) -> None:
        title, artist = SONGS[self.index]
        self.emit(
            PlayerState(
                time=time.time(),
                state=self.playing,
                title=title,
                artist=artist,
                mood=self.override or "happy",
                user=None,
                volume=self.volume,
            )
        )

    def play(self) -> None:
        self._call("play")
        self.playing = "playing"
        self._changed()

    def pause(self) -> None:
        self._call("pause")
        self.playing = "paused"
        self._changed()

    def next(self) -> None:
        self._call("next")
        self.index = (self.index + 1) % len(SONGS)
        self.playing = "playing"
        self._changed()

    def like(self) -> None:
        self._call("like")
        self.likes.append(SONGS[self.index][0])

    def set_volume(self, percent: int) -> None:
        self._call("set_volume", percent)
        self.volume = percent
        self._changed()

    def set_mood_override(self, mood: str | None) -> None:
        self._call("set_mood_override", mood)
        self.override = mood

    def set_auto(self, enabled: bool) -> None:
        self._call("set_auto", enabled)
        self.auto = enabled

    def state(self) -> dict[str, Any]:
        title, artist = SONGS[self.index]
        return {
            "state": self.playing,
            "title": title,
            "artist": artist,
            "mood": self.override or "happy",
            "user": None,
            "volume": self.volume,
            "auto": self.auto,
            "mood_override": self.override,
        }


class FakeIdentity:
    """An identity stage: enrolling signs the person in, forgetting signs them out."""

    def __init__(self, emit: Callable[[Event], None] | None = None) -> None:
        self.emit = emit or (lambda _e: None)
        self.enrolled: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def enroll_from_camera(self, name: str) -> None:
        self.calls.append(("enroll", name))
        self.enrolled.add(name)
        self.emit(UserSignedIn(time=time.time(), user=name, face_id=1))

    def forget(self, name: str) -> bool:
        self.calls.append(("forget", name))
        if name not in self.enrolled:
            return False
        self.enrolled.discard(name)
        self.emit(UserSignedOut(time=time.time(), user=name))
        return True


class FlakySource:
    """Fails to open ``failures`` times, then replays the demo (a behavioural fake)."""

    def __init__(self, inner_factory: Callable[[MoodboxConfig], Any], failures: int) -> None:
        self.inner_factory, self.failures, self.opens = inner_factory, failures, 0

    def __call__(self, config: MoodboxConfig) -> Any:
        self.opens += 1
        if self.opens <= self.failures:
            raise CameraError("fake: camera unplugged")
        return self.inner_factory(config)


class FakeRequest:
    def __init__(self, main: np.ndarray, lores_yuv: np.ndarray) -> None:
        self._arrays = {"main": main, "lores": lores_yuv}

    def __enter__(self) -> FakeRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def make_array(self, name: str) -> np.ndarray:
        return self._arrays[name].copy()


class FakePicamera2:
    """picamera2's Picamera2 where no Pi camera exists: main BGR, lores YUV420."""

    frame: np.ndarray

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num

    def create_video_configuration(self, **streams: object) -> dict[str, object]:
        return streams

    def configure(self, config: dict[str, object]) -> None:
        self.config = config

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def captured_request(self) -> FakeRequest:
        small = cv2.resize(self.frame, (320, 240), interpolation=cv2.INTER_AREA)
        return FakeRequest(self.frame, cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420))


class CountingClassifier(TFLiteEmotionClassifier):
    """The real classifier, counting how often it runs and keeping what it was shown."""

    calls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inputs: list[np.ndarray] = []

    def classify(self, face: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.inputs.append(face.copy())
        return super().classify(face)
