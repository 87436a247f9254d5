"""Composition root: build the parts from config, run the frame loop, stop in reverse.

    camera → pipeline (detect → track → identify → classify → decide)
           → household → sinks (terminal, music, history, MQTT, web) ; services polled per frame

``build`` is the one place where parts are made and wired: which event sinks
exist, which parts remote commands drive, the start order. ``App`` owns no
policy (smoothing and hysteresis live in ``decide``): it supervises the camera
(reopen with backoff, then exit non-zero so systemd restarts us) and never lets
a sink's or a service's failure stop the loop.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from edge.camera import FrameSource, open_source
from edge.config import MoodboxConfig
from edge.errors import CameraError, EndOfStream
from edge.events import Event, EventSink, JsonLinesSink, LogSink, StatusChanged, TerminalSink
from edge.household import Household
from edge.pipeline import Pipeline
from edge.stats import Stats, peak_rss_mib

if TYPE_CHECKING:
    from edge.history import HistoryStore
    from edge.music.controller import MusicController

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CAMERA_LOST = 3


class Service(Protocol):
    """A long-lived part beside the frame loop (music, MQTT, watchdog, …).

    ``start`` gets the app's ``emit`` so the service can publish events of its
    own; ``poll`` runs on the loop thread after every processed frame (do
    thread-confined work such as pygame calls or queued MQTT commands here,
    and keep it short); ``stop`` runs in reverse start order. A service that
    should see every event is also listed among the sinks (``build`` does so).
    """

    def start(self, emit: Callable[[Event], None]) -> None: ...

    def poll(self, now: float) -> None: ...

    def stop(self) -> None: ...


def default_sinks(
    config: MoodboxConfig, *, json_lines: bool = False, stdout: TextIO | None = None
) -> list[EventSink]:
    """The one sink that shows each event locally, once.

    With ``run.events_stdout`` events go to stdout: readable lines with a time
    when it is a terminal, JSON lines when it is piped (or with ``json_lines``,
    `moodbox run --json`), so a program reading them gets JSON and nothing else.
    Without it (the installed service) each event is one log line for the journal.
    """
    if not config.run.events_stdout:
        return [LogSink()]
    stream = stdout or sys.stdout
    if json_lines or not _is_terminal(stream):
        return [JsonLinesSink(stdout)]
    return [TerminalSink(stdout)]


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def build(
    config: MoodboxConfig,
    *,
    source_factory: Callable[[MoodboxConfig], FrameSource] = open_source,
    sinks: Sequence[EventSink] | None = None,
) -> App:
    """Everything `moodbox run` runs, wired explicitly (ModelError if a model is unusable).

    Start order: the pipeline (models loaded here), music, MQTT, the web app,
    people sync (``rooms.sync``), the rooms (``rooms.presence``, ``rooms.handover``:
    they drive the music), the systemd notifier. MQTT and the web come
    after the parts their remote commands drive (both through one
    ``RemoteControls``); the web wraps the camera factory so its preview shows
    the loop's own frames; the notifier comes last so that READY=1 goes out only
    once everything before it has started. ``App.run`` stops them in reverse.
    """
    from edge.supervise import SystemdNotifyService

    stats = Stats()  # one for the run: the pipeline's stages and the MQTT stats topic
    household = Household()
    pipeline = Pipeline.from_config(config, stats)
    closers: list[Callable[[], None]] = []  # closed after the pipeline when the app stops
    try:
        services: list[Service] = []
        event_sinks: list[EventSink] = list(default_sinks(config) if sinks is None else sinks)
        music: MusicController | None = None
        if config.music.enabled:
            from edge.music.controller import MusicController

            music = MusicController.from_config(config)
            services.append(music)
            event_sinks.append(music)
        from edge.control import IdentityControl, RemoteControls

        identity: IdentityControl | None = pipeline.identity
        history: HistoryStore | None = None
        if config.web.enabled:
            from edge.history import HistoryRecorder, HistoryStore
            from edge.web.commands import IdentityWithHistory

            history = HistoryStore.in_state_dir(config.state_dir())
            closers.append(history.close)
            event_sinks.append(
                HistoryRecorder(
                    history, retention_days=config.web.history_days, household=household
                )
            )
            if identity is not None:  # a forgotten person's history goes with them
                identity = IdentityWithHistory(identity, history)
        # MQTT and the web drive the same controls.
        controls = RemoteControls(music=music, identity=identity)
        if config.mqtt.host:
            from edge.publish.service import MqttService

            store = pipeline.identity.store if pipeline.identity is not None else None
            mqtt = MqttService.from_config(
                config,
                stats=stats,
                controls=controls,
                household=household,
                people=None if store is None else lambda: [u.name for u in store.users()],
            )
            services.append(mqtt)
            event_sinks.append(mqtt)
        if config.web.enabled:
            from edge.web.service import WebService

            web = WebService(
                config,
                household=household,
                stats=stats,
                controls=controls,
                identity=pipeline.identity,
                history=history,
                tracks=lambda: [
                    (tuple(round(v) for v in t.detection.box), t.user)  # type: ignore[misc]
                    for t in pipeline.tracker.tracks.values()
                ],
            )
            source_factory = web.tap(source_factory)
            services.append(web)
            event_sinks.append(web)
        if config.rooms.sync or config.rooms.presence or config.rooms.handover:
            room_services, room_sinks = _rooms_parts(config, pipeline, music, stats)
            services.extend(room_services)
            event_sinks.extend(room_sinks)
        services.append(SystemdNotifyService.from_env())
    except BaseException:
        pipeline.close()
        for close in closers:
            close()
        raise
    return App(
        config,
        pipeline=pipeline,
        household=household,
        sinks=event_sinks,
        services=services,
        source_factory=source_factory,
        closers=closers,
    )


def _rooms_parts(
    config: MoodboxConfig, pipeline: Pipeline, music: MusicController | None, stats: Stats
) -> tuple[list[Service], list[EventSink]]:
    """People sync (``rooms.sync``), room presence and music handover; who is in view
    comes from the tracker, and the handover drives the music controller."""
    services: list[Service] = []
    sinks: list[EventSink] = []
    if config.rooms.sync:
        from edge.publish.people import PeopleSyncService

        services.append(PeopleSyncService.from_config(config, stats))
    if config.rooms.presence or config.rooms.handover:
        from edge.publish.rooms import RoomsService

        identity = pipeline.identity

        def people() -> list[str]:
            return [] if identity is None else [user.name for user in identity.store.users()]

        rooms = RoomsService.from_config(
            config,
            in_view=lambda: [t.user for t in pipeline.tracker.tracks.values() if t.user],
            music=music,
            people=people if identity is not None else None,
            stats=stats,
        )
        services.append(rooms)
        sinks.append(rooms)
    return services, sinks


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
    """Runs the supervised frame loop over the parts it is given (see ``build``)."""

    def __init__(
        self,
        config: MoodboxConfig,
        *,
        pipeline: Pipeline | None = None,
        household: Household | None = None,
        source_factory: Callable[[MoodboxConfig], FrameSource] = open_source,
        sinks: Sequence[EventSink] | None = None,
        services: Sequence[Service] = (),
        sleep: Callable[[float], None] | None = None,
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.config = config
        self.pipeline = pipeline or Pipeline.from_config(config, Stats())
        self.stats = self.pipeline.stats
        self.household = household or Household()
        self._source_factory = source_factory
        self.sinks: list[EventSink] = list(default_sinks(config) if sinks is None else sinks)
        self.services: list[Service] = list(services)
        self._closers = list(closers)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._failures = 0

    def stop(self) -> None:
        """Ask the loop to finish after the current frame (signal-safe)."""
        self._stop.set()

    def emit(self, event: Event) -> None:
        """The household first, so that every sink that reads it sees this event's state."""
        self.household.apply(event)
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception:  # a broken sink must not stop the camera loop
                logger.exception("event sink %s failed", type(sink).__name__)

    def run(self, limits: RunLimits | None = None) -> int:
        """Start services, run the frame loop, stop everything in reverse. An exit code.

        The pipeline was started first (its models loaded when it was built), so
        it is closed last, after every service, even when a start fails.
        """
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
            try:
                self.pipeline.close()
            except Exception:
                logger.exception("closing the pipeline failed")
            for close in self._closers:
                try:
                    close()
                except Exception:
                    logger.exception("closing %s failed", close)

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
