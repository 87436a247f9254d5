"""Deliver frames no faster than a set rate, without drifting."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps so that successive ``wait()`` calls are 1/fps apart (fps 0: never sleeps).

    When the loop falls behind, the frame slots it missed are not made up (no
    burst) but counted: ``missed`` after a ``wait()`` is how many slots passed
    since the previous frame without one (the stats' ``dropped_frames``).
    """

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps if fps > 0 else 0.0
        self._next: float | None = None
        self.missed = 0

    def wait(self) -> float:
        """Block until the next frame is due; return the monotonic time it is delivered."""
        now = time.monotonic()
        self.missed = 0
        if self._period:
            if self._next is not None and now - self._next >= self._period:
                # Whole periods past the due time: those frames were never taken.
                self.missed = int((now - self._next) / self._period)
            if self._next is not None and self._next > now:
                time.sleep(self._next - now)
                now = self._next
            # Next frame one period on; if we fell behind, do not burst to catch up.
            self._next = max((self._next or now) + self._period, now)
        return now
