"""One frame in, events out: detect (every n-th frame) → track → identify → classify → decide.

The pipeline owns its stages and nothing beside them: no camera, no sinks,
no services. ``moodbox run`` and camera enrolment (``moodbox enroll``) both
drive this one class, so a frame is handled the same way in both (the lores
stream for detection, the same tracker and identity stage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge.camera import Frame
from edge.classify import EmotionClassifier, crop_face, eye_roll
from edge.config import MoodboxConfig
from edge.decide import MoodDecider, Observation
from edge.detect import Detection, FaceDetector
from edge.events import Event
from edge.stats import Stats
from edge.track import ClassifiedFace, FaceTrack, Tracker

if TYPE_CHECKING:
    from edge.identify.stage import IdentityStage


class Pipeline:
    """The per-frame stages; ``close()`` stops the identity stage's worker and store."""

    def __init__(
        self,
        config: MoodboxConfig,
        *,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        stats: Stats,
        identity: IdentityStage | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.classifier = classifier
        self.identity = identity  # face sign-in; None: every face stays anonymous
        self.stats = stats
        self.tracker = Tracker(
            iou_threshold=config.decide.track_iou, timeout_s=config.decide.track_timeout_s
        )
        self.decider = MoodDecider.from_config(config.decide, classifier.labels)
        self._detections: list[Detection] = []

    @classmethod
    def from_config(cls, config: MoodboxConfig, stats: Stats) -> Pipeline:
        """Load the models named in config (ModelError if one cannot be used)."""
        from edge.backends import make_classifier, make_detector

        detector = make_detector(config)
        classifier = make_classifier(config)
        identity = None
        if config.identify.enabled:
            from edge.identify.stage import IdentityStage

            identity = IdentityStage.from_config(config, stats)
        return cls(config, detector=detector, classifier=classifier, stats=stats, identity=identity)

    def process(self, frame: Frame, wall_time: float | None = None) -> list[Event]:
        stats = self.stats
        now = frame.timestamp
        if frame.index % self.config.detect.every_n_frames == 0:
            with stats.timed("detect"):
                image = frame.lores if frame.lores is not None else frame.image
                detections = self.detector.detect(image)
                if frame.lores is not None and frame.lores_scale != 1.0:
                    detections = [_scaled(d, 1 / frame.lores_scale) for d in detections]
            self._detections = detections
        seen, expired = self.tracker.update(self._detections, now)
        identity_events: list[Event] = []
        if self.identity is not None:
            # Sets each face's ``user``; its stats.timed("align"/"embed") share our Stats.
            identity_events = self.identity.process(frame, seen, expired, now, wall_time)
        observations: list[Observation] = []
        for face in seen:
            probabilities = self._emotion(frame, face, now)
            x0, y0, x1, y1 = (round(v) for v in face.detection.box)
            observations.append(
                Observation(face.face_id, probabilities, (x0, y0, x1, y1), face.user)
            )
        with stats.timed("decide"):
            events = self.decider.update(
                now, observations, lost=[f.face_id for f in expired], wall_time=wall_time
            )
        stats.frame(now)
        return identity_events + events

    def _emotion(self, frame: Frame, face: FaceTrack, now: float) -> np.ndarray:
        """The face's emotion probabilities; the last ones while its region is unchanged."""
        emotion = self.config.emotion
        last = face.emotion
        if last is not None and last.unchanged(
            frame.image, now, emotion.reuse_max_diff, emotion.reuse_max_s, emotion.crop_scale
        ):
            self.stats.count("classify_reused")
            return last.probabilities
        with self.stats.timed("classify"):
            roll = eye_roll(face.detection.keypoints) if emotion.upright else 0.0
            crop = crop_face(frame.image, face.detection.box, emotion.crop_scale, roll)
            # Every other pass sees the mirror image; the decider's smoothing then
            # averages both views, the flip test without a second pass per frame.
            mirror = emotion.mirror_alternate and not emotion.flip_tta and face.classified % 2
            probabilities = self.classifier.classify(crop[:, ::-1] if mirror else crop)
        face.classified += 1
        face.emotion = ClassifiedFace(face.detection.box, crop, probabilities, now, roll)
        return probabilities

    def close(self) -> None:
        """Release what the stages hold (the identity stage's worker thread and store)."""
        if self.identity is not None:
            self.identity.close()


def _scaled(detection: Detection, factor: float) -> Detection:
    """A detection on the lores stream, in main-stream pixels."""
    x0, y0, x1, y1 = (v * factor for v in detection.box)
    return Detection((x0, y0, x1, y1), detection.score, detection.keypoints * factor)
