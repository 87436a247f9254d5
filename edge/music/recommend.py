"""Pure recommendation: a target in valence–arousal, then a weighted draw (never the argmax).

No clock, no I/O: the random generator, the recent picks and the preference
weights come in, a track goes out, so tests can check the statistics over many
seeded draws. A track's weight is

    closeness(target) × exp(preference score), 0 if played within the recency window

with closeness a Gaussian of the valence–arousal distance. Drawing instead of
taking the best keeps a small library from looping and lets the listener's
skips and likes move the odds without locking them in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

from edge.music.library import Track
from edge.music.moods import CALM_GOAL, Point
from edge.music.preferences import features

Strategy = Literal["match", "lift"]

# A preference score beyond ±MAX_SCORE changes nothing more: even a much
# skipped style keeps a small chance, so a change of taste can be noticed.
MAX_SCORE = 4.0
# Far tracks keep a tiny weight so a draw always succeeds.
MIN_CLOSENESS = 1e-6


def track_features(track: Track) -> tuple[str, ...]:
    """The preference features of a track: itself, its genre, its artist."""
    return tuple(features(track.id, track.genre, track.artist).values())


def preference_score(track: Track, weights: Mapping[str, float]) -> float:
    """The sum of the track's feature weights, clipped to ±MAX_SCORE."""
    score = sum(weights.get(feature, 0.0) for feature in track_features(track))
    return max(-MAX_SCORE, min(MAX_SCORE, score))


def strategy_target(strategy: Strategy, listener: Point, step: int, steps: int) -> Point:
    """The point to draw around: the listener's mood (match), or ``step`` of ``steps`` towards
    calm and positive (lift, the iso principle: meet the mood first, then lead it)."""
    if strategy == "match" or steps <= 0:
        return listener
    return listener.towards(CALM_GOAL, step / steps)


def blend_weights(profiles: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The mean of several listeners' feature weights (one vote each)."""
    profiles = list(profiles)
    blended: dict[str, float] = {}
    for profile in profiles:
        for feature, weight in profile.items():
            blended[feature] = blended.get(feature, 0.0) + weight / len(profiles)
    return blended


class Recommender:
    """Draws the next track from a weighted distribution over the library."""

    def __init__(
        self,
        tracks: Sequence[Track],
        *,
        rng: random.Random,
        recency_window: int = 20,
        closeness: float = 0.35,
    ) -> None:
        self.tracks = tuple(tracks)
        self._rng = rng
        self._window = recency_window
        self._closeness = closeness

    def weights(
        self,
        target: Point,
        *,
        recent: Sequence[str] = (),
        preferences: Mapping[str, float] | None = None,
        exclude: Collection[str] = (),
    ) -> list[float]:
        """The draw weight of every track (same order as ``tracks``); ``exclude``: never."""
        preferences = preferences or {}
        # A library smaller than the window would otherwise run dry.
        window = min(self._window, len(self.tracks) - 1 - len(exclude))
        blocked = set(recent[-window:]) if window > 0 else set()
        blocked.update(exclude)
        weights = []
        for track in self.tracks:
            if track.id in blocked:
                weights.append(0.0)
                continue
            d = track.point.distance(target) / self._closeness
            closeness = max(MIN_CLOSENESS, math.exp(-0.5 * d * d))
            weights.append(closeness * math.exp(preference_score(track, preferences)))
        return weights

    def pick(
        self,
        target: Point,
        *,
        recent: Sequence[str] = (),
        preferences: Mapping[str, float] | None = None,
        exclude: Collection[str] = (),
    ) -> Track | None:
        """One weighted draw; None when every track is excluded (or the library is empty)."""
        weights = self.weights(target, recent=recent, preferences=preferences, exclude=exclude)
        if sum(weights) <= 0:
            return None
        return self._rng.choices(self.tracks, weights=weights, k=1)[0]
