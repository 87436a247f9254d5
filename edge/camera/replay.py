"""Replay a folder of images or a video file as a camera, once or looped, at a set fps."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.camera.base import Frame, SourceBase
from edge.camera.blocking import BlockingCaller
from edge.camera.pacing import Pacer
from edge.errors import CameraError, EndOfStream

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif"})


class ReplaySource(SourceBase):
    """Frames from image files (sorted by name) or from a video file.

    Unreadable images are logged and skipped; a folder with no readable image,
    or a video that yields no frame, raises CameraError. A video (or a FIFO, or
    any other non-folder path) is opened and read on a worker thread, given up
    after ``stall_timeout_s``, so a writer that never comes cannot hold up a
    stop; a video that ends before the frame count its header promises says so.
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
        self._caller: BlockingCaller | None = None
        self._expected = 0  # frames the video's header announces (0: unknown, a stream)
        self._short_logged = False
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
        elif self._path.exists():  # a video file, or a FIFO or device that streams one
            self.close()
            self._caller = BlockingCaller("replay-source")
            kind = "video file" if self._path.is_file() else "stream (not a regular file)"
            capture = self._caller.call(
                lambda: cv2.VideoCapture(str(self._path)),
                self._stall_timeout_s,
                f"replay: opening {kind} {self._path}",
            )
            if not capture.isOpened():
                raise CameraError(f"cannot open {kind} {self._path}")
            self._capture = capture
            self._expected = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        else:
            raise CameraError(f"replay source {self._path} does not exist")
        self._position = 0

    def close(self) -> None:
        caller, self._caller = self._caller, None
        capture, self._capture = self._capture, None
        if caller is None:
            return
        if capture is not None and not caller.wedged:  # a stuck worker keeps it
            capture.release()
        caller.close()

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

    def _read(self, capture: cv2.VideoCapture) -> tuple[bool, np.ndarray]:
        assert self._caller is not None
        result: tuple[bool, np.ndarray] = self._caller.call(
            capture.read, self._stall_timeout_s, f"replay: reading {self._path}"
        )
        return result

    def _next_video_frame(self, capture: cv2.VideoCapture) -> np.ndarray:
        ok, image = self._read(capture)
        if ok:
            self._position += 1
            return image
        if self._position == 0:
            raise CameraError(f"video file {self._path} delivered no frame (corrupt?)")
        short = self._ended_early()
        if not self._loop:
            raise EndOfStream(f"{self._path}{short}")
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._position = 0
        ok, image = self._read(capture)
        if not ok:
            raise CameraError(f"video file {self._path} stopped delivering frames")
        self._position += 1
        return image

    def _ended_early(self) -> str:
        """Say (once) when the video stopped before the frame count in its header."""
        if not self._expected or self._position >= self._expected:
            return ""
        detail = f": ended after {self._position} of {self._expected} frames (damaged?)"
        if not self._short_logged:
            self._short_logged = True
            logger.warning("replay: video %s%s", self._path, detail)
        return detail
