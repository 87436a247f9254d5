"""Frame sources: the camera end of the pipeline, chosen by ``camera.type``."""

from __future__ import annotations

from edge.camera.base import Frame, FrameSource
from edge.camera.sources import open_source

__all__ = ["Frame", "FrameSource", "open_source"]
