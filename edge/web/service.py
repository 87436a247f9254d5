"""The web app as an app Service: a threaded WSGI server beside the frame loop.

The loop thread never waits for the web. ``emit`` and ``poll`` (loop thread)
publish immutable snapshots (household state, face boxes for the preview,
enrolment progress) that request threads only read, and hand each event to
every live page through a bounded queue per page: a page that reads too
slowly loses events (counted), it never holds up a frame. Commands from the
web are validated on the request thread and queued in a ``CommandDispatcher``
over the same ``RemoteControls`` that MQTT drives, then run here in ``poll``.

The server is cheroot (CherryPy's WSGI server): threaded, production-grade,
and it speaks TLS itself (``web.tls_cert``), which waitress does not, so a
box on the network needs no reverse proxy for HTTPS.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import queue
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.camera import Frame, FrameSource
from edge.config import MoodboxConfig
from edge.control import COMMANDS, CommandDispatcher, Controls
from edge.events import (
    EnrolmentFinished,
    Event,
    FaceLost,
    MoodChanged,
    PlayerState,
    StatusChanged,
    TrackStarted,
    UserSignedIn,
    UserSignedOut,
)
from edge.household import Household
from edge.stats import Stats
from edge.web.auth import RUNTIME_FILE, write_runtime

if TYPE_CHECKING:
    from cheroot.wsgi import Server

    from edge.history import HistoryStore
    from edge.identify.stage import IdentityStage

logger = logging.getLogger(__name__)

CLIENT_QUEUE = 64  # messages a page may fall behind before it loses some
PREVIEW_INTEREST_S = 5.0  # boxes are snapshotted only while a preview was asked for lately
_STATE_EVENTS = (MoodChanged, FaceLost, UserSignedIn, UserSignedOut, PlayerState, TrackStarted)


@dataclass
class StreamClient:
    """One live page: its queue of (event name, JSON data) messages; None ends it."""

    messages: queue.Queue[tuple[str, str] | None] = field(
        default_factory=lambda: queue.Queue(maxsize=CLIENT_QUEUE)
    )
    dropped: int = 0


class EventHub:
    """Fans messages out to live pages without ever blocking the publisher."""

    def __init__(self) -> None:
        self._clients: list[StreamClient] = []
        self._lock = threading.Lock()
        self.dropped = 0
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self) -> StreamClient:
        client = StreamClient()
        with self._lock:
            self._clients.append(client)
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

    def publish(self, name: str, data: str) -> None:
        for client in list(self._clients):  # a copy: pages come and go on other threads
            try:
                client.messages.put_nowait((name, data))
            except queue.Full:
                client.dropped += 1
                self.dropped += 1

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            # A full queue's generator sees ``closed`` at its next keep-alive tick.
            with contextlib.suppress(queue.Full):
                client.messages.put_nowait(None)


class TappedSource:
    """A FrameSource that hands each frame it reads to ``on_frame`` (a reference, no copy)."""

    def __init__(self, inner: FrameSource, on_frame: Callable[[Frame], None]) -> None:
        self._inner = inner
        self._on_frame = on_frame

    def open(self) -> None:
        self._inner.open()

    def read(self) -> Frame:
        frame = self._inner.read()
        self._on_frame(frame)
        return frame

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> TappedSource:
        self.open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class WebService:
    """Service + event sink: serves the web app and the control API (see the module doc)."""

    def __init__(
        self,
        config: MoodboxConfig,
        *,
        household: Household,
        stats: Stats,
        controls: Controls,
        identity: IdentityStage | None = None,
        history: HistoryStore | None = None,
        tracks: Callable[[], list[tuple[tuple[int, int, int, int], str | None]]] | None = None,
    ) -> None:
        from edge.web.commands import web_commands

        self.config = config
        self.settings = config.web
        self.state_dir = config.state_dir()
        self.household = household
        self.stats = stats
        self.controls = controls
        self.identity = identity
        self.history = history
        self._tracks = tracks or list
        self.hub = EventHub()
        self.dispatcher = CommandDispatcher(
            controls,
            max_bytes=256 * 1024,  # photo and backup enrolments carry embeddings
            commands={**COMMANDS, **web_commands(identity, history)},
            trusted=True,  # every request is from a signed-in session (CSRF) or the CLI token
        )
        self.token = secrets.token_urlsafe(32)
        self.url: str | None = None
        self.state: dict[str, Any] = {}
        self.boxes: list[tuple[tuple[int, int, int, int], str | None]] = []
        self.frame: Frame | None = None
        self.enrolment: dict[str, Any] | None = None
        self.last_enrolment: dict[str, Any] | None = None
        self.preview_asked = float("-inf")
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._emit: Callable[[Event], None] = lambda _event: None

    # --- the loop thread ------------------------------------------------------

    def tap(self, factory: Callable[[MoodboxConfig], FrameSource]) -> Callable[..., FrameSource]:
        """Wrap the camera factory so the preview sees the loop's own frames."""

        def open_tapped(config: MoodboxConfig) -> FrameSource:
            return TappedSource(factory(config), self._take_frame)

        return open_tapped

    def _take_frame(self, frame: Frame) -> None:
        self.frame = frame

    def start(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self._refresh_state()
        try:
            self._start_server()
        except Exception as err:  # the speaker plays on without its web page
            logger.error("web app not started: %s", err)
            emit(StatusChanged(time=time.time(), component="web", ok=False, detail=str(err)))

    def _start_server(self) -> None:
        # The socket is bound now (a port in use shows at start); Flask itself loads
        # on the first request (_LazyApp).
        from cheroot import wsgi

        settings = self.settings
        host = settings.host or "127.0.0.1"
        server = wsgi.Server(
            (host, settings.port),
            _LazyApp(self._create_app),
            numthreads=settings.threads,
            server_name="moodbox",
            shutdown_timeout=2,
        )
        scheme = "http"
        if settings.tls_cert is not None:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            key = settings.tls_key or settings.tls_cert
            server.ssl_adapter = BuiltinSSLAdapter(
                str(self.config.resolve(settings.tls_cert)), str(self.config.resolve(key))
            )
            scheme = "https"
        with warnings.catch_warnings():
            # cheroot drops the socket of a failed bind unclosed; it is collected here.
            warnings.simplefilter("ignore", ResourceWarning)
            try:
                server.prepare()  # binds now: a port in use fails here, not on the thread
            finally:
                gc.collect()
        port = server.bind_addr[1]
        local = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host  # noqa: S104 - compared, not bound
        self.url = f"{scheme}://{'[' + local + ']' if ':' in local else local}:{port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="web-server", daemon=True)
        self._thread.start()
        write_runtime(self.state_dir, self.url, self.token)
        logger.info("web app on %s://%s:%d", scheme, host, port)

    def _create_app(self) -> Any:
        from edge.web.app import create_app  # Flask with it: see _LazyApp

        return create_app(self)

    def emit(self, event: Event) -> None:
        """Every app event (the household has applied it): to the history and live pages."""
        if isinstance(event, EnrolmentFinished):
            self.last_enrolment = {
                "ok": event.ok,
                "detail": event.reason or f"enrolled {event.user}",
                "time": event.time,  # tells two enrolments of one name apart
                "user": event.user,
                "samples": event.samples,
                "also_matches": list(event.also_matches),
            }
        changed = isinstance(event, _STATE_EVENTS)
        if changed:
            self._refresh_state()
        if self.hub.clients:
            self.hub.publish(event.type, _json(event.to_dict()))
            if changed:
                self.hub.publish("state", _json(self.state))

    def poll(self, now: float) -> None:
        if self.dispatcher.run_pending():
            self._refresh_state()
            if self.hub.clients:
                self.hub.publish("state", _json(self.state))
        if time.monotonic() - self.preview_asked < PREVIEW_INTEREST_S:
            self.boxes = self._tracks()
        if self.identity is not None:
            progress = self.identity.enrolment_progress()
            if progress != self.enrolment:
                self.enrolment = progress
                if self.hub.clients:
                    self.hub.publish("enrolment", _json(self.enrolment_view()))

    def _refresh_state(self) -> None:
        household = self.household
        try:
            controls = self.controls.state()
        except Exception:  # the music controller's bug must not stop the page
            logger.exception("reading the player state failed")
            controls = {}
        player = asdict(household.player)
        for key in ("volume", "auto", "mood_override"):
            if key in controls:
                player[key] = controls[key]
        latest = household.mood
        self.state = {
            "faces": [
                {
                    "face_id": face.face_id,
                    "mood": face.mood,
                    "probabilities": face.probabilities,
                    "user": face.user,
                }
                for face in household.faces
            ],
            "mood": latest.mood if latest else None,
            "present": household.present,
            "player": player,
        }

    def stop(self) -> None:
        self.hub.close()
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        runtime = self.state_dir / RUNTIME_FILE
        if self.url is not None:
            runtime.unlink(missing_ok=True)
        self._server = None

    # --- request threads --------------------------------------------------------

    def enrolment_view(self) -> dict[str, Any]:
        return {"active": self.enrolment, "last": self.last_enrolment}

    def stream(self, client: StreamClient, keepalive_s: float = 15.0) -> Iterator[bytes]:
        """Server-sent events for one page until it goes or the server stops."""
        try:
            yield b"retry: 2000\n\n"
            yield f"event: state\ndata: {_json(self.state)}\n\n".encode()
            while not self.hub.closed:
                try:
                    message = client.messages.get(timeout=keepalive_s)
                except queue.Empty:
                    yield b": keep-alive\n\n"
                    continue
                if message is None:
                    return
                name, data = message
                yield f"event: {name}\ndata: {data}\n\n".encode()
        finally:
            self.hub.unsubscribe(client)

    def submit(self, command: str, payload: bytes) -> bool:
        """Queue a command for the loop thread (the MQTT path); False if it is invalid."""
        return self.dispatcher.submit(command, payload)

    def runtime_path(self) -> Path:
        return self.state_dir / RUNTIME_FILE


class _LazyApp:
    """The WSGI app, built on the first request instead of at start.

    Flask, Werkzeug and Jinja cost the daemon about 9 MiB of resident memory;
    a box whose page nobody opens (most of the day, often forever) need not
    hold them. The first request, from a browser or the CLI, pays the import
    once (a few hundred milliseconds); every later one goes straight through.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        app = self._app
        if app is None:
            with self._lock:  # two first requests at once build it once
                if self._app is None:
                    self._app = self._build()
                app = self._app
        return app(environ, start_response)
