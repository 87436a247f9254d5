"""The embedding worker: the frame loop never waits for an embedding, and faults stay contained.

The real SFace embedder runs behind a gate the test opens, so "the loop did not
wait" is shown by the loop finishing frames while an embedding is held, not by
a clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import Frame
from edge.config import IdentifyConfig
from edge.detect import BlazeFaceDetector
from edge.events import Event, UnknownFace
from edge.identify.embed import TFLiteFaceEmbedder
from edge.identify.stage import IdentityStage
from edge.identify.store import UserStore
from edge.identify.worker import EmbeddingWorker, EmbedJob
from edge.track import FaceTrack, Tracker


class GatedEmbedder:
    """The real embedder, but each embedding waits until the test opens the gate;
    ``fail_next`` makes the next embeddings raise, as a corrupt model might."""

    def __init__(self, real: TFLiteFaceEmbedder) -> None:
        self.real, self.dim = real, real.dim
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.fail_next = 0
        self.calls = 0

    def embed(self, face: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.started.release()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("simulated interpreter fault")
        return self.real.embed(face)


@pytest.fixture(scope="module")
def real_embedder(repo_root: Path) -> TFLiteFaceEmbedder:
    return TFLiteFaceEmbedder(repo_root / "models" / "face_embedding.tflite")


@pytest.fixture(scope="module")
def face_frames(repo_root: Path) -> tuple[np.ndarray, BlazeFaceDetector]:
    image = cv2.imread(str(repo_root / "tests" / "data" / "grace_hopper.jpg"))
    detector = BlazeFaceDetector(repo_root / "models" / "face_detection_short_range.tflite")
    return image, detector


@pytest.fixture
def gated(real_embedder: TFLiteFaceEmbedder) -> GatedEmbedder:
    return GatedEmbedder(real_embedder)


@pytest.fixture
def stage(tmp_path: Path, gated: GatedEmbedder) -> Iterator[IdentityStage]:
    store = UserStore.in_state_dir(tmp_path / "state")
    stage = IdentityStage(IdentifyConfig(), embedder=gated, store=store)
    yield stage
    gated.gate.set()
    stage.close()
    store.close()


class Loop:
    """detect → track → identify on one real photo, 4 frames per second."""

    def __init__(self, stage: IdentityStage, image: np.ndarray, detector: BlazeFaceDetector):
        self.stage, self.image, self.detector = stage, image, detector
        self.tracker = Tracker(timeout_s=1.0)
        self.index = 0
        self.seen: list[FaceTrack] = []

    def frame(self, empty: bool = False) -> list[Event]:
        now = self.index * 0.25
        image = np.zeros_like(self.image) if empty else self.image
        seen, expired = self.tracker.update(self.detector.detect(image), now)
        self.seen = list(seen)
        events = self.stage.process(Frame(image, now, self.index), seen, expired, now)
        self.index += 1
        return events


def test_the_loop_runs_on_while_a_face_is_being_embedded(
    stage: IdentityStage, gated: GatedEmbedder, face_frames: tuple[np.ndarray, BlazeFaceDetector]
) -> None:
    loop = Loop(stage, *face_frames)
    loop.frame()
    assert gated.started.acquire(timeout=10)  # the worker holds the first face
    # Ten more frames go through while that embedding is held: the loop never waited,
    # and no second job was queued for the same track.
    events = [e for _ in range(10) for e in loop.frame()]
    assert events == []
    assert gated.calls == 1
    assert loop.seen[0].user is None
    gated.gate.set()
    # Once embeddings complete, the track is decided (nobody enrolled: unknown).
    for _ in range(10):
        assert stage.wait_idle()
        events += loop.frame()
    assert [type(e) for e in events] == [UnknownFace]
    assert gated.calls >= 3


def test_a_failing_embedding_is_logged_and_the_track_asks_again(
    stage: IdentityStage,
    gated: GatedEmbedder,
    face_frames: tuple[np.ndarray, BlazeFaceDetector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gated.fail_next = 2
    gated.gate.set()
    loop = Loop(stage, *face_frames)
    events: list[Event] = []
    with caplog.at_level(logging.ERROR, logger="edge.identify.worker"):
        for _ in range(12):
            events += loop.frame()
            assert stage.wait_idle()
    assert "simulated interpreter fault" in caplog.text
    assert len(caplog.records) == 1  # the first failure is logged, not every one
    assert [type(e) for e in events] == [UnknownFace]
    assert gated.calls >= 5  # two failures, then the three that decided the track


def test_a_result_for_an_ended_track_is_dropped(
    stage: IdentityStage, gated: GatedEmbedder, face_frames: tuple[np.ndarray, BlazeFaceDetector]
) -> None:
    loop = Loop(stage, *face_frames)
    loop.frame()
    assert gated.started.acquire(timeout=10)
    face_id = loop.seen[0].face_id
    for _ in range(6):  # the face leaves; after the tracker's timeout its track ends
        loop.frame(empty=True)
    gated.gate.set()
    assert stage.wait_idle()
    loop.frame(empty=True)
    assert stage.recognizer.decision(face_id).decided is False
    assert face_id not in stage.recognizer._tracks  # nothing resurrected for a gone track


def test_worker_close_stops_the_thread_and_refuses_new_jobs(
    real_embedder: TFLiteFaceEmbedder,
) -> None:
    worker = EmbeddingWorker(real_embedder)
    face = np.zeros((112, 112, 3), np.uint8)
    assert worker.submit(EmbedJob(1, face, 0.0))
    assert not worker.submit(EmbedJob(1, face, 0.1))  # one job per track in flight
    assert worker.wait_idle()
    [result] = worker.results()
    assert result.vector is not None and result.vector.shape == (real_embedder.dim,)
    assert abs(float(np.linalg.norm(result.vector)) - 1) < 1e-5
    assert not worker.pending(1)
    worker.close()
    assert not worker.submit(EmbedJob(2, face, 0.2))
    assert worker.wait_idle(timeout=1)  # nothing left counted as in flight


def test_close_drops_queued_jobs_without_leaving_them_in_flight(gated: GatedEmbedder) -> None:
    worker = EmbeddingWorker(gated)
    face = np.zeros((112, 112, 3), np.uint8)
    assert worker.submit(EmbedJob(1, face, 0.0))
    assert gated.started.acquire(timeout=10)  # the worker holds job 1
    assert worker.submit(EmbedJob(2, face, 0.0))  # queued behind it
    # Close while job 1 is held: job 2 is dropped; the join gives up after 0.1 s.
    worker.close(timeout=0.1)
    gated.gate.set()
    assert worker.wait_idle(timeout=10)
    assert [r.job.face_id for r in worker.results()] == [1]
