"""Per-stage timing as moving averages, and counters, for logs, MQTT stats and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Stats:
    """Exponential moving averages of stage latencies (ms) plus named counters."""

    def __init__(self, *, weight: float = 0.05) -> None:
        self._weight = weight
        self.stage_ms: dict[str, float] = {}
        self.counters: dict[str, int] = {}
        self.started = time.monotonic()
        self._frame_times: list[float] = []

    def reset(self) -> None:
        """Forget everything recorded so far (the benchmark's warm-up frames)."""
        self.stage_ms.clear()
        self.counters.clear()
        self._frame_times.clear()
        self.started = time.monotonic()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, (time.perf_counter() - start) * 1000)

    def record(self, stage: str, ms: float) -> None:
        old = self.stage_ms.get(stage)
        self.stage_ms[stage] = ms if old is None else old + self._weight * (ms - old)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def frame(self, now: float) -> None:
        """Note a processed frame (for fps over the last ~5 s)."""
        self._frame_times.append(now)
        cutoff = now - 5.0
        while self._frame_times and self._frame_times[0] < cutoff:
            self._frame_times.pop(0)
        self.count("frames")

    @property
    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def uptime_s(self) -> float:
        return time.monotonic() - self.started


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM of /proc/self/status) in MiB; None off Linux.

    VmHWM rather than getrusage's ru_maxrss: Linux carries ru_maxrss over fork
    and execve, so a process started by a bigger one would report its parent's.
    """
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None
