"""Run driver calls that may block forever (OpenCV open and read) where a stop still works.

CPython runs signal handlers only on the main thread, between bytecodes: while
the main thread sits inside ``cv2.VideoCapture(...)`` on a FIFO nobody writes
to, or a ``read()`` of a stalled HTTP stream, SIGTERM waits with it (22–40 s
were seen). ``BlockingCaller`` runs each call on one daemon worker thread and
waits for it in ``Event.wait``, which signal handlers interrupt, so the
daemon's stop request is seen at once and the call is given up after its
timeout. A worker still stuck is abandoned (it is a daemon thread: it cannot
keep the process alive) together with the capture it holds.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from edge.errors import CameraError

T = TypeVar("T")


class _Call:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class BlockingCaller:
    """One worker thread for one source's driver calls; ``call`` waits at most a timeout."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        self.wedged = False

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            try:
                call.result = call.fn()
            except BaseException as err:  # handed to the waiting caller, raised there
                call.error = err
            call.done.set()

    def call(self, fn: Callable[[], T], timeout_s: float, what: str) -> T:
        """``fn()`` on the worker; CameraError if it has not returned within ``timeout_s``."""
        if self.wedged:
            raise CameraError(f"{what}: an earlier call is still stuck in the driver")
        call = _Call(fn)
        self._calls.put(call)
        if not call.done.wait(timeout_s):
            self.wedged = True
            raise CameraError(f"{what}: no answer from the driver within {timeout_s:g} s")
        if call.error is not None:
            raise call.error
        result: T = call.result
        return result

    def close(self) -> None:
        """End the worker once it is free (at once if it is idle)."""
        self._calls.put(None)
