"""Pure policy: smooth each face's emotion probabilities and report a mood once it has held.

No clock reads and no I/O: observations and ``now`` come in, events go out,
so tests drive time frame by frame and a replay decides as a live camera would.

Per track, probability vectors are averaged with an exponential moving average
whose weight follows the real time between frames (time constant
``smoothing_s``), so a slow and a fast camera smooth alike. A mood is reported
when it has led the smoothed vector for ``hold_s``; a later mood must lead the
reported one by ``margin`` for ``hold_s`` before it replaces it (hysteresis).

A second, slower average (time constant ``sustain_s``) confirms a reported mood
as *sustained* once the mood also leads it by ``sustain_margin``. The two answer
different questions: the fast one says what the music should be next (the next
track follows it within seconds), the slow one says whether the music should be
interrupted for it. The classifier's systematic confusions (sad read as
neutral, fear as sad) leave the fast average on a wrong mood for seconds at a
time, and a face holding an expression repeats the same misreading for many
frames; a 15 s average rarely follows them, so a cross-fade waits for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edge.classify import EMOTIONS
from edge.events import Event, FaceLost, MoodChanged, MoodSustained

if TYPE_CHECKING:
    from edge.config import DecideConfig


@dataclass(frozen=True, slots=True)
class Observation:
    """One classified face in one frame."""

    face_id: int
    probabilities: np.ndarray
    box: tuple[int, int, int, int]
    user: str | None = None


@dataclass(slots=True)
class _TrackMood:
    smoothed: np.ndarray
    slow: np.ndarray
    last_time: float
    mood: int | None = None
    sustained: int | None = None
    candidate: int | None = None
    candidate_since: float = 0.0
    user: str | None = None
    history: list[str] = field(default_factory=list)


class MoodDecider:
    """Per-track smoothing with hysteresis; emits MoodChanged, MoodSustained and FaceLost."""

    def __init__(
        self,
        *,
        smoothing_s: float = 1.0,
        hold_s: float = 1.5,
        margin: float = 0.05,
        sustain_s: float = 15.0,
        sustain_margin: float = 0.2,
        labels: tuple[str, ...] = EMOTIONS,
    ) -> None:
        self._tau = smoothing_s
        self._sustain_s = sustain_s
        self._sustain_margin = sustain_margin
        self._hold_s = hold_s
        self._margin = margin
        self._labels = labels
        self._tracks: dict[int, _TrackMood] = {}

    @classmethod
    def from_config(cls, config: DecideConfig, labels: tuple[str, ...] = EMOTIONS) -> MoodDecider:
        return cls(
            smoothing_s=config.smoothing_s,
            hold_s=config.hold_s,
            margin=config.margin,
            sustain_s=config.sustain_s,
            sustain_margin=config.sustain_margin,
            labels=labels,
        )

    def smoothed(self, face_id: int) -> np.ndarray | None:
        """The current smoothed probabilities of a track (a copy), if known."""
        state = self._tracks.get(face_id)
        return None if state is None else state.smoothed.copy()

    def mood(self, face_id: int) -> str | None:
        state = self._tracks.get(face_id)
        return None if state is None or state.mood is None else self._labels[state.mood]

    def update(
        self,
        now: float,
        observations: list[Observation],
        *,
        lost: Sequence[int] = (),
        wall_time: float | None = None,
    ) -> list[Event]:
        """Fold in this frame's observations and ended tracks; return the events."""
        stamp = now if wall_time is None else wall_time
        events: list[Event] = []
        for obs in observations:
            events.extend(self._observe(now, stamp, obs))
        for face_id in lost:
            state = self._tracks.pop(face_id, None)
            if state is not None:
                last = None if state.mood is None else self._labels[state.mood]
                events.append(
                    FaceLost(time=stamp, face_id=face_id, last_mood=last, user=state.user)
                )
        return events

    def _observe(self, now: float, stamp: float, obs: Observation) -> list[Event]:
        probs = np.asarray(obs.probabilities, dtype=np.float64)
        state = self._tracks.get(obs.face_id)
        if state is None:
            state = self._tracks[obs.face_id] = _TrackMood(probs.copy(), probs.copy(), now)
        else:
            dt = max(0.0, now - state.last_time)
            state.smoothed += (1.0 - math.exp(-dt / self._tau)) * (probs - state.smoothed)
            state.slow += (1.0 - math.exp(-dt / self._sustain_s)) * (probs - state.slow)
            state.last_time = now
        state.user = obs.user  # the identity stage is authoritative (forget clears it)
        events: list[Event] = []
        changed = self._changed(now, stamp, obs, state)
        if changed is not None:
            events.append(changed)
        if state.mood is not None and state.sustained != state.mood:
            ranked = np.sort(state.slow)
            if (
                int(np.argmax(state.slow)) == state.mood
                and ranked[-1] - ranked[-2] >= self._sustain_margin
            ):
                state.sustained = state.mood
                events.append(
                    MoodSustained(
                        time=stamp,
                        face_id=obs.face_id,
                        mood=self._labels[state.mood],
                        user=state.user,
                    )
                )
        return events

    def _changed(
        self, now: float, stamp: float, obs: Observation, state: _TrackMood
    ) -> MoodChanged | None:
        leader = int(np.argmax(state.smoothed))
        leads = state.mood is None or (
            leader != state.mood
            and state.smoothed[leader] - state.smoothed[state.mood] >= self._margin
        )
        if not leads:
            state.candidate = None
            return None
        if state.candidate != leader:
            state.candidate, state.candidate_since = leader, now
        if now - state.candidate_since < self._hold_s:
            return None
        previous = None if state.mood is None else self._labels[state.mood]
        state.mood, state.candidate = leader, None
        return MoodChanged(
            time=stamp,
            face_id=obs.face_id,
            mood=self._labels[leader],
            previous=previous,
            probabilities={
                label: round(float(p), 4)
                for label, p in zip(self._labels, state.smoothed, strict=True)
            },
            box=obs.box,
            user=state.user,
        )
