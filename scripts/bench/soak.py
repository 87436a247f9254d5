"""Soak test: replay frames at full speed through the real App and report RSS growth and fps drift.

    scripts/bench/soak --frames 1000000            # the release soak (hours on a Pi)
    scripts/bench/soak --frames 50000 --every 5000 # a shorter run

Runs ``App.run`` in-process on a looped replay (camera.fps 0) of the demo
clip, with a probe service that samples the resident set size and the frame
rate every ``--every`` frames. The first window is warm-up (allocator pools,
interpreter arenas) and is the baseline for both figures. Prints a table and a
one-line summary; ``--json FILE`` writes the samples. Not a CI test: it prints
figures, it does not judge them (that is the reader's job, against the
previous run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edge.app import App, RunLimits, build
from edge.config import load_config
from edge.events import Event

ROOT = Path(__file__).resolve().parents[2]


def rss_mib() -> float:
    """Resident set size of this process, from /proc (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class SoakProbe:
    """A service that samples RSS and fps every ``every`` frames."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.frames = 0
        self.samples: list[dict[str, float]] = []
        self._window_start = 0.0
        self._started = 0.0

    def start(self, emit: Callable[[Event], None]) -> None:
        del emit
        self._started = self._window_start = time.monotonic()

    def poll(self, now: float) -> None:
        del now
        self.frames += 1
        if self.frames % self.every:
            return
        current = time.monotonic()
        sample = {
            "frames": self.frames,
            "elapsed_s": round(current - self._started, 2),
            "fps": round(self.every / (current - self._window_start), 2),
            "rss_mib": round(rss_mib(), 2),
        }
        self.samples.append(sample)
        print(
            f"{sample['frames']:>10}  {sample['elapsed_s']:>9.1f}  {sample['fps']:>7.1f}  "
            f"{sample['rss_mib']:>8.1f}",
            flush=True,
        )
        self._window_start = current

    def stop(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames to replay")
    parser.add_argument("--every", type=int, default=10_000, help="sample every N frames")
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument(
        "--with-services", action="store_true", help="also run the services `moodbox run` starts"
    )
    parser.add_argument("--json", type=Path, help="write the samples here")
    args = parser.parse_args()

    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    overrides = {
        "MOODBOX_CAMERA_FPS": "0",
        "MOODBOX_CAMERA_LOOP": "true",
        "MOODBOX_RUN_EVENTS_STDOUT": "false",
        "MOODBOX_GENERAL_LOG_LEVEL": "WARNING",
    }
    if not (ROOT / "models" / "face_embedding.tflite").is_file():
        overrides["MOODBOX_IDENTIFY_ENABLED"] = "false"  # sign-in model not installed here
    environ = {**os.environ, **overrides}
    config = load_config(args.config, environ=environ)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    probe = SoakProbe(args.every)
    if args.with_services:
        app = build(config, sinks=[])
        app.services.insert(0, probe)
    else:
        app = App(config, services=[probe], sinks=[])
    print(
        f"soak: {args.frames} frames of {config.camera.source} ({config.camera.type}), "
        f"fps 0, identify {'on' if config.identify.enabled else 'off'}, pid {os.getpid()}"
    )
    print(f"{'frames':>10}  {'elapsed_s':>9}  {'fps':>7}  {'rss_mib':>8}")
    # SIGTERM/SIGINT end the run early with a summary of what ran so far.
    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    signal.signal(signal.SIGINT, lambda *_: app.stop())
    code = app.run(RunLimits(max_frames=args.frames))
    samples = probe.samples
    if len(samples) >= 3:
        # Baseline: the second window (the first includes warm-up); end: the last one.
        base, last = samples[1], samples[-1]
        growth = last["rss_mib"] - base["rss_mib"]
        per_million = growth / (last["frames"] - base["frames"]) * 1e6
        drift = (last["fps"] - base["fps"]) / base["fps"] * 100
        mean_fps = last["frames"] / last["elapsed_s"]
        print(
            f"summary: {last['frames']} frames in {last['elapsed_s']:.0f} s ({mean_fps:.1f} fps "
            f"mean); RSS {base['rss_mib']:.1f} → {last['rss_mib']:.1f} MiB "
            f"({growth:+.1f} MiB, {per_million:+.1f} MiB per million frames); "
            f"fps {base['fps']:.1f} → {last['fps']:.1f} ({drift:+.1f} %)"
        )
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "samples": samples}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
