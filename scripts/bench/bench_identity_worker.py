#!/usr/bin/env python3
"""Frame-loop latency with face sign-in embedding inline vs on the worker thread.

Replays the bundled demo clip as a camera would (paced at --fps): a person
walks into view for --visit-s, leaves for --gap-s (so the next visit is a new
track that needs its first embeddings), --visits times. The same frames run
through the full pipeline (detect, identify, classify, decide) twice in one
run, ``identify.background`` off and on, and the script prints per-frame
``Pipeline.process`` latency (median, p99, max), how many frames went over the
frame budget, and how long a new face took to be decided (here: unknown,
nobody is enrolled). Every interpreter has one thread, as on the daemon.

    .venv/bin/python scripts/bench/bench_identity_worker.py [--cpus 2] [--json]

``--cpus N`` pins the process to N CPUs (a Pi 4/5 has 4); with 1 the worker
shares the loop's core and only the scheduler's time slicing separates them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.camera import Frame
from edge.config import load_config
from edge.events import UnknownFace, UserSignedIn
from edge.measure.benchmark import bench_config, load_replay, with_settings
from edge.pipeline import Pipeline
from edge.stats import Stats

ROOT = Path(__file__).resolve().parents[2]


def run(background: bool, args: argparse.Namespace) -> dict[str, Any]:
    config, _ = bench_config(load_config(ROOT / "config.yaml"))
    config = with_settings(config, identify={"background": background, "threads": 1})
    replay = load_replay(ROOT / "demo" / "faces")
    pipeline = Pipeline.from_config(config, Stats())
    identity = pipeline.identity
    assert identity is not None, "face sign-in is off or its model is missing"
    period = 1.0 / args.fps
    visit, gap = round(args.visit_s * args.fps), round(args.gap_s * args.fps)
    schedule = []
    for v in range(args.visits):
        person = replay.moving[v % 2]
        schedule += [(person[i % len(person)], v) for i in range(visit)]
        schedule += [(replay.no_face[i % len(replay.no_face)], None) for i in range(gap)]
    for i in range(5):  # warm-up: XNNPACK allocates on the first invokes
        pipeline.process(Frame(replay.no_face[0], -10.0 + i * period, -1))
    latencies: list[float] = []
    appeared: dict[int, float] = {}
    decided: list[float] = []
    start = time.perf_counter()
    for index, (image, visit_no) in enumerate(schedule):
        due = start + index * period
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        stamp = index * period
        if visit_no is not None:
            appeared.setdefault(visit_no, time.perf_counter())
        t0 = time.perf_counter()
        events = pipeline.process(Frame(image, stamp, index), wall_time=stamp)
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000)
        if visit_no is not None and any(isinstance(e, UnknownFace | UserSignedIn) for e in events):
            decided.append((t1 - appeared[visit_no]) * 1000)
    identity.close()
    identity.store.close()
    latencies.sort()
    budget = 1000 * period
    return {
        "background": background,
        "frames": len(latencies),
        "median_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "max_ms": round(latencies[-1], 2),
        "frames_over_budget": sum(ms > budget for ms in latencies),
        "budget_ms": round(budget, 1),
        "decided": len(decided),
        "decide_median_ms": round(statistics.median(decided), 1) if decided else None,
        "embed_ms_ema": round(pipeline.stats.stage_ms.get("embed", float("nan")), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--visits", type=int, default=12)
    parser.add_argument("--visit-s", type=float, default=2.0)
    parser.add_argument("--gap-s", type=float, default=1.5)
    parser.add_argument("--cpus", type=int, default=2, help="pin to this many CPUs (0: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cpus and hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(available[-args.cpus :]))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory() as state:
        os.environ["STATE_DIRECTORY"] = state  # an empty user store: nobody enrolled
        results = [run(False, args), run(True, args)]
    report = {"cpus": cpus, "fps": args.fps, "runs": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{cpus} CPU(s), camera at {args.fps:g} fps ({results[0]['budget_ms']} ms a frame), "
        f"{args.visits} visits of {args.visit_s:g} s"
    )
    print(
        f"{'embedding':<10} {'median':>8} {'p99':>8} {'max':>8} {'over budget':>12} "
        f"{'new face decided':>17}"
    )
    for r in results:
        print(
            f"{'worker' if r['background'] else 'inline':<10} {r['median_ms']:>6} ms "
            f"{r['p99_ms']:>5} ms {r['max_ms']:>5} ms {r['frames_over_budget']:>6} frames "
            f"{r['decide_median_ms']:>10} ms ({r['decided']}/{args.visits})"
        )
    inline, worker = results
    print(
        f"max frame latency worker/inline: {worker['max_ms'] / inline['max_ms']:.2f}x, "
        f"p99: {worker['p99_ms'] / inline['p99_ms']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
