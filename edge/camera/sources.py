"""The registry that maps ``camera.type`` to a frame-source adapter.

Apart from the interface (base.py) so that the adapters, which build on the
interface, are imported only when their type is chosen: picamera2 exists on
the Pi alone, and nothing else should import OpenCV's capture stack for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge.camera.base import FrameSource
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.config import CameraConfig, MoodboxConfig


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


# One explicit registry that fails loudly on unknown keys: adding a backend is adding a line.
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
