#!/usr/bin/env python3
"""How close the face embedder runs to what one CPU core can compute.

The sign-in issue asks for <= 10 ms per face embedding on one x86 core. This
script puts the shipped embedder's time next to the core's own fp32 ceiling,
measured in the same run:

- the embedder's arithmetic, counted from the TFLite graph by the same code
  as ``moodbox bench``'s projection (2 FLOPs per multiply-add of every
  CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED);
- its invoke time with one interpreter thread (and with a thread per core,
  for comparison with figures measured that way);
- a large single-threaded float32 matrix product (numpy's BLAS, one thread),
  the best sustained fp32 rate this core reaches: the roofline.

The lower bound on one core is then FLOPs / BLAS rate: a model cannot run
faster than that unless it does less arithmetic or uses a cheaper number
format the core accelerates.

    python scripts/bench/bench_embed_roofline.py [--model models/face_embedding.tflite]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# One BLAS thread: the figure is per core. Set before numpy is imported.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402 - after the thread settings above

from edge.measure.projection import count_macs  # noqa: E402
from edge.tflite import load_interpreter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def time_invoke(model: Path, threads: int, runs: int) -> np.ndarray:
    interpreter = load_interpreter(model, threads=threads)  # the runtime moodbox uses
    inp = interpreter.get_input_details()[0]
    face = np.random.default_rng(0).random(inp["shape"]).astype(inp["dtype"])
    times = []
    for i in range(runs + 5):
        start = time.perf_counter()
        interpreter.set_tensor(inp["index"], face)
        interpreter.invoke()
        if i >= 5:  # warm-up: XNNPACK packs weights on the first invokes
            times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def blas_gflops(n: int, runs: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return np.array(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "face_embedding.tflite")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--target-ms", type=float, default=10.0)
    args = parser.parse_args(argv)

    flops = 2.0 * count_macs(args.model).macs

    # Interleave the two measurements so that both see the same machine load.
    one, blas = [], []
    for _ in range(3):
        one.append(time_invoke(args.model, 1, args.runs // 3))
        blas.append(blas_gflops(1024, 5))
    one_ms, blas_rate = np.concatenate(one), np.concatenate(blas)
    all_ms = time_invoke(args.model, os.cpu_count() or 1, args.runs)

    best_rate = float(blas_rate.max())
    print(f"model: {args.model.name}, {flops / 1e9:.3f} GFLOP per face")
    print(
        f"one thread: median {np.median(one_ms):.2f} ms, best {one_ms.min():.2f} ms "
        f"= {flops / one_ms.min() / 1e6:.1f} GFLOP/s"
    )
    print(
        f"{os.cpu_count()} threads: median {np.median(all_ms):.2f} ms, best {all_ms.min():.2f} ms"
    )
    print(
        f"fp32 BLAS, one thread, 1024^3: median {np.median(blas_rate):.1f} GFLOP/s, "
        f"best {best_rate:.1f} GFLOP/s"
    )
    print(
        f"embedder's best one-thread rate / BLAS best: {flops / one_ms.min() / 1e6 / best_rate:.2f}"
    )
    print(
        f"lower bound at the BLAS rate: {flops / best_rate / 1e6:.2f} ms per face; "
        f"{args.target_ms:g} ms needs {flops / args.target_ms / 1e6:.1f} GFLOP/s "
        f"= {flops / args.target_ms / 1e6 / best_rate:.2f}x the BLAS best"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
