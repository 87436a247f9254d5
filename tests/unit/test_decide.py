"""Smoothing and hysteresis as table tests with driven time (no clock reads)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classify import EMOTIONS
from edge.decide import MoodDecider, Observation
from edge.events import FaceLost, MoodChanged, MoodSustained


def vec(**probs: float) -> np.ndarray:
    v = np.full(7, 0.0)
    for label, p in probs.items():
        v[EMOTIONS.index(label)] = p
    rest = (1 - v.sum()) / max((v == 0).sum(), 1)
    v[v == 0] = rest
    return v


HAPPY = vec(happy=0.8)
SAD = vec(sad=0.8)
NEUTRALISH = vec(neutral=0.4, happy=0.35)


def run(decider: MoodDecider, script: list[tuple[float, np.ndarray]]) -> list[tuple[float, str]]:
    """Feed (time, probabilities) for track 1; return (time, mood) of each MoodChanged."""
    out = []
    for now, probs in script:
        for event in decider.update(now, [Observation(1, probs, (0, 0, 10, 10))]):
            assert isinstance(event, MoodChanged | MoodSustained)
            if isinstance(event, MoodChanged):
                out.append((now, event.mood))
    return out


def sustained(
    decider: MoodDecider, script: list[tuple[float, np.ndarray]]
) -> list[tuple[float, str]]:
    """Like run, but (time, mood) of each MoodSustained."""
    out = []
    for now, probs in script:
        for event in decider.update(now, [Observation(1, probs, (0, 0, 10, 10))]):
            if isinstance(event, MoodSustained):
                out.append((round(now, 1), event.mood))
    return out


def frames(start: float, stop: float, probs: np.ndarray, fps: float = 10) -> list:
    return [(t, probs) for t in np.arange(start, stop, 1 / fps)]


@pytest.mark.parametrize(
    ("name", "script", "expected"),
    [
        ("steady mood reported once after hold", frames(0, 5, HAPPY), [(1.5, "happy")]),
        ("too short to report", frames(0, 1.4, HAPPY), []),
        (
            "sustained change switches after smoothing + hold",
            frames(0, 5, HAPPY) + frames(5, 10, SAD),
            [(1.5, "happy"), (7.3, "sad")],  # 0.8 s to lead by the margin + 1.5 s hold
        ),
        (
            "a one-second blip does not switch",
            frames(0, 5, HAPPY) + frames(5, 6, SAD) + frames(6, 12, HAPPY),
            [(1.5, "happy")],
        ),
        (
            "alternating frames: one report, then no flicker",
            [(t / 10, HAPPY if i % 2 else SAD) for i, t in enumerate(range(0, 100))],
            [(1.5, "sad")],
        ),
    ],
)
def test_hysteresis_table(name: str, script: list, expected: list) -> None:
    decider = MoodDecider(smoothing_s=1.0, hold_s=1.5, margin=0.05)
    got = [(round(t, 1), mood) for t, mood in run(decider, script)]
    assert got == expected, name


def test_margin_blocks_a_near_tie() -> None:
    decider = MoodDecider(smoothing_s=0.5, hold_s=0.5, margin=0.1)
    run(decider, frames(0, 3, vec(happy=0.5, neutral=0.3)))
    assert decider.mood(1) == "happy"
    # neutral now leads, but only by 0.05 < margin: no switch however long it lasts.
    assert run(decider, frames(3, 20, vec(neutral=0.45, happy=0.4))) == []
    assert decider.mood(1) == "happy"


def test_smoothing_depends_on_time_not_frame_count() -> None:
    slow, fast = MoodDecider(smoothing_s=2.0), MoodDecider(smoothing_s=2.0)
    for decider, fps in ((slow, 2), (fast, 30)):
        run(decider, frames(0, 1, HAPPY, fps) + frames(1, 3, SAD, fps))
    slow_p, fast_p = slow.smoothed(1), fast.smoothed(1)
    assert slow_p is not None and fast_p is not None
    assert np.allclose(slow_p, fast_p, atol=0.08)


def test_event_carries_probabilities_box_user_and_time() -> None:
    decider = MoodDecider(hold_s=0.0)
    event, confirmed = decider.update(
        10.0, [Observation(3, HAPPY, (1, 2, 3, 4), "alice")], wall_time=1_800_000_000.0
    )
    assert isinstance(event, MoodChanged)
    # A clear first reading is at once sustained too (both averages start there).
    assert isinstance(confirmed, MoodSustained)
    assert (confirmed.mood, confirmed.user, confirmed.face_id) == ("happy", "alice", 3)
    assert event.user == "alice" and event.box == (1, 2, 3, 4) and event.face_id == 3
    assert set(event.probabilities) == set(EMOTIONS)
    assert sum(event.probabilities.values()) == pytest.approx(1, abs=1e-3)
    data = event.to_dict()
    assert data["type"] == "mood_changed"
    assert data["time"] == "2027-01-15T08:00:00.000+00:00"


def test_tracks_are_independent_and_lost_tracks_end() -> None:
    decider = MoodDecider(hold_s=0.5)
    events = []
    for t in np.arange(0, 2, 0.1):
        events += decider.update(
            t, [Observation(1, HAPPY, (0, 0, 1, 1)), Observation(2, SAD, (5, 5, 6, 6))]
        )
    moods = {e.face_id: e.mood for e in events if isinstance(e, MoodChanged)}
    assert moods == {1: "happy", 2: "sad"}
    (lost,) = decider.update(3.0, [], lost=[2])
    assert isinstance(lost, FaceLost)
    assert lost.face_id == 2 and lost.last_mood == "sad"
    assert decider.smoothed(2) is None and decider.mood(1) == "happy"


def test_a_mood_is_sustained_only_once_the_slow_average_agrees() -> None:
    decider = MoodDecider(smoothing_s=1.0, hold_s=1.5, margin=0.05, sustain_s=5.0)
    script = frames(0, 20, HAPPY) + frames(20, 23, SAD) + frames(23, 40, HAPPY)
    script += frames(40, 60, SAD)
    # Happy is sustained at once (a new face's averages start at its first frame).
    # The 3 s of sad are reported (the next track follows them) but never sustained,
    # so they cannot interrupt a track; 20 s of sad are, about 4 s after the change.
    events = sustained(decider, script)
    assert [mood for _, mood in events] == ["happy", "sad"]
    assert events[0][0] == 1.5
    assert 42.0 <= events[1][0] <= 46.0
    assert ("sad") in [mood for _, mood in run(MoodDecider(), script)]


def test_sustained_needs_a_clear_lead_on_the_slow_average() -> None:
    decider = MoodDecider(hold_s=0.0, sustain_margin=0.15)
    close = vec(sad=0.40, neutral=0.30)
    # Sad leads the fast average (margin 0.05) but never by 0.15 on the slow one.
    assert run(decider, frames(0, 30, close)) == [(0.0, "sad")]
    assert sustained(MoodDecider(hold_s=0.0, sustain_margin=0.15), frames(0, 30, close)) == []
