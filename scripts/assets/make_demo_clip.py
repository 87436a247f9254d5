#!/usr/bin/env python3
"""Build the bundled replay clip demo/faces/ from public-domain portraits.

Sources (provenance in demo/README.md): scikit-image's astronaut.png (NASA,
public domain) and coffee.png (CC0, no face), matplotlib's grace_hopper.jpg
(US Navy official portrait, public domain). Each portrait is placed on a
640x480 canvas over a few frames with a small drift, like a person in front
of the speaker; the coffee frames show an empty scene.

    python scripts/assets/make_demo_clip.py --astronaut A.png --hopper G.jpg --coffee C.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def place(image: np.ndarray, height: int, dx: int, dy: int) -> np.ndarray:
    canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
    scale = height / image.shape[0]
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    x, y = (640 - w) // 2 + dx, (480 - h) // 2 + dy
    canvas[max(y, 0) : y + h, max(x, 0) : x + w] = small[max(-y, 0) : 480 - y, max(-x, 0) : 640 - x]
    return canvas


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--astronaut", type=Path, required=True)
    parser.add_argument("--hopper", type=Path, required=True)
    parser.add_argument("--coffee", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "demo" / "faces")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    frames: list[np.ndarray] = []
    astronaut = cv2.imread(str(args.astronaut))
    hopper = cv2.imread(str(args.hopper))
    coffee = cv2.imread(str(args.coffee))
    frames += [place(astronaut, 470, 4 * i, 2 * i) for i in range(10)]
    frames += [place(coffee, 480, 0, 0)] * 3
    frames += [place(hopper, 470, -3 * i, i) for i in range(10)]
    frames += [place(coffee, 480, 0, 0)] * 3
    for i, frame in enumerate(frames):
        cv2.imwrite(str(args.out / f"frame_{i:03d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {len(frames)} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
