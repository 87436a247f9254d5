"""OpenCV VideoCapture as a camera: a device index, a video file or a stream URL."""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from edge.camera.base import Frame, SourceBase
from edge.camera.pacing import Pacer
from edge.errors import CameraError, EndOfStream

logger = logging.getLogger(__name__)


class OpenCVSource(SourceBase):
    """Frames from ``cv2.VideoCapture``. A device that returns no frame for
    ``stall_timeout_s`` raises CameraError (retryable: the daemon reopens it)."""

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
        self._index = 0

    @property
    def is_file(self) -> bool:
        return isinstance(self._source, str) and "://" not in self._source

    def open(self) -> None:
        capture = cv2.VideoCapture(self._source)
        if not capture.isOpened():
            raise CameraError(f"opencv: cannot open {self._source!r}")
        if isinstance(self._source, int):
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        self._capture = capture

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def read(self) -> Frame:
        if self._capture is None:
            raise CameraError("opencv: source is not open")
        deadline = time.monotonic() + self._stall_timeout_s
        image: np.ndarray | None = None
        while image is None:
            ok, image = self._capture.read()
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
