#!/usr/bin/env python3
"""Unpack FER-2013 from ../shared/data into one compressed array file for training.

The data set may not be redistributed, so the result lives in the git-ignored
``.cache/`` folder and is rebuilt from the shared tarball on demand.

    python scripts/prepare_emotion_data.py            # -> .cache/fer2013.npz

The npz holds ``x_<split>`` (N, 48, 48) uint8 and ``y_<split>`` (N,) int8 with
splits ``train``, ``public`` (validation) and ``private`` (test), the class
order of ``models/emotion_labels.txt``, and the tarball's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SPLIT_OF_PREFIX = {"Training": "train", "PublicTest": "public", "PrivateTest": "private"}


def default_data_dir() -> Path:
    return ROOT.parent / "shared" / "data"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "fer2013.npz")
    args = parser.parse_args(argv)

    tarball = args.data / "fer2013" / "fer2013-images.tar.gz"
    if not tarball.is_file():
        print(f"error: {tarball} not found (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLIT_OF_PREFIX.values()}
    labels: dict[str, list[int]] = {s: [] for s in SPLIT_OF_PREFIX.values()}
    names: dict[str, list[str]] = {s: [] for s in SPLIT_OF_PREFIX.values()}
    with tarfile.open(tarball) as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            parts = Path(member.name).parts
            label, filename = parts[-2], parts[-1]
            split = SPLIT_OF_PREFIX[filename.split("_", 1)[0]]
            handle = archive.extractfile(member)
            assert handle is not None
            raw = np.frombuffer(handle.read(), dtype=np.uint8)
            image = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE)
            if image is None or image.shape != (48, 48):
                print(f"skip {member.name}: not a 48x48 image", file=sys.stderr)
                continue
            images[split].append(image)
            labels[split].append(LABELS.index(label))
            names[split].append(filename)
    arrays: dict[str, np.ndarray] = {}
    for split in images:
        order = np.argsort(names[split])  # deterministic order, independent of tar order
        arrays[f"x_{split}"] = np.stack(images[split])[order]
        arrays[f"y_{split}"] = np.asarray(labels[split], dtype=np.int8)[order]
        arrays[f"names_{split}"] = np.asarray(names[split])[order]
        print(f"{split}: {len(order)} images")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, labels=np.asarray(LABELS), source_sha256=np.asarray(sha256_of(tarball)), **arrays
    )
    args.out.write_bytes(buffer.getvalue())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
