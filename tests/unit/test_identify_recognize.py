"""Per-track consensus and presence: pure code driven with synthetic embeddings and a fake clock."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.identify.embed import normalise
from edge.identify.enroll import EnrolmentSession, Quality, Sample, consistent, select_diverse
from edge.identify.recognize import Gallery, Presence, Recognizer, consensus, score_tracks

DIM = 128


def person(seed: int) -> np.ndarray:
    return normalise(np.random.default_rng(seed).normal(size=DIM))


def near(centre: np.ndarray, noise: float, seed: int, n: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return normalise(centre + noise * rng.normal(size=(n, DIM)) / np.sqrt(DIM))


@pytest.fixture
def gallery() -> Gallery:
    return Gallery.from_embeddings(
        {"ada": near(person(1), 0.3, 10, 4), "bob": near(person(2), 0.3, 20, 4)}
    )


def test_names_a_track_only_after_min_frames_agree(gallery: Gallery) -> None:
    recognizer = Recognizer(threshold=0.5, min_frames=3, refresh_s=10, sample_gap_s=0.2)
    recognizer.set_gallery(gallery)
    frames = near(person(1), 0.4, 99, 3)
    decisions = []
    for i, vector in enumerate(frames):
        now = i * 0.25
        assert recognizer.wants_embedding(7, now)
        decisions.append(recognizer.observe(7, vector, now))
    assert [d.decided for d in decisions] == [False, False, True]
    assert decisions[-1].user == "ada"
    # Decided: the next embedding waits for refresh_s.
    assert not recognizer.wants_embedding(7, 1.0)
    assert recognizer.wants_embedding(7, 0.5 + 10)


def test_a_stranger_is_unknown_not_the_nearest_person(gallery: Gallery) -> None:
    stranger = near(person(3), 0.3, 5, 3)
    decision = consensus(stranger, gallery, threshold=0.5, min_frames=3)
    assert decision.decided
    assert decision.user is None
    assert decision.score < 0.5


def test_split_votes_stay_unknown(gallery: Gallery) -> None:
    # A blend of two people scores above threshold on neither clearly: no majority, no name.
    mixed = np.stack([near(person(1), 0.2, 1)[0], near(person(2), 0.2, 2)[0]])
    decision = consensus(mixed, gallery, threshold=0.3, min_frames=2, margin=0.05)
    assert decision.user is None


def test_empty_gallery_decides_unknown() -> None:
    decision = consensus(near(person(1), 0.1, 1, 3), Gallery.empty(), threshold=0.5, min_frames=3)
    assert decision.decided and decision.user is None


def test_new_gallery_re_decides_live_tracks(gallery: Gallery) -> None:
    recognizer = Recognizer(threshold=0.5, min_frames=1)
    recognizer.observe(1, near(person(1), 0.3, 3)[0], 0.0)
    assert recognizer.decision(1).user is None
    recognizer.set_gallery(gallery)
    assert recognizer.decision(1).user == "ada"
    recognizer.drop(1)
    assert not recognizer.decision(1).decided


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.0, 0.6))
def test_decision_never_names_someone_below_threshold(seed: int, noise: float) -> None:
    gallery = Gallery.from_embeddings({"ada": person(1)[None], "bob": person(2)[None]})
    vectors = near(person(seed % 5 + 1), noise, seed, 3)
    decision = consensus(vectors, gallery, threshold=0.6, min_frames=3)
    if decision.user is not None:
        assert decision.score >= 0.6
        assert decision.user == ("ada" if seed % 5 == 0 else "bob")


def test_presence_signs_in_once_and_out_after_the_absence_timeout() -> None:
    presence = Presence(sign_out_after_s=30)
    assert presence.update(0.0, ["ada"]) == (["ada"], [])
    assert presence.update(10.0, ["ada", "bob"]) == (["bob"], [])
    assert presence.update(35.0, ["bob"]) == ([], [])
    assert presence.update(41.0, []) == ([], ["ada"])
    assert presence.present == ["bob"]
    assert presence.remove("bob")
    assert presence.present == []


def test_select_diverse_takes_typical_then_far_apart_samples() -> None:
    centre = person(1)
    close = near(centre, 0.05, 1, 5)
    far = near(centre, 0.8, 2, 1)
    vectors = np.concatenate([close, far])
    chosen = select_diverse(vectors, 2)
    assert chosen[1] == 5  # the outlying pose is picked second
    assert len(set(select_diverse(vectors, 4))) == 4
    assert select_diverse(vectors[:2], 5) == [0, 1]


def test_consistency_drops_a_passer_by() -> None:
    vectors = np.concatenate([near(person(1), 0.2, 1, 5), near(person(2), 0.2, 2, 1)])
    assert consistent(vectors, 0.5).tolist() == [True] * 5 + [False]


def _sample(vector: np.ndarray, t: float, size: float = 120.0) -> Sample:
    return Sample(vector, np.zeros((112, 112, 3), np.uint8), Quality(size, 100.0, 0.0, 0.0), t)


def test_enrolment_session_collects_then_picks_diverse_samples() -> None:
    session = EnrolmentSession("ada", started=0.0, samples=3, collect_s=2.0, timeout_s=10.0)
    assert not session.wants(0)
    assert not session.wants(2)
    vectors = near(person(1), 0.3, 4, 6)
    for i, vector in enumerate(vectors):
        assert session.wants(1)
        session.offer(_sample(vector, i * 0.5))
    session.offer(_sample(vectors[0], 3.0, size=10))  # too small: refused
    assert not session.finished(1.0)
    assert session.finished(2.5)
    samples, error = session.result()
    assert error is None
    assert len(samples) == 3


def test_enrolment_session_fails_with_the_commonest_reason() -> None:
    session = EnrolmentSession("ada", started=0.0, samples=3, timeout_s=5.0)
    for _ in range(4):
        session.wants(0)
    session.wants(2)
    assert session.finished(5.0)
    samples, error = session.result()
    assert samples == []
    assert error is not None and "no face in view" in error


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), threshold=st.floats(-0.2, 0.9), margin=st.floats(0, 0.2))
def test_batch_scoring_decides_exactly_like_decide(
    seed: int, threshold: float, margin: float
) -> None:
    rng = np.random.default_rng(seed)
    gallery = Gallery.from_embeddings(
        {f"p{i}": near(person(i), 0.5, seed + i, 3) for i in range(4)}
    )
    tracks = np.stack(
        [near(person(int(rng.integers(0, 7))), 0.9, seed + 50 + t, 3) for t in range(12)]
    )
    batch = score_tracks(tracks, gallery).names(gallery, threshold, margin)
    single = [
        consensus(t, gallery, threshold=threshold, min_frames=3, margin=margin).user for t in tracks
    ]
    assert batch == single
