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
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.camera import Frame, FrameSource, open_source
from edge.classify import EmotionClassifier, TFLiteEmotionClassifier, crop_face
from edge.config import MoodboxConfig
from edge.decide import MoodDecider, Observation
from edge.detect import BlazeFaceDetector, Detection, FaceDetector
from edge.errors import CameraError, EndOfStream
from edge.events import Event, EventSink, JsonLinesSink, LogSink, StatusChanged
from edge.stats import Stats, peak_rss_mib
from edge.track import ClassifiedFace, Track, Tracker

if TYPE_CHECKING:
    from edge.identify.stage import IdentityStage

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
        identity: IdentityStage | None = None,
    ) -> None:
        self.config = config
        self.detector = detector
        self.classifier = classifier
        self.identity = identity  # face sign-in; None: every face stays anonymous
        self.stats = stats or Stats()
        self.tracker = Tracker(
            iou_threshold=config.decide.track_iou, timeout_s=config.decide.track_timeout_s
        )
        self.decider = MoodDecider.from_config(config.decide, classifier.labels)
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
            # Sets track.data["user"]; its stats.timed("align"/"embed") share our Stats.
            self.identity.stats = stats
            identity_events = self.identity.process(frame, seen, expired, now, wall_time)
        observations: list[Observation] = []
        for track in seen:
            probabilities = self._emotion(frame, track, now)
            x0, y0, x1, y1 = (round(v) for v in track.detection.box)
            observations.append(
                Observation(track.track_id, probabilities, (x0, y0, x1, y1), track.data.get("user"))
            )
        with stats.timed("decide"):
            events = self.decider.update(
                now, observations, lost=[t.track_id for t in expired], wall_time=wall_time
            )
        stats.frame(now)
        return identity_events + events

    def _emotion(self, frame: Frame, track: Track, now: float) -> np.ndarray:
        """The track's emotion probabilities; the last ones while its face region is unchanged."""
        emotion = self.config.emotion
        last: ClassifiedFace | None = track.data.get("emotion")
        if last is not None and last.unchanged(
            frame.image, now, emotion.reuse_max_diff, emotion.reuse_max_s, emotion.crop_scale
        ):
            self.stats.count("classify_reused")
            return last.probabilities
        with self.stats.timed("classify"):
            face = crop_face(frame.image, track.detection.box, emotion.crop_scale)
            probabilities = self.classifier.classify(face)
        track.data["emotion"] = ClassifiedFace(track.detection.box, face, probabilities, now)
        return probabilities


def _scaled(detection: Detection, factor: float) -> Detection:
    """A detection on the lores stream, in main-stream pixels."""
    x0, y0, x1, y1 = (v * factor for v in detection.box)
    return Detection((x0, y0, x1, y1), detection.score, detection.keypoints * factor)


class Service(Protocol):
    """A long-lived part beside the frame loop (music, MQTT, watchdog, …).

    ``start`` gets the app's ``emit`` so the service can publish events of its
    own; ``poll`` runs on the loop thread after every processed frame (do
    thread-confined work such as pygame calls or queued MQTT commands here,
    and keep it short); ``stop`` runs in reverse start order. A service that
    also has ``emit(event)`` is added to the sinks and sees every event.
    """

    def start(self, emit: Callable[[Event], None]) -> None: ...

    def poll(self, now: float) -> None: ...

    def stop(self) -> None: ...


def build_services(
    config: MoodboxConfig, *, stats: Stats | None = None, parts: Sequence[object] = ()
) -> list[Service]:
    """The services `moodbox run` starts, in start order (stopped in reverse).

    Feature helpers append theirs above the systemd notifier, which stays last
    so that READY=1 goes out only once everything before it has started.
    ``parts``: pipeline stages that take remote commands too (the identity stage).
    """
    from edge.supervise import SystemdNotifyService

    services: list[Service] = []
    if config.music.enabled:
        from edge.music.controller import MusicController

        services.append(MusicController.from_config(config))
    if config.mqtt.host:
        # After the music and identity parts: remote commands are routed to them.
        from edge.control import RemoteControls
        from edge.publish.service import MqttService

        controls = RemoteControls.find([*services, *parts])
        services.append(MqttService.from_config(config, stats=stats, controls=controls))
    services.append(SystemdNotifyService.from_env())
    return services


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
        services: Sequence[Service] = (),
        sleep: Callable[[float], None] | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.config = config
        self.stats = stats or Stats()
        self.pipeline = pipeline or Pipeline.from_config(config, self.stats)
        self.pipeline.stats = self.stats
        self._source_factory = source_factory
        default_sinks: list[EventSink] = [LogSink()]
        if config.run.events_stdout:
            default_sinks.append(JsonLinesSink())
        self.sinks: list[EventSink] = list(sinks) if sinks is not None else default_sinks
        self.services: list[Service] = list(services)
        for service in self.services:
            if hasattr(service, "emit"):
                self.sinks.append(service)  # type: ignore[arg-type]
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._failures = 0

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
        """Start services, run the frame loop, stop everything in reverse. An exit code."""
        limits = limits or RunLimits()
        deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds
        started: list[Service] = []
        try:
            for service in self.services:
                service.start(self.emit)
                started.append(service)
            return self._loop(limits, deadline, started)
        finally:
            for service in reversed(started):
                try:
                    service.stop()
                except Exception:
                    logger.exception("stopping %s failed", type(service).__name__)

    def _loop(self, limits: RunLimits, deadline: float | None, services: list[Service]) -> int:
        frames = 0
        self._failures = 0
        source: FrameSource | None = None
        try:
            while not self._stop.is_set() and not limits.reached(frames, deadline):
                try:
                    if source is None:
                        source = self._source_factory(self.config)
                        source.open()
                    frame = source.read()
                except EndOfStream:
                    logger.info("camera source finished")
                    break
                except CameraError as err:
                    if source is not None:
                        source.close()
                        source = None
                    if not self._camera_failed(err):
                        return EXIT_CAMERA_LOST
                    continue
                self._camera_recovered()
                frames += 1
                if frame.dropped:
                    self.stats.count("dropped_frames", frame.dropped)
                for event in self.pipeline.process(frame, wall_time=time.time()):
                    self.emit(event)
                for service in services:
                    try:
                        service.poll(frame.timestamp)
                    except Exception:  # one service's bug must not stop the camera loop
                        logger.exception("%s.poll failed", type(service).__name__)
        finally:
            if source is not None:
                source.close()
        peak = peak_rss_mib()
        logger.info(
            "stopped after %d frames (%.1f fps, peak RSS %s)",
            frames,
            self.stats.fps,
            "unknown" if peak is None else f"{peak:.1f} MiB",
        )
        return EXIT_OK

    def _camera_failed(self, err: CameraError) -> bool:
        """Count a camera failure and back off; False once the restart budget is spent."""
        self._failures += 1
        self.stats.count("camera_errors")
        if self._failures == 1:
            logger.warning("camera lost: %s", err)
            self.emit(
                StatusChanged(time=time.time(), component="camera", ok=False, detail=str(err))
            )
        if self._failures > self.config.run.camera_restart_budget:
            logger.error(
                "camera did not recover after %d attempts; exiting so the service "
                "manager can restart moodbox",
                self._failures - 1,
            )
            return False
        self._sleep(self.config.run.camera_backoff_s * 2 ** (self._failures - 1))
        return True

    def _camera_recovered(self) -> None:
        if self._failures:
            logger.info("camera recovered after %d attempt(s)", self._failures)
            self.emit(StatusChanged(time=time.time(), component="camera", ok=True))
        self._failures = 0
