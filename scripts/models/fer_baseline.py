#!/usr/bin/env python3
"""The `fer` package as a baseline: its per-frame pipeline speed, or its emotion model's accuracy.

Runs in the separate environment that ``scripts/models/setup-fer-baseline`` creates
(fer needs TensorFlow, which moodbox never depends on); never inside .venv.

    # speed, on the frames `moodbox bench` chose (it calls this itself):
    venv-fer/bin/python scripts/models/fer_baseline.py --bench spec.json --frames 20
    # accuracy of fer's mini-Xception on DIR/<emotion>/*, already-cropped faces,
    # in the same JSON form as `moodbox eval-emotion DIR --json`:
    venv-fer/bin/python scripts/models/fer_baseline.py --eval DIR

The speed run is fer's own ``FER.detect_emotions`` per frame: OpenCV Haar
cascade detection on the whole frame, then the mini-Xception (64x64 grey) on
each face. ``keras`` is the Keras model (``emotion_model.hdf5``) the issue
names; ``tflite`` is fer's default since 25.x (its quantized copy of the same
network), measured too so the comparison is not against a straw man. One
thread, on whatever CPU this process is pinned to (the bench pins it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# TensorFlow's C++ start-up chatter and fer's deprecation warnings are not results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.simplefilter("ignore")


def _tensorflow_one_thread() -> Any:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _fps(detector: Any, images: list[Any], n: int) -> tuple[float, float]:
    """Frames per second by the wall clock and per CPU second of this process."""
    for image in images[:2]:  # warm-up: first calls build graphs and XNNPACK kernels
        detector.detect_emotions(image)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(n):
        detector.detect_emotions(images[i % len(images)])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return n / wall, n / max(cpu, 1e-9)


def bench(spec_path: Path, frames: int) -> dict[str, Any]:
    """fps with one face and with none, for fer's Keras and TFLite pipelines."""
    import cv2

    spec = json.loads(spec_path.read_text())
    sets = {
        name: [img for img in (cv2.imread(p) for p in spec[name]) if img is not None]
        for name in ("one_face", "no_face")
    }
    if not all(sets.values()):
        raise SystemExit(f"fer_baseline: unreadable frames in {spec_path}")
    started = time.perf_counter()
    tf = _tensorflow_one_thread()
    import fer
    from fer.fer import FER

    result: dict[str, Any] = {
        "fer_version": fer.__version__,
        "tensorflow": tf.__version__,
        "opencv": cv2.__version__,
        "frames": frames,
        "import_s": round(time.perf_counter() - started, 3),
    }
    for mode, use_tflite in (("keras", False), ("tflite", True)):
        start = time.perf_counter()
        detector = FER(use_tflite=use_tflite)
        load_s = time.perf_counter() - start
        faces = sum(len(detector.detect_emotions(img)) for img in sets["one_face"])
        one_wall, one_cpu = _fps(detector, sets["one_face"], frames)
        none_wall, none_cpu = _fps(detector, sets["no_face"], frames)
        result[mode] = {
            "load_s": round(load_s, 3),
            "faces_found_per_frame": round(faces / len(sets["one_face"]), 3),
            "fps_one_face": round(one_wall, 3),
            "fps_no_face": round(none_wall, 3),
            "cpu_fps_one_face": round(one_cpu, 3),
            "cpu_fps_no_face": round(none_cpu, 3),
        }
    return result


def evaluate(directory: Path, batch: int = 64) -> dict[str, Any]:
    """fer's Keras mini-Xception on a folder-per-class tree of cropped faces."""
    import cv2
    import numpy as np

    from edge.classify import EMOTIONS
    from edge.measure.emotion_eval import EmotionReport, collect, expected_calibration_error

    _tensorflow_one_thread()
    from fer.fer import FER

    # fer's label order is moodbox's (angry … neutral); checked, not assumed.
    if tuple(FER._get_labels()[i] for i in range(7)) != EMOTIONS:
        raise SystemExit("fer_baseline: fer's label order differs from moodbox's")
    detector = FER(use_tflite=False)
    model = detector._FER__emotion_classifier  # the Keras mini-Xception fer loaded
    size = tuple(model.input_shape[1:3])
    items, skipped = collect(directory)
    confusion = np.zeros((7, 7), dtype=np.int64)
    probs: list[np.ndarray] = []
    truth: list[int] = []
    unreadable = 0
    pending: list[tuple[np.ndarray, int]] = []

    def flush() -> None:
        if not pending:
            return
        # fer's own preprocessing: grey, resized, x / 255, then (x - 0.5) * 2.
        faces = np.stack([face for face, _ in pending]).astype("float32") / 255.0
        out = np.asarray(model((faces[..., None] - 0.5) * 2.0, training=False))
        for (_, index), p in zip(pending, out, strict=True):
            confusion[index, int(np.argmax(p))] += 1
            probs.append(p / p.sum())
            truth.append(index)
        pending.clear()

    for path, index in items:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            unreadable += 1
            continue
        pending.append((cv2.resize(image, size), index))
        if len(pending) == batch:
            flush()
    flush()
    all_probs = np.asarray(probs).reshape(-1, 7)
    all_truth = np.asarray(truth, dtype=np.int64)
    nll = (
        float(-np.log(np.clip(all_probs[np.arange(len(all_truth)), all_truth], 1e-12, 1)).mean())
        if len(all_truth)
        else 0.0
    )
    report = EmotionReport(
        EMOTIONS,
        confusion,
        skipped,
        unreadable,
        nll,
        expected_calibration_error(all_probs, all_truth),
    )
    return {**report.to_dict(), "model": "fer mini-Xception (emotion_model.hdf5)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--bench", type=Path, metavar="SPEC", help="JSON {one_face: [...], no_face: [...]}"
    )
    mode.add_argument("--eval", type=Path, metavar="DIR", help="folder-per-class tree of faces")
    parser.add_argument("--frames", type=int, default=20, help="frames timed per set")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # fer logs every model load at INFO/WARNING
    if args.eval is not None:
        if not args.eval.is_dir():
            print(f"error: {args.eval} is not a folder of class folders", file=sys.stderr)
            return 2
        report = evaluate(args.eval)
        if report["n"] == 0:
            print(f"error: no images found under {args.eval}/<emotion>/", file=sys.stderr)
            return 2
        print(json.dumps(report))
        return 0
    print(json.dumps(bench(args.bench, max(1, args.frames))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
