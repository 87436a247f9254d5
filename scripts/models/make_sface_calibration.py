#!/usr/bin/env python3
"""Aligned faces for calibrating the int8 SFace model (scripts/models/convert_sface.py --variant int8).

Takes LFW A–F people who are in *no* verification pair (so the LFW figures are
not measured on faces the quantisation ranges were fitted to), detects and
aligns each image exactly as the daemon does (BlazeFace keypoints → 112×112),
and writes an (N, 112, 112, 3) float32 RGB array, the model's input, to OUT.
The array is data-derived: keep it in the cache, never in git.

    .venv/bin/python scripts/models/make_sface_calibration.py \\
        --images .cache/faces/lfw --pairs ../shared/data/faces/lfw-pairs-a-f.txt \\
        --out ~/.cache/moodbox/sface-convert/calibration_lfw.npy --count 400
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from edge.config import DEFAULT_CONFIG, load_config
from edge.detect import BlazeFaceDetector
from edge.identify.align import align_face
from edge.measure.face_eval import locate, read_image

ROOT = Path(__file__).resolve().parents[2]


def people_in_pairs(pairs: Path) -> set[str]:
    names: set[str] = set()
    for line in pairs.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3:
            names.add(fields[0])
        elif len(fields) == 4:
            names.update((fields[0], fields[2]))
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="lfw/<Name>/*.jpg")
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    excluded = people_in_pairs(args.pairs)
    paths = sorted(
        path
        for person in args.images.iterdir()
        if person.is_dir() and person.name not in excluded
        for path in person.glob("*.jpg")
    )
    random.Random(args.seed).shuffle(paths)
    config = load_config(DEFAULT_CONFIG)
    detector = BlazeFaceDetector(
        config.resolve(config.detect.model),
        min_score=config.detect.min_score,
        nms_iou=config.detect.nms_iou,
        min_face_px=config.detect.min_face_px,
    )
    faces = []
    for path in paths:
        image = read_image(path)
        keypoints = None if image is None else locate(detector, image)
        if image is None or keypoints is None:
            continue
        faces.append(align_face(image, keypoints)[:, :, ::-1].astype(np.float32))  # BGR → RGB
        if len(faces) == args.count:
            break
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, np.stack(faces))
    print(
        f"{len(faces)} aligned faces of {len(excluded)} excluded people's complement → {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
