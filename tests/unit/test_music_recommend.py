"""Recommender statistics over many seeded draws; targets from probabilities; strategies."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from edge.music.library import Track
from edge.music.moods import CALM_GOAL, EMOTION_POINTS, Point, target_from_probabilities
from edge.music.recommend import Recommender, blend_weights, strategy_target


def make_tracks(n: int, seed: int = 1) -> list[Track]:
    rng = random.Random(seed)
    genres = ("pop", "metal", "jazz", "folk", "ambient")
    return [
        Track(
            id=f"t{i:03d}",
            path=Path(f"/m/t{i:03d}.ogg"),
            title=f"t{i}",
            artist=f"artist{i % 7}",
            duration=180.0,
            genre=genres[i % len(genres)],
            point=Point(rng.uniform(-1, 1), rng.uniform(-1, 1)),
            mood="x",
            placed_by="override",
        )
        for i in range(n)
    ]


def test_no_repeat_within_the_window_over_many_picks() -> None:
    tracks = make_tracks(100)
    rec = Recommender(tracks, rng=random.Random(7), recency_window=20)
    recent: list[str] = []
    for i in range(800):
        target = list(EMOTION_POINTS.values())[i // 40 % 7]
        track = rec.pick(target, recent=recent)
        assert track is not None
        assert track.id not in recent[-20:]
        recent.append(track.id)


def test_draws_favour_close_tracks_but_are_not_the_argmax() -> None:
    tracks = make_tracks(100)
    target = EMOTION_POINTS["happy"]
    rec = Recommender(tracks, rng=random.Random(3), recency_window=0)
    counts = Counter(rec.pick(target).id for _ in range(1500))  # type: ignore[union-attr]
    by_distance = sorted(tracks, key=lambda t: t.point.distance(target))
    near = sum(counts[t.id] for t in by_distance[:20])
    far = sum(counts[t.id] for t in by_distance[-50:])
    assert near > 10 * max(far, 1)
    assert counts[by_distance[0].id] < 0.5 * 1500  # never a deterministic argmax
    assert len(counts) >= 15


def test_preferences_move_the_odds() -> None:
    tracks = make_tracks(100)
    target = Point(0.0, 0.0)

    def metal_share(weights: dict[str, float]) -> float:
        rec = Recommender(tracks, rng=random.Random(11), recency_window=0)
        picks = [rec.pick(target, preferences=weights) for _ in range(1000)]
        return sum(p is not None and p.genre == "metal" for p in picks) / len(picks)

    neutral = metal_share({})
    disliked = metal_share({"genre:metal": -2.0})
    liked = metal_share({"genre:metal": 2.0})
    assert disliked < neutral / 3
    assert liked > neutral * 2


def test_excluded_tracks_are_never_drawn_and_small_libraries_do_not_run_dry() -> None:
    tracks = make_tracks(3)
    rec = Recommender(tracks, rng=random.Random(5), recency_window=20)
    recent: list[str] = []
    for _ in range(30):
        track = rec.pick(Point(0, 0), recent=recent, exclude={"t000"})
        assert track is not None
        assert track.id != "t000"
        assert not recent or track.id != recent[-1]
        recent.append(track.id)
    assert rec.pick(Point(0, 0), exclude={"t000", "t001", "t002"}) is None
    assert Recommender([], rng=random.Random(1)).pick(Point(0, 0)) is None


def test_target_follows_the_leading_emotion() -> None:
    flat_happy = {"happy": 0.32, "neutral": 0.18, "fear": 0.15, "sad": 0.14, "angry": 0.11}
    point = target_from_probabilities(flat_happy)
    assert point.distance(EMOTION_POINTS["happy"]) < point.distance(EMOTION_POINTS["neutral"])
    assert target_from_probabilities({"sad": 1.0}) == EMOTION_POINTS["sad"]
    assert target_from_probabilities({}) == EMOTION_POINTS["neutral"]


def test_lift_walks_from_the_mood_to_calm_and_match_stays() -> None:
    sad = EMOTION_POINTS["sad"]
    steps = [strategy_target("lift", sad, k, 4) for k in range(6)]
    assert steps[0] == sad
    distances = [p.distance(CALM_GOAL) for p in steps]
    assert distances == sorted(distances, reverse=True)
    for arrived in steps[4:]:
        assert arrived.distance(CALM_GOAL) == pytest.approx(0.0, abs=1e-9)
    assert strategy_target("match", sad, 3, 4) == sad


def test_blend_weights_is_the_mean() -> None:
    blended = blend_weights([{"genre:pop": 1.0}, {"genre:pop": -1.0, "genre:jazz": 2.0}])
    assert blended == {"genre:pop": 0.0, "genre:jazz": 1.0}
