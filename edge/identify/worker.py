"""Embedding off the frame loop: one worker thread owns the face embedder.

An SFace pass costs 16–21 ms on one x86 core here and several times that on a
Pi, while the rest of a frame costs a few milliseconds. Inline, every new
track stalls the loop for a few frames; on the worker the loop keeps its frame
rate and a track's name arrives a frame or two later. The TFLite interpreter
releases the GIL while it runs, so the worker really runs beside the loop.

Only the worker thread touches the embedder (an interpreter is not
thread-safe). Jobs go in and results come out through queues; the loop thread
drains the results on its next frame, so everything the recogniser and the
enrolment session see still happens on the loop thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge.identify.embed import FaceEmbedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedJob:
    """One face to embed for a track; ``tag`` is the submitter's own (e.g. an enrolment)."""

    face_id: int
    face: np.ndarray
    submitted: float
    tag: object = None


@dataclass(frozen=True)
class EmbedResult:
    job: EmbedJob
    vector: np.ndarray | None  # None: the embedder raised (logged)
    ms: float


class EmbeddingWorker:
    """A FaceEmbedder on its own thread, at most one job per track in flight."""

    def __init__(self, embedder: FaceEmbedder, *, max_pending: int = 4) -> None:
        self.embedder = embedder
        self._jobs: queue.Queue[EmbedJob | None] = queue.Queue(maxsize=max_pending)
        self._results: queue.SimpleQueue[EmbedResult] = queue.SimpleQueue()
        self._pending: set[int] = set()  # loop thread only
        self._busy = 0  # jobs submitted and not yet turned into results
        self._idle = threading.Condition()
        self._errors = 0
        self._thread = threading.Thread(target=self._run, name="moodbox-embed", daemon=True)
        self._thread.start()

    def submit(self, job: EmbedJob) -> bool:
        """Queue ``job``; False (try again on a later frame) if its track has one queued
        already or the queue is full."""
        if job.face_id in self._pending or not self._thread.is_alive():
            return False
        with self._idle:
            self._busy += 1
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            with self._idle:
                self._busy -= 1
            return False
        self._pending.add(job.face_id)
        return True

    def pending(self, face_id: int) -> bool:
        return face_id in self._pending

    def results(self) -> list[EmbedResult]:
        """Every result finished since the last call, oldest first."""
        done: list[EmbedResult] = []
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return done
            self._pending.discard(result.job.face_id)
            done.append(result)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every submitted job has a result (tests, shutdown); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread after the job it is on; queued jobs are dropped."""
        while True:
            try:
                dropped = self._jobs.get_nowait()
            except queue.Empty:
                break
            if dropped is not None:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()
        try:
            self._jobs.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            start = time.perf_counter()
            vector: np.ndarray | None
            try:
                vector = self.embedder.embed(job.face)
            except Exception:
                # A bad face or a broken model must not kill the worker; the track
                # simply stays undecided and asks again on a later frame.
                self._errors += 1
                if self._errors == 1 or self._errors % 100 == 0:
                    logger.exception("face embedding failed (%d so far)", self._errors)
                vector = None
            self._results.put(EmbedResult(job, vector, (time.perf_counter() - start) * 1000))
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
