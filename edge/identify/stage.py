"""The identity stage of the pipeline: embed new tracks, name them, sign users in and out.

Runs on the frame loop after the tracker. A track is embedded on its first
few frames and then only every ``identify.refresh_s``, so a face that stays in
view costs one embedding per refresh, not one per frame. With
``identify.background`` (the default) the embedding itself runs on a worker
thread (``worker.py``) and its result is taken on a later frame, so a new face
never stalls the loop; off, it runs inline. Camera enrolment and
``forget`` may be requested from another thread (MQTT commands): requests are
queued and carried out on the loop thread.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.camera import Frame
from edge.config import IdentifyConfig, MoodboxConfig
from edge.events import (
    EnrolmentFinished,
    EnrolmentStarted,
    Event,
    UnknownFace,
    UserForgotten,
    UserSignedIn,
    UserSignedOut,
)
from edge.identify.align import align_face
from edge.identify.embed import REENROL_HINT, FaceEmbedder, embedder_model_id, mirrored
from edge.identify.enroll import EnrolmentSession, Quality, Sample, measure_quality
from edge.identify.recognize import Gallery, Presence, Recognizer, resembling
from edge.identify.store import UserStore, check_name, fold_name
from edge.identify.worker import EmbeddingWorker, EmbedJob
from edge.stats import Stats
from edge.track import FaceTrack

logger = logging.getLogger(__name__)

RELOAD_CHECK_S = 2.0  # how often to look for users enrolled or forgotten by another process

# Asked at the end of a camera enrolment whose face already signs in as someone else:
# (name, [the others]) → store it anyway? Without one, it is stored with a warning.
Confirm = Callable[[str, list[str]], bool]


@dataclass(frozen=True)
class _Pending:
    """An enrolment sample waiting for its embedding."""

    session: EnrolmentSession
    aligned: np.ndarray
    quality: Quality


class IdentityStage:
    """Per-track identity, presence events and enrolment on the live pipeline."""

    def __init__(
        self,
        config: IdentifyConfig,
        *,
        embedder: FaceEmbedder,
        store: UserStore,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.embedder = embedder
        self.store = store
        self.stats = stats or Stats()
        self._clock = clock
        self.recognizer = Recognizer(
            threshold=config.threshold,
            min_frames=config.min_frames,
            max_frames=config.max_frames,
            margin=config.margin,
            refresh_s=config.refresh_s,
            sample_gap_s=config.sample_gap_s,
        )
        self.presence = Presence(sign_out_after_s=config.sign_out_after_s)
        self._requests: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._session: EnrolmentSession | None = None
        self._confirm: dict[str, Confirm] = {}
        self.model_id = embedder_model_id(embedder)
        self._warned_models: set[str] = set()
        self._reported_unknown: set[int] = set()
        self._active: set[int] = set()  # tracks seen and not yet expired
        self._worker = EmbeddingWorker(embedder) if config.background else None
        self.last_enrolment: tuple[str, str | None] | None = None  # (name, error)
        self._owns_store = False  # from_config opened the store, so close() closes it
        # Debug face images past retention go at start-up too, even with debugging off now.
        pruned = store.prune_debug_images(clock() - config.debug_retention_days * 86400)
        if pruned:
            logger.info("deleted %d debug face image(s) past retention", pruned)
        self._data_version = store.data_version()
        self._checked_at = float("-inf")
        self._enrolled: set[str] = set()
        self._forgotten: list[str] = []  # by another process, noticed on reload
        self.reload()

    @classmethod
    def from_config(cls, config: MoodboxConfig, stats: Stats | None = None) -> IdentityStage:
        from edge.backends import make_embedder

        embedder = make_embedder(config)
        store = UserStore.in_state_dir(config.state_dir())
        try:
            stage = cls(config.identify, embedder=embedder, store=store, stats=stats)
        except BaseException:
            store.close()
            raise
        stage._owns_store = True
        return stage

    def reload(self) -> set[str]:
        """Re-read the enrolled users from the store (only vectors of this embedder's
        model); the names that are gone since."""
        before = set(self._enrolled)
        embeddings = self.store.embeddings(self.model_id)
        self._enrolled = {user.name for user in self.store.users()}
        self.recognizer.set_gallery(Gallery.from_embeddings(embeddings))
        logger.info("face sign-in: %d enrolled user(s)", len(self.recognizer.gallery))
        if self.model_id is not None:
            self._warn_other_models(self.model_id)
        return before - self._enrolled

    def _warn_other_models(self, model_id: str) -> None:
        for name, models in sorted(self.store.other_models(model_id).items()):
            if name not in self._warned_models:
                self._warned_models.add(name)
                logger.warning(
                    "user %s was enrolled with another face model (%s, this one is %s); "
                    "those samples are not compared: %s",
                    name,
                    ", ".join(sorted(models)),
                    model_id,
                    REENROL_HINT.format(name=name),
                )

    # Requests from any thread (MQTT commands, CLI).

    def enroll_from_camera(self, name: str, *, confirm: Confirm | None = None) -> None:
        """Start enrolling the single visible face as ``name`` (non-blocking).

        The next few good frames are collected on the loop thread; the outcome is
        logged and emitted as ``enrolment_started`` and ``enrolment_finished``
        events. If the face already signs in as someone else, ``confirm`` decides
        whether it is stored (without it: stored, with a warning).
        """
        name = check_name(name)
        if confirm is not None:
            self._confirm[name] = confirm
        self._requests.put(("enroll", name))

    def forget(self, name: str) -> bool:
        """Delete ``name`` and every trace of them; False if nobody had that name."""
        from edge.identify.forget import forget_user

        removed = forget_user(self.store, name)
        if removed is not None:
            self._requests.put(("forget", removed))
            logger.info("forgot user %s", removed)
        return removed is not None

    def rename(self, old: str, new: str) -> bool:
        """Rename an enrolled person; False if nobody is called ``old`` (ValueError: bad
        or taken ``new``). ``old`` signs out; the face signs in again by its new name."""
        renamed = self.store.rename(old, new)
        if renamed:
            self._requests.put(("rename", old.strip()))
            logger.info("renamed user %s to %s", old, new)
        return renamed

    def enrolment_progress(self) -> dict[str, Any] | None:
        """The camera enrolment under way (loop thread), else None: its name, good samples
        so far and wanted, start and time limit, and why frames were refused (reason →
        count, the most frequent as ``problem``)."""
        session = self._session
        if session is None:
            return None
        problems = dict(session.problems)
        return {
            "name": session.name,
            "samples": len(session.candidates),
            "wanted": session.samples,
            "started": session.started,
            "timeout_s": session.timeout_s,
            "problem": max(problems, key=lambda p: problems[p]) if problems else None,
            "problems": problems,
        }

    # The loop thread.

    def process(
        self,
        frame: Frame,
        seen: Sequence[FaceTrack],
        expired: Sequence[FaceTrack],
        now: float,
        wall_time: float | None = None,
    ) -> list[Event]:
        """Embed and name the seen tracks; presence events for this frame."""
        stamp = now if wall_time is None else wall_time
        self._check_store(now)
        events = self._handle_requests(now, stamp)
        while self._forgotten:
            name = self._forgotten.pop()
            from edge.music.preferences import forget_listener

            # Music feedback recorded for them between that forget and our noticing it.
            forget_listener(self.store.path.parent, name)
            events.extend(self._drop_user(name, stamp))
        for track in expired:
            self.recognizer.drop(track.face_id)
            self._reported_unknown.discard(track.face_id)
            self._active.discard(track.face_id)
        self._take_results()
        session = self._session
        collecting = session is not None and session.wants(len(seen))
        for track in seen:
            self._active.add(track.face_id)
            # A track whose last face is still on the worker waits for that result.
            busy = self._worker is not None and self._worker.pending(track.face_id)
            if not busy and (collecting or self.recognizer.wants_embedding(track.face_id, now)):
                self._embed(frame, track, now, collect=collecting)
            decision = self.recognizer.decision(track.face_id)
            track.user = decision.user
            if decision.decided and decision.user is None:
                if track.face_id not in self._reported_unknown:
                    self._reported_unknown.add(track.face_id)
                    events.append(UnknownFace(time=stamp, face_id=track.face_id))
            else:
                self._reported_unknown.discard(track.face_id)
        users = {t.user: t.face_id for t in seen if t.user}
        signed_in, signed_out = self.presence.update(now, users)
        for user in signed_in:
            events.append(UserSignedIn(time=stamp, user=user, face_id=users[user]))
            self.store.touch(user, self._clock())
        for user in signed_out:
            events.append(UserSignedOut(time=stamp, user=user))
            self.store.touch(user, self._clock())
        if session is not None and session.finished(now):
            events.extend(self._finish_enrolment(session, stamp))
        return events

    def _embed(self, frame: Frame, track: FaceTrack, now: float, *, collect: bool) -> None:
        with self.stats.timed("align"):
            aligned = align_face(frame.image, track.detection.keypoints)
        # Every other embedding of a track is of the mirror image: the track's mean
        # then averages each view with its mirror (a flip test) at no extra cost.
        count = track.embeddings
        view = mirrored(aligned) if count % 2 else aligned
        sample: _Pending | None = None
        if collect and self._session is not None:
            sample = _Pending(self._session, aligned, measure_quality(track.detection, aligned))
        if self._worker is not None:
            if self._worker.submit(EmbedJob(track.face_id, view, now, sample)):
                track.embeddings = count + 1
            return  # a full queue: this track tries again on the next frame
        track.embeddings = count + 1
        with self.stats.timed("embed"):
            vector = self.embedder.embed(view)
        self._observe(track.face_id, vector, now, sample)

    def _check_store(self, now: float) -> None:
        if abs(now - self._checked_at) >= RELOAD_CHECK_S:
            self._checked_at = now
            version = self.store.data_version()
            if version != self._data_version:  # `moodbox enroll`/`forget` ran beside us
                self._data_version = version
                self._forgotten.extend(sorted(self.reload()))

    def _take_results(self) -> None:
        if self._worker is None:
            return
        for result in self._worker.results():
            self.stats.record("embed", result.ms)
            job = result.job
            if result.vector is None or job.face_id not in self._active:
                continue  # the embedding failed (logged), or the track has ended
            tag = job.tag if isinstance(job.tag, _Pending) else None
            self._observe(job.face_id, result.vector, job.submitted, tag)

    def _observe(
        self, face_id: int, vector: np.ndarray, now: float, sample: _Pending | None
    ) -> None:
        self.recognizer.observe(face_id, vector, now)
        # A sample for an enrolment that has since finished or been replaced is dropped.
        if sample is not None and sample.session is self._session:
            sample.session.offer(Sample(vector, sample.aligned, sample.quality, now))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued embedding has finished (its result is taken on the
        next ``process``). True at once when embedding inline."""
        return self._worker is None or self._worker.wait_idle(timeout)

    def close(self) -> None:
        """Stop the embedding worker; close the store if this stage opened it."""
        if self._worker is not None:
            self._worker.close()
        if self._owns_store:
            self.store.close()

    def _handle_requests(self, now: float, stamp: float) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                kind, name = self._requests.get_nowait()
            except queue.Empty:
                return events
            if kind == "enroll":
                logger.info("enrolling %s: look at the camera", name)
                self._session = EnrolmentSession(
                    name,
                    started=now,
                    samples=self.config.enroll_samples,
                    timeout_s=self.config.enroll_timeout_s,
                )
                events.append(EnrolmentStarted(time=stamp, user=name))
            else:
                self.reload()
                self._data_version = self.store.data_version()
                events.extend(self._drop_user(name, stamp))

    def _drop_user(self, name: str, stamp: float) -> list[Event]:
        """Events for a forgotten user: signed out if present, then forgotten everywhere."""
        events: list[Event] = []
        if self.presence.remove(name):
            events.append(UserSignedOut(time=stamp, user=name))
        if self._session is not None and self._session.name == name:
            self._session = None  # an enrolment under way would bring them back
        events.append(UserForgotten(time=stamp, user=name))
        return events

    def _finish_enrolment(self, session: EnrolmentSession, stamp: float) -> list[Event]:
        self._session = None
        confirm = self._confirm.pop(session.name, None)
        samples, error = session.result()
        also: list[str] = []
        if error is None:
            vectors = np.stack([s.vector for s in samples])
            also = [
                name  # the same person under another spelling is not someone else
                for name in resembling(
                    vectors,
                    self.recognizer.gallery,
                    threshold=self.config.threshold,
                    besides=session.name,
                )
                if fold_name(name) != fold_name(session.name)
            ]
            if also:
                logger.warning(
                    "enrolling %s: this face already signs in as %s",
                    session.name,
                    ", ".join(also),
                )
            if also and confirm is not None and not confirm(session.name, also):
                error = f"not stored: the face already signs in as {', '.join(also)}"
        if error is None:
            # The store keeps wall-clock times; ``stamp`` may be a camera clock.
            wall = self._clock()
            count = self.store.add_embeddings(
                session.name, [s.vector for s in samples], wall, model=self.model_id
            )
            if self.config.store_images_debug:
                self._store_debug_images(session.name, samples, wall)
            self.reload()
            logger.info(
                "enrolled %s: %d new sample(s), %d in all", session.name, len(samples), count
            )
        else:
            logger.warning("enrolling %s failed: %s", session.name, error)
        self.last_enrolment = (session.name, error)
        return [
            EnrolmentFinished(
                time=stamp,
                user=session.name,
                ok=error is None,
                samples=len(samples) if error is None else 0,
                reason=error,
                also_matches=tuple(also),
            )
        ]

    def _store_debug_images(self, name: str, samples: list[Sample], stamp: float) -> None:
        for sample in samples:
            ok, jpeg = cv2.imencode(".jpg", sample.aligned)
            if ok:
                self.store.add_debug_image(name, jpeg.tobytes(), stamp)
        pruned = self.store.prune_debug_images(stamp - self.config.debug_retention_days * 86400)
        if pruned:
            logger.info("deleted %d debug face image(s) past retention", pruned)

    @property
    def enrolling(self) -> bool:
        return self._session is not None or not self._requests.empty()
