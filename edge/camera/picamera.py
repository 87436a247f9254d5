"""Raspberry Pi camera via picamera2: the lores stream for detection, main for crops.

picamera2 comes from apt on the Pi (python3-picamera2) and cannot be imported
on x86, so it is imported inside ``open()`` only.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2

from edge.camera.base import Frame, SourceBase
from edge.camera.pacing import Pacer
from edge.errors import CameraError

logger = logging.getLogger(__name__)


class PicameraSource(SourceBase):
    """A Pi camera with a BGR main stream and a YUV420 lores stream."""

    def __init__(
        self,
        *,
        camera_num: int = 0,
        size: tuple[int, int] = (640, 480),
        lores_size: tuple[int, int] = (320, 240),
        fps: float = 5.0,
    ) -> None:
        self._camera_num = camera_num
        self._size = size
        self._lores_size = lores_size
        self._pacer = Pacer(fps)
        self._camera: Any = None
        self._index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as err:
            raise CameraError(
                "camera.type is picamera but picamera2 is not importable: on the Pi install "
                "python3-picamera2 and create the venv with --system-site-packages"
            ) from err
        try:
            camera = Picamera2(self._camera_num)
            # "RGB888" in libcamera terms is BGR byte order in numpy, what OpenCV expects.
            config = camera.create_video_configuration(
                main={"size": self._size, "format": "RGB888"},
                lores={"size": self._lores_size, "format": "YUV420"},
            )
            camera.configure(config)
            camera.start()
        except Exception as err:  # picamera2 raises plain RuntimeError/IndexError
            raise CameraError(f"picamera: cannot open camera {self._camera_num}: {err}") from err
        self._camera = camera

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None

    def read(self) -> Frame:
        if self._camera is None:
            raise CameraError("picamera: source is not open")
        try:
            with self._camera.captured_request() as request:
                main = request.make_array("main")
                yuv = request.make_array("lores")
        except Exception as err:
            raise CameraError(f"picamera: capture failed: {err}") from err
        # The lores stream can only be YUV420 on a Pi 4. Its grey Y plane alone would
        # save this conversion, but BlazeFace loses confidence on grey (a test face
        # drops from 0.79 to 0.46, below min_score); at 320x240 the conversion is
        # ~0.1 ms x86 (~1 ms on a Pi 4), far cheaper than a missed face.
        width, height = self._lores_size
        lores = cv2.cvtColor(yuv[: height * 3 // 2, :width], cv2.COLOR_YUV2BGR_I420)
        timestamp = self._pacer.wait()
        frame = Frame(
            image=main,
            timestamp=timestamp,
            index=self._index,
            lores=lores,
            lores_scale=self._lores_size[0] / self._size[0],
            dropped=self._pacer.missed,
        )
        self._index += 1
        return frame
