"""Replay a folder of images or a video file as a camera, once or looped, at a set fps."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.camera.base import Frame, SourceBase
from edge.camera.pacing import Pacer
from edge.errors import CameraError, EndOfStream

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif"})


class ReplaySource(SourceBase):
    """Frames from image files (sorted by name) or from a video file.

    Unreadable images are logged and skipped; a folder with no readable image,
    or a video that yields no frame, raises CameraError.
    """

    def __init__(
        self, path: Path, *, fps: float = 5.0, loop: bool = True, stall_timeout_s: float = 5.0
    ) -> None:
        self._path = path
        self._loop = loop
        self._pacer = Pacer(fps)
        self._stall_timeout_s = stall_timeout_s
        self._files: list[Path] = []
        self._capture: cv2.VideoCapture | None = None
        self._position = 0
        self._index = 0
        self._skipped: set[Path] = set()

    def open(self) -> None:
        if self._path.is_dir():
            self._files = sorted(
                p for p in self._path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self._files:
                raise CameraError(
                    f"replay folder {self._path} holds no images "
                    f"({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        elif self._path.is_file():
            self._capture = cv2.VideoCapture(str(self._path))
            if not self._capture.isOpened():
                raise CameraError(f"cannot open video file {self._path}")
        else:
            raise CameraError(f"replay source {self._path} does not exist")
        self._position = 0

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def read(self) -> Frame:
        image = self._next_image()
        timestamp = self._pacer.wait()
        frame = Frame(
            image=image, timestamp=timestamp, index=self._index, dropped=self._pacer.missed
        )
        self._index += 1
        return frame

    def _next_image(self) -> np.ndarray:
        if self._capture is not None:
            return self._next_video_frame(self._capture)
        # At most one full pass over the folder looking for a readable image.
        for _ in range(len(self._files) + 1):
            if self._position >= len(self._files):
                if not self._loop:
                    raise EndOfStream(str(self._path))
                self._position = 0
            path = self._files[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            if path not in self._skipped:
                self._skipped.add(path)
                logger.warning("replay: skipping unreadable image %s", path)
        raise CameraError(f"replay folder {self._path}: no readable image left")

    def _next_video_frame(self, capture: cv2.VideoCapture) -> np.ndarray:
        ok, image = capture.read()
        if ok:
            self._position += 1
            return image
        if self._position == 0:
            raise CameraError(f"video file {self._path} delivered no frame (corrupt?)")
        if not self._loop:
            raise EndOfStream(str(self._path))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._position = 0
        ok, image = capture.read()
        if not ok:
            raise CameraError(f"video file {self._path} stopped delivering frames")
        self._position += 1
        return image
