"""Supervision glue for systemd: sd_notify, a frame-loop watchdog, thread dumps on demand.

systemd starts ``moodbox run`` as ``Type=notify`` with ``WatchdogSec=``. This
module speaks the sd_notify datagram protocol with the standard library only
(no libsystemd binding on the Pi): ``READY=1`` once the models are loaded and
every service has started, ``WATCHDOG=1`` only while frames are really being
processed (from the loop's ``poll``, never from a timer thread, so a stalled
camera or a wedged interpreter stops the pings and systemd restarts us),
``STATUS=`` for ``systemctl status``, and ``STOPPING=1`` on the way out.

Outside systemd ($NOTIFY_SOCKET unset) every call is a cheap no-op.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import FrameType

from edge.events import Event

logger = logging.getLogger(__name__)

# Exit status when a stop request could not finish in time (a read stuck in a driver).
EXIT_STOP_TIMEOUT = 4

# How often STATUS= is refreshed when no watchdog asks for more frequent messages.
STATUS_INTERVAL_S = 30.0


class Notifier:
    """Sends sd_notify messages to $NOTIFY_SOCKET (a path, or ``@name`` for the
    abstract namespace). Never raises: a lost notify socket is logged once."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True if it was delivered."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        # Newlines inside a value would start a new assignment; STATUS is one line.
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall(message)
        except OSError as err:
            if not self._failing:
                logger.warning("systemd notify socket %s unavailable: %s", self.address, err)
            self._failing = True
            return False
        if self._failing:
            logger.info("systemd notify socket %s reachable again", self.address)
            self._failing = False
        return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, as sd_watchdog_enabled
    advises; None when systemd asked for no watchdog (or asked another process)."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class SystemdNotifyService:
    """The app service that tells systemd how we are doing.

    ``start`` sends READY=1 (it is the last service to start, so the models and
    every other service are up). ``poll`` runs after each processed frame and
    pings the watchdog at most every ``watchdog_interval_s``; ``stop`` sends
    STOPPING=1. STATUS= carries the frame rate since the previous update.
    """

    def __init__(
        self,
        *,
        notifier: Notifier,
        watchdog_interval_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        status_interval_s: float = STATUS_INTERVAL_S,
    ) -> None:
        self.notifier = notifier
        self.watchdog_interval_s = watchdog_interval_s
        self._clock = clock
        self._interval = min(status_interval_s, watchdog_interval_s or status_interval_s)
        self._last_sent = 0.0
        self._frames = 0
        self.pings = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifyService:
        return cls(
            notifier=Notifier.from_env(environ), watchdog_interval_s=watchdog_interval(environ)
        )

    def start(self, emit: Callable[[Event], None]) -> None:
        del emit  # nothing to publish: systemd is told directly
        self._last_sent = self._clock()
        self._frames = 0
        if self.notifier.enabled:
            logger.info(
                "systemd: ready%s",
                f", watchdog ping every {self.watchdog_interval_s:.1f} s"
                if self.watchdog_interval_s
                else "",
            )
        self.notifier.notify("READY=1", f"STATUS=started, pid {os.getpid()}, waiting for frames")

    def poll(self, now: float) -> None:
        del now  # frame time may be replayed; the watchdog needs the real clock
        self._frames += 1
        if not self.notifier.enabled:
            return
        current = self._clock()
        elapsed = current - self._last_sent
        if elapsed < self._interval:
            return
        status = f"STATUS=processing frames, {self._frames / elapsed:.1f} fps"
        if self.watchdog_interval_s is not None:
            self.notifier.notify("WATCHDOG=1", status)
            self.pings += 1
        else:
            self.notifier.notify(status)
        self._last_sent = current
        self._frames = 0

    def stop(self) -> None:
        self.notifier.notify("STOPPING=1", "STATUS=stopping")


def dump_threads(log: logging.Logger | None = None) -> str:
    """Every thread's current stack, as one log record (and returned)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts: list[str] = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        parts.append(f'Thread "{names.get(ident, "?")}" ({ident}):\n{stack}')
    text = "\n".join(parts)
    (log or logger).warning("thread dump on request (SIGUSR1):\n%s", text)
    return text


def install_debug_handlers() -> None:
    """SIGUSR1 logs every thread's stack; fatal signals dump tracebacks to stderr.

    faulthandler also covers SIGABRT, which systemd sends when the watchdog
    fires, so the journal shows where the frame loop was stuck.
    """

    def on_usr1(_signum: int, _frame: FrameType | None) -> None:
        dump_threads()

    signal.signal(signal.SIGUSR1, on_usr1)
    if not faulthandler.is_enabled():
        faulthandler.enable(file=sys.stderr, all_threads=True)


def arm_stop_deadline(seconds: float, *, exit_code: int = EXIT_STOP_TIMEOUT) -> threading.Timer:
    """After a stop request: if the process still runs ``seconds`` later, log every
    thread's stack and exit hard.

    The frame loop checks for a stop between frames, so a read that never
    returns (a FIFO, a camera driver waiting on a loose cable) would otherwise
    keep the process alive until systemd's TimeoutStopSec sends SIGKILL, with
    nothing in the log to say where it hung.
    """

    def expire() -> None:
        logger.error(
            "still running %.0f s after the stop request (a frame read stuck in a driver?); "
            "exiting without a clean stop",
            seconds,
        )
        dump_threads()
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(exit_code)

    timer = threading.Timer(seconds, expire)
    timer.name = "stop-deadline"
    timer.daemon = True
    timer.start()
    return timer
