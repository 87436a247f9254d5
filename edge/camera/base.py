"""The FrameSource interface and the base class its adapters share."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera frame. ``image`` is BGR uint8 (H, W, 3); ``lores`` an optional
    smaller BGR (or grey) copy for detection (picamera's lores stream) at
    ``lores_scale`` of it. ``dropped``: frame slots at the configured fps that
    passed without a frame just before this one (the loop fell behind)."""

    image: np.ndarray
    timestamp: float
    index: int
    lores: np.ndarray | None = None
    lores_scale: float = 1.0
    dropped: int = 0


class FrameSource(Protocol):
    """Something that delivers frames: open, read, close (also a context manager)."""

    def open(self) -> None:
        """Acquire the device or file; CameraError if it cannot be opened."""

    def read(self) -> Frame:
        """The next frame, paced to the configured fps; CameraError on a fault,
        EndOfStream when a finite source is exhausted."""

    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SourceBase:
    """Context-manager plumbing shared by the adapters."""

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
