"""Composition root: build the stages from config, run the frame loop, stop in reverse.

    camera → detect → track → classify → decide → sinks (stdout, log, …)

The loop owns no policy: smoothing and hysteresis live in ``decide``. It
supervises the camera (reopen with backoff, then exit non-zero so systemd
restarts us) and never lets a sink's failure stop the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.camera import Frame, FrameSource, open_source
from edge.classify import EmotionClassifier, TFLiteEmotionClassifier, crop_face
from edge.config import MoodboxConfig
from edge.decide import MoodDecider, Observation
from edge.detect import BlazeFaceDetector, Detection, FaceDetector
from edge.errors import CameraError, EndOfStream
from edge.events import Event, EventSink, JsonLinesSink, LogSink, StatusChanged
from edge.stats import Stats
from edge.track import Tracker

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CAMERA_LOST = 3


class Pipeline:
    """One frame in, events out: detect (every n-th frame), track, classify, decide."""

    def __init__(
        self,
        config: MoodboxConfig,
        *,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        stats: Stats | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.classifier = classifier
        self.stats = stats or Stats()
        self.tracker = Tracker(
            iou_threshold=config.decide.track_iou, timeout_s=config.decide.track_timeout_s
        )
        self.decider = MoodDecider(
            smoothing_s=config.decide.smoothing_s,
            hold_s=config.decide.hold_s,
            margin=config.decide.margin,
            labels=classifier.labels,
        )
        self._detections: list[Detection] = []

    @classmethod
    def from_config(cls, config: MoodboxConfig, stats: Stats | None = None) -> Pipeline:
        """Load the models named in config (ModelError if one cannot be used)."""
        detector = BlazeFaceDetector(
            config.resolve(config.detect.model),
            min_score=config.detect.min_score,
            nms_iou=config.detect.nms_iou,
            min_face_px=config.detect.min_face_px,
            threads=config.detect.threads,
        )
        classifier = TFLiteEmotionClassifier(
            config.resolve(config.emotion.model),
            config.resolve(config.emotion.labels),
            config.resolve(config.emotion.metadata),
            flip_tta=config.emotion.flip_tta,
            threads=config.emotion.threads,
        )
        return cls(config, detector=detector, classifier=classifier, stats=stats)

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
        observations: list[Observation] = []
        with stats.timed("classify"):
            for track in seen:
                face = crop_face(frame.image, track.detection.box, self.config.emotion.crop_scale)
                probabilities = self.classifier.classify(face)
                x0, y0, x1, y1 = (round(v) for v in track.detection.box)
                observations.append(
                    Observation(
                        track.track_id, probabilities, (x0, y0, x1, y1), track.data.get("user")
                    )
                )
        with stats.timed("decide"):
            events = self.decider.update(
                now, observations, lost=[t.track_id for t in expired], wall_time=wall_time
            )
        stats.frame(now)
        return events


def _scaled(detection: Detection, factor: float) -> Detection:
    """A detection on the lores stream, in main-stream pixels."""
    x0, y0, x1, y1 = (v * factor for v in detection.box)
    return Detection((x0, y0, x1, y1), detection.score, detection.keypoints * factor)


@dataclass
class RunLimits:
    """Optional early stop (`--max-frames`, `--max-seconds`)."""

    max_frames: int | None = None
    max_seconds: float | None = None

    def reached(self, frames: int, deadline: float | None) -> bool:
        return (self.max_frames is not None and frames >= self.max_frames) or (
            deadline is not None and time.monotonic() >= deadline
        )


class App:
    """Builds the pipeline and sinks, runs the supervised frame loop."""

    def __init__(
        self,
        config: MoodboxConfig,
        *,
        pipeline: Pipeline | None = None,
        source_factory: Callable[[MoodboxConfig], FrameSource] = open_source,
        sinks: Sequence[EventSink] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.stats = Stats()
        self.pipeline = pipeline or Pipeline.from_config(config, self.stats)
        self.pipeline.stats = self.stats
        self._source_factory = source_factory
        default_sinks: list[EventSink] = [LogSink()]
        if config.run.events_stdout:
            default_sinks.append(JsonLinesSink())
        self.sinks: list[EventSink] = list(sinks) if sinks is not None else default_sinks
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait

    def stop(self) -> None:
        """Ask the loop to finish after the current frame (signal-safe)."""
        self._stop.set()

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # a broken sink must not stop the camera loop
                logger.exception("event sink %s failed", type(sink).__name__)

    def run(self, limits: RunLimits | None = None) -> int:
        """The frame loop. Returns a process exit code."""
        limits = limits or RunLimits()
        deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds
        frames = 0
        failures = 0
        source: FrameSource | None = None
        camera_ok = True
        try:
            while not self._stop.is_set():
                if limits.reached(frames, deadline):
                    break
                try:
                    if source is None:
                        source = self._source_factory(self.config)
                        source.open()
                    frame = source.read()
                except EndOfStream:
                    logger.info("camera source finished")
                    break
                except CameraError as err:
                    failures += 1
                    self.stats.count("camera_errors")
                    if camera_ok:
                        camera_ok = False
                        logger.warning("camera lost: %s", err)
                        self.emit(
                            StatusChanged(
                                time=time.time(), component="camera", ok=False, detail=str(err)
                            )
                        )
                    if source is not None:
                        source.close()
                        source = None
                    if failures > self.config.run.camera_restart_budget:
                        logger.error(
                            "camera did not recover after %d attempts; exiting so "
                            "the service manager can restart moodbox",
                            failures - 1,
                        )
                        return EXIT_CAMERA_LOST
                    self._sleep(self.config.run.camera_backoff_s * 2 ** (failures - 1))
                    continue
                if not camera_ok:
                    camera_ok = True
                    logger.info("camera recovered")
                    self.emit(StatusChanged(time=time.time(), component="camera", ok=True))
                failures = 0
                frames += 1
                for event in self.pipeline.process(frame, wall_time=time.time()):
                    self.emit(event)
        finally:
            if source is not None:
                source.close()
        logger.info("stopped after %d frames (%.1f fps)", frames, self.stats.fps)
        return EXIT_OK
