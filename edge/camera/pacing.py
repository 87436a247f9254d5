"""Deliver frames no faster than a set rate, without drifting."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps so that successive ``wait()`` calls are 1/fps apart (fps 0: never sleeps)."""

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps if fps > 0 else 0.0
        self._next = 0.0

    def wait(self) -> float:
        """Block until the next frame is due; return the monotonic time it is delivered."""
        now = time.monotonic()
        if self._period:
            if self._next > now:
                time.sleep(self._next - now)
                now = self._next
            # If we fell behind by more than a frame, do not burst to catch up.
            self._next = max(self._next + self._period, now)
        return now
