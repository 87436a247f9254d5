#!/usr/bin/env python3
"""Choose the emotion crop on validation: ``emotion.crop_scale`` and ``emotion.upright``.

FER-2013's faces were cropped and levelled by its authors; live faces are
cropped by our detector. This puts each PublicTest face (validation only)
back into a frame as the camera would see it: scaled up 3x onto a 320x240
canvas (edges replicated), either level or tilted by a random angle within
±``--tilt`` degrees, then runs the daemon's detector and crop and the
shipped classifier, for each crop scale with and without the upright turn.
The 48x48 original, classified as it is, is the ceiling. Accuracy is against
the FER-2013 labels, on the faces the detector found in every condition.

    .venv/bin/python scripts/models/eval_crops.py [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tarfile
from pathlib import Path

import cv2
import numpy as np

from edge.backends import make_classifier, make_detector
from edge.classify import EMOTIONS, crop_face, eye_roll
from edge.config import DEFAULT_CONFIG, load_config

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
SCALES = (1.0, 1.1, 1.2, 1.3, 1.4)
CANVAS = (320, 240)


def public_test(archive: Path, limit: int) -> list[tuple[np.ndarray, int]]:
    """(grey 48x48 face, label index) for every PublicTest_ image, in archive order."""
    faces: list[tuple[np.ndarray, int]] = []
    with tarfile.open(archive) as tar:
        for member in tar:
            name = Path(member.name)
            if not member.isfile() or not name.name.startswith("PublicTest_"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            image = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
            faces.append((image, EMOTIONS.index(name.parent.name)))
            if limit and len(faces) >= limit:
                break
    return faces


def in_frame(face: np.ndarray, tilt: float) -> np.ndarray:
    """The face as a camera frame: 3x up, centred on a replicated-edge canvas, turned."""
    big = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
    width, height = CANVAS
    top, left = (height - 144) // 2, (width - 144) // 2
    canvas = cv2.copyMakeBorder(
        big, top, height - 144 - top, left, width - 144 - left, cv2.BORDER_REPLICATE
    )
    if tilt:
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
        canvas = cv2.warpAffine(canvas, matrix, CANVAS, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--archive", type=Path, default=DATA / "fer2013" / "fer2013-images.tar.gz")
    parser.add_argument("--limit", type=int, default=0, help="first N faces only (0: all)")
    parser.add_argument("--tilt", type=float, default=20.0, help="largest random tilt, degrees")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = load_config(args.config, environ={})
    detector = make_detector(config, threads=1)
    classifier = make_classifier(config, threads=1)
    faces = public_test(args.archive, args.limit)
    rng = np.random.default_rng(args.seed)
    tilts = {
        "level": np.zeros(len(faces)),
        "tilted": rng.uniform(-args.tilt, args.tilt, len(faces)),
    }
    conditions = [(c, s, u) for c in tilts for s in SCALES for u in (False, True)]
    correct = {key: [] for key in conditions}
    ceiling: list[bool] = []
    for i, (face, label) in enumerate(faces):
        found = {}
        for condition, angles in tilts.items():
            frame = in_frame(face, float(angles[i]))
            detections = detector.detect(frame)
            if detections:
                found[condition] = (frame, detections[0])
        if len(found) < len(tilts):
            continue  # compare every condition on the same faces
        ceiling.append(int(np.argmax(classifier.classify(face))) == label)
        for condition, scale, upright in conditions:
            frame, det = found[condition]
            roll = eye_roll(det.keypoints) if upright else 0.0
            probabilities = classifier.classify(crop_face(frame, det.box, scale, roll))
            correct[(condition, scale, upright)].append(int(np.argmax(probabilities)) == label)
    n = len(ceiling)
    report = {
        "faces": len(faces),
        "detected_in_every_condition": n,
        "ceiling_48px_original": round(100 * float(np.mean(ceiling)), 2),
        "accuracy": {
            f"{c} scale {s} upright {'on' if u else 'off'}": round(100 * float(np.mean(v)), 2)
            for (c, s, u), v in correct.items()
        },
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"PublicTest: {n} of {len(faces)} faces found by the detector level and tilted "
        f"(±{args.tilt:g}°); the 48x48 original classified as it is: "
        f"{report['ceiling_48px_original']}%"
    )
    print(f"{'scale':>6} {'level':>8} {'level+up':>9} {'tilted':>8} {'tilted+up':>10}")
    for s in SCALES:
        row = [100 * float(np.mean(correct[(c, s, u)])) for c in tilts for u in (False, True)]
        print(f"{s:>6} " + " ".join(f"{v:>8.2f}" for v in row))


if __name__ == "__main__":
    main()
