"""Who is this track: per-track consensus against the enrolled gallery, and presence.

Pure code: embeddings and ``now`` in, decisions out; no clock, no model, no
database. A track is only named after ``min_frames`` embeddings agree: their
unit-length mean must be closer than ``threshold`` (cosine similarity) to one
person's average, that person must win the majority of the per-frame votes,
and beat the runner-up by ``margin``. Everything else is "unknown": a
household speaker must rather not greet a stranger than greet the wrong one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from edge.identify.embed import normalise


@dataclass(frozen=True)
class Gallery:
    """Enrolled people: one unit-length average embedding per name."""

    names: tuple[str, ...]
    means: np.ndarray  # (people, dim)

    @classmethod
    def from_embeddings(cls, embeddings: Mapping[str, np.ndarray]) -> Gallery:
        names = tuple(sorted(name for name, v in embeddings.items() if len(v)))
        if not names:
            return cls.empty()
        means = normalise(np.stack([normalise(embeddings[n]).mean(0) for n in names]))
        return cls(names, means)

    @classmethod
    def empty(cls, dim: int = 128) -> Gallery:
        return cls((), np.zeros((0, dim), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.names)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine similarity of each (unit) vector to each person: (n, people) or (people,)."""
        return np.asarray(np.asarray(vectors, dtype=np.float32) @ self.means.T)


def resembling(
    vectors: np.ndarray, gallery: Gallery, *, threshold: float, besides: str
) -> list[str]:
    """Enrolled people other than ``besides`` whom the mean of ``vectors`` would sign in
    as (cosine similarity to their average at least ``threshold``), best match first.

    Enrolling one face under a second name is almost always a mistake: afterwards
    the face signs in as whichever name matches it best.
    """
    if not len(gallery) or not len(vectors):
        return []
    mean = normalise(normalise(np.asarray(vectors)).mean(0))
    scores = gallery.scores(mean)
    order = np.argsort(-scores)
    return [
        gallery.names[i] for i in order if scores[i] >= threshold and gallery.names[i] != besides
    ]


@dataclass(frozen=True, slots=True)
class Decision:
    """A track's identity: ``user`` None means unknown (or not decided yet)."""

    user: str | None
    score: float
    frames: int
    decided: bool


UNDECIDED = Decision(None, 0.0, 0, decided=False)


def consensus(
    vectors: np.ndarray,
    gallery: Gallery,
    *,
    threshold: float,
    min_frames: int,
    margin: float = 0.0,
) -> Decision:
    """Consensus of a track's embeddings (n, dim) against the gallery."""
    frames = len(vectors)
    if frames < min_frames:
        return Decision(None, 0.0, frames, decided=False)
    if len(gallery) == 0:
        return Decision(None, 0.0, frames, decided=True)
    batch = score_tracks(np.asarray(vectors)[None], gallery)
    user = batch.names(gallery, threshold, margin)[0]
    return Decision(user, float(batch.score[0]), frames, decided=True)


@dataclass(frozen=True)
class BatchScores:
    """The consensus of many tracks at once, before the threshold: one row per track."""

    best: np.ndarray  # index into gallery.names
    score: np.ndarray  # cosine of the track mean to the best person
    lead: np.ndarray  # score minus the runner-up's
    majority: np.ndarray  # the best person won most per-frame votes

    def names(self, gallery: Gallery, threshold: float, margin: float) -> list[str | None]:
        """Each track's user at ``threshold`` (None: unknown)."""
        matched = (self.score >= threshold) & (self.lead >= margin) & self.majority
        return [gallery.names[b] if m else None for b, m in zip(self.best, matched, strict=True)]


def score_tracks(tracks: np.ndarray, gallery: Gallery) -> BatchScores:
    """Consensus inputs for tracks (n, frames, dim) against a non-empty gallery."""
    means = normalise(tracks.mean(axis=1))
    scores = gallery.scores(means)
    order = np.argsort(-scores, axis=1)
    rows = np.arange(len(tracks))
    best = order[:, 0]
    score = scores[rows, best]
    runner_up = scores[rows, order[:, 1]] if scores.shape[1] > 1 else np.full(len(tracks), -1.0)
    votes = (np.argmax(gallery.scores(tracks), axis=2) == best[:, None]).sum(axis=1)
    return BatchScores(best, score, score - runner_up, 2 * votes > tracks.shape[1])


@dataclass
class _TrackState:
    vectors: list[np.ndarray] = field(default_factory=list)
    last_embedded: float = float("-inf")
    decision: Decision = UNDECIDED


class Recognizer:
    """Per-track embedding schedule and decisions.

    A new track asks for an embedding on each of its first ``min_frames``
    frames (spaced by at least ``sample_gap_s``), then only every
    ``refresh_s``; the newest ``max_frames`` embeddings vote.
    """

    def __init__(
        self,
        *,
        threshold: float,
        min_frames: int = 3,
        max_frames: int = 8,
        margin: float = 0.0,
        refresh_s: float = 10.0,
        sample_gap_s: float = 0.0,
    ) -> None:
        self.threshold = threshold
        self.min_frames = min_frames
        self.max_frames = max(max_frames, min_frames)
        self.margin = margin
        self.refresh_s = refresh_s
        self.sample_gap_s = sample_gap_s
        self.gallery = Gallery.empty()
        self._tracks: dict[int, _TrackState] = {}

    def set_gallery(self, gallery: Gallery) -> None:
        """New enrolled set: every track is decided afresh from its embeddings."""
        self.gallery = gallery
        for state in self._tracks.values():
            state.decision = self._decide(state.vectors)

    def wants_embedding(self, face_id: int, now: float) -> bool:
        state = self._tracks.get(face_id)
        if state is None:
            return True
        gap = self.sample_gap_s if len(state.vectors) < self.min_frames else self.refresh_s
        return now - state.last_embedded >= gap

    def observe(self, face_id: int, vector: np.ndarray, now: float) -> Decision:
        state = self._tracks.setdefault(face_id, _TrackState())
        state.vectors.append(np.asarray(vector, dtype=np.float32))
        del state.vectors[: -self.max_frames]
        state.last_embedded = now
        state.decision = self._decide(state.vectors)
        return state.decision

    def decision(self, face_id: int) -> Decision:
        state = self._tracks.get(face_id)
        return state.decision if state is not None else UNDECIDED

    def drop(self, face_id: int) -> None:
        self._tracks.pop(face_id, None)

    def _decide(self, vectors: list[np.ndarray]) -> Decision:
        if not vectors:
            return UNDECIDED
        return consensus(
            np.stack(vectors),
            self.gallery,
            threshold=self.threshold,
            min_frames=self.min_frames,
            margin=self.margin,
        )


class Presence:
    """Who is here: a user signs in when first recognised and out after an absence."""

    def __init__(self, *, sign_out_after_s: float) -> None:
        self.sign_out_after_s = sign_out_after_s
        self.last_seen: dict[str, float] = {}

    def update(self, now: float, users: Iterable[str]) -> tuple[list[str], list[str]]:
        """Users seen now in; (signed in now, signed out now)."""
        signed_in: list[str] = []
        for user in users:
            if user not in self.last_seen:
                signed_in.append(user)
            self.last_seen[user] = now
        signed_out = sorted(
            user for user, seen in self.last_seen.items() if now - seen > self.sign_out_after_s
        )
        for user in signed_out:
            del self.last_seen[user]
        return signed_in, signed_out

    def remove(self, user: str) -> bool:
        """Forget a user's presence at once (they were deleted); True if they were present."""
        return self.last_seen.pop(user, None) is not None

    @property
    def present(self) -> list[str]:
        return sorted(self.last_seen)
