"""Valence–arousal tables: where emotions, mood words and genres sit on Russell's circumplex.

Both axes run from -1 to 1 (valence: unpleasant → pleasant; arousal: calm →
excited). The coordinates follow Russell (1980) and the music-emotion
literature's usual placement; they are declarative tables rather than ``if``
chains, so a household can argue with them in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Point:
    """A place in valence–arousal space."""

    valence: float
    arousal: float

    def distance(self, other: Point) -> float:
        return math.hypot(self.valence - other.valence, self.arousal - other.arousal)

    def towards(self, other: Point, fraction: float) -> Point:
        """The point ``fraction`` (0..1) of the way from here to ``other``."""
        f = min(1.0, max(0.0, fraction))
        return Point(
            self.valence + f * (other.valence - self.valence),
            self.arousal + f * (other.arousal - self.arousal),
        )

    def clipped(self) -> Point:
        return Point(_clip(self.valence), _clip(self.arousal))


def _clip(value: float) -> float:
    return min(1.0, max(-1.0, value))


# The classifier's labels (edge.classify.EMOTIONS) on the circumplex.
EMOTION_POINTS: Mapping[str, Point] = {
    "angry": Point(-0.7, 0.6),
    "disgust": Point(-0.7, 0.2),
    "fear": Point(-0.5, 0.8),
    "happy": Point(0.8, 0.5),
    "sad": Point(-0.7, -0.4),
    "surprise": Point(0.4, 0.8),
    "neutral": Point(0.1, -0.1),
}

# Where the lift strategy leads: calm and positive.
CALM_GOAL = Point(0.6, -0.4)

# Mood words used as folder names and in MOOD tags. First the emotions, then
# words music libraries use.
MOOD_POINTS: Mapping[str, Point] = {
    **EMOTION_POINTS,
    "calm": CALM_GOAL,
    "relaxed": Point(0.6, -0.5),
    "peaceful": Point(0.5, -0.7),
    "chill": Point(0.5, -0.5),
    "content": Point(0.6, -0.2),
    "joyful": Point(0.8, 0.5),
    "joy": Point(0.8, 0.5),
    "upbeat": Point(0.7, 0.6),
    "energetic": Point(0.5, 0.8),
    "excited": Point(0.6, 0.8),
    "party": Point(0.7, 0.8),
    "romantic": Point(0.6, 0.0),
    "melancholy": Point(-0.5, -0.3),
    "melancholic": Point(-0.5, -0.3),
    "dark": Point(-0.5, 0.2),
    "tense": Point(-0.4, 0.6),
    "aggressive": Point(-0.6, 0.8),
    "anger": Point(-0.7, 0.6),
    "sadness": Point(-0.7, -0.4),
    "fearful": Point(-0.5, 0.8),
    "surprised": Point(0.4, 0.8),
    "bored": Point(-0.3, -0.7),
    "sleepy": Point(0.1, -0.9),
}

# Genre tags, a weak fallback when a track has no mood of its own.
GENRE_POINTS: Mapping[str, Point] = {
    "ambient": Point(0.2, -0.7),
    "classical": Point(0.3, -0.3),
    "jazz": Point(0.4, -0.2),
    "folk": Point(0.3, -0.2),
    "blues": Point(-0.4, -0.2),
    "country": Point(0.3, 0.1),
    "pop": Point(0.6, 0.4),
    "rock": Point(0.1, 0.6),
    "metal": Point(-0.3, 0.9),
    "punk": Point(-0.2, 0.8),
    "dance": Point(0.6, 0.8),
    "electronic": Point(0.4, 0.6),
    "hip-hop": Point(0.2, 0.5),
    "hip hop": Point(0.2, 0.5),
    "reggae": Point(0.6, 0.0),
    "soul": Point(0.4, 0.1),
    "soundtrack": Point(0.1, 0.1),
}


def target_from_probabilities(probabilities: Mapping[str, float], *, sharpen: float = 3.0) -> Point:
    """The weighted mean of the emotions' points, weights p**sharpen (unknown labels ignored).

    Smoothed seven-way probabilities are flat (a clear smile may read 0.35
    happy), and a plain mean of seven points pulls every target to the middle;
    sharpening keeps the leading mood in charge while a close second still
    shifts the target towards itself.
    """
    total = 0.0
    valence = arousal = 0.0
    for label, raw in probabilities.items():
        point = EMOTION_POINTS.get(label)
        if point is None or raw <= 0:
            continue
        p = raw**sharpen
        total += p
        valence += p * point.valence
        arousal += p * point.arousal
    if total <= 0:
        return EMOTION_POINTS["neutral"]
    return Point(valence / total, arousal / total)


def blend_probabilities(vectors: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The mean of several listeners' probability vectors (one vote each)."""
    vectors = list(vectors)
    blended: dict[str, float] = {}
    for vector in vectors:
        for label, p in vector.items():
            blended[label] = blended.get(label, 0.0) + p / len(vectors)
    return blended


def nearest_mood(point: Point, table: Mapping[str, Point] = EMOTION_POINTS) -> str:
    """The name of the table's point closest to ``point``."""
    return min(table, key=lambda name: table[name].distance(point))


def mood_point(word: str) -> Point | None:
    """A mood word (folder name, MOOD tag) as a point, or None if not known."""
    return MOOD_POINTS.get(word.strip().lower().replace("_", " "))


def genre_point(genre: str) -> Point | None:
    """A genre tag as a point: an exact name, else the first known genre in it."""
    key = genre.strip().lower()
    if key in GENRE_POINTS:
        return GENRE_POINTS[key]
    for name, point in GENRE_POINTS.items():
        if name in key:
            return point
    return None


def arousal_from_bpm(bpm: float) -> float:
    """Tempo as arousal: 60 BPM is calm (-1), 100 neutral, 160 and up excited (1)."""
    return _clip((bpm - 100.0) / 50.0 if bpm < 100 else (bpm - 100.0) / 60.0)
