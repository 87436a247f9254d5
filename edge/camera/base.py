"""The FrameSource interface and the registry that maps ``camera.type`` to an adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import numpy as np

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.config import CameraConfig, MoodboxConfig


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


def _replay(config: CameraConfig, root: MoodboxConfig) -> FrameSource:
    from edge.camera.replay import ReplaySource

    return ReplaySource(
        root.resolve(Path(config.source)),
        fps=config.fps,
        loop=config.loop,
        stall_timeout_s=config.open_timeout_s,
    )


def _opencv(config: CameraConfig, root: MoodboxConfig) -> FrameSource:
    from edge.camera.opencv import OpenCVSource

    return OpenCVSource(
        config.source,
        fps=config.fps,
        width=config.width,
        height=config.height,
        stall_timeout_s=config.open_timeout_s,
    )


def _picamera(config: CameraConfig, root: MoodboxConfig) -> FrameSource:
    from edge.camera.picamera import PicameraSource

    return PicameraSource(
        camera_num=int(config.source) if config.source.isdigit() else 0,
        size=(config.width, config.height),
        lores_size=(config.lores_width, config.lores_height),
        fps=config.fps,
    )


# One explicit registry (STYLE.md lesson 3): adding a backend is adding a line.
SOURCES: dict[str, Callable[[CameraConfig, MoodboxConfig], FrameSource]] = {
    "replay": _replay,
    "opencv": _opencv,
    "picamera": _picamera,
}


def open_source(config: MoodboxConfig) -> FrameSource:
    """Build (not yet open) the source that ``camera.type`` names."""
    try:
        factory = SOURCES[config.camera.type]
    except KeyError as err:
        raise ConfigError(f"camera.type: unknown source {config.camera.type!r}") from err
    return factory(config.camera, config)
