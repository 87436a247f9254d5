"""OpenCV VideoCapture as a camera: a device index, a video file or a stream URL."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from edge.camera.base import Frame, SourceBase
from edge.camera.blocking import BlockingCaller
from edge.camera.pacing import Pacer
from edge.errors import CameraError, EndOfStream

logger = logging.getLogger(__name__)


class OpenCVSource(SourceBase):
    """Frames from ``cv2.VideoCapture``. A device that returns no frame for
    ``stall_timeout_s`` raises CameraError (retryable: the daemon reopens it).

    Opening and every read run on a worker thread (``BlockingCaller``) and are
    given up after ``stall_timeout_s``, so a source that blocks in the driver (a
    FIFO without a writer, a stalled stream) never keeps SIGTERM waiting."""

    def __init__(
        self,
        source: str,
        *,
        fps: float = 5.0,
        width: int = 640,
        height: int = 480,
        stall_timeout_s: float = 5.0,
    ) -> None:
        self._source: int | str = int(source) if source.isdigit() else source
        self._size = (width, height)
        self._pacer = Pacer(fps)
        self._stall_timeout_s = stall_timeout_s
        self._capture: cv2.VideoCapture | None = None
        self._caller: BlockingCaller | None = None
        self._index = 0

    @property
    def is_file(self) -> bool:
        return isinstance(self._source, str) and "://" not in self._source

    def open(self) -> None:
        self.close()
        self._caller = BlockingCaller("opencv-source")
        capture = self._caller.call(
            self._open_capture, self._stall_timeout_s, f"opencv: opening {self._source!r}"
        )
        if not capture.isOpened():
            raise CameraError(f"opencv: cannot open {self._source!r}")
        self._capture = capture

    def _open_capture(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self._source)
        if capture.isOpened() and isinstance(self._source, int):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        return capture

    def close(self) -> None:
        caller, self._caller = self._caller, None
        capture, self._capture = self._capture, None
        if caller is None:
            return
        # A capture that a stuck worker is still inside is abandoned with it, not released.
        if capture is not None and not caller.wedged:
            capture.release()
        caller.close()

    def read(self) -> Frame:
        if self._capture is None:
            raise CameraError("opencv: source is not open")
        deadline = time.monotonic() + self._stall_timeout_s
        image: np.ndarray | None = None
        capture, caller = self._capture, self._caller
        assert caller is not None
        while image is None:
            ok, image = caller.call(
                capture.read, self._stall_timeout_s, f"opencv: reading {self._source!r}"
            )
            if ok:
                break
            image = None
            if self.is_file:
                raise EndOfStream(str(self._source))
            if time.monotonic() > deadline:
                raise CameraError(
                    f"opencv: {self._source!r} delivered no frame for {self._stall_timeout_s:.0f} s"
                )
            time.sleep(0.05)
        timestamp = self._pacer.wait()
        frame = Frame(
            image=image, timestamp=timestamp, index=self._index, dropped=self._pacer.missed
        )
        self._index += 1
        return frame
