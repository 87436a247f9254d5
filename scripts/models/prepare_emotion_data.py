#!/usr/bin/env python3
"""Unpack FER-2013 from ../shared/data into one compressed array file for training.

The data set may not be redistributed, so the result lives outside the
repository, in ``$XDG_CACHE_HOME/moodbox/`` (``~/.cache/moodbox/`` by default),
and is rebuilt from the shared tarball on demand.

    python scripts/models/prepare_emotion_data.py     # -> ~/.cache/moodbox/fer2013.npz

The npz holds ``x_<split>`` (N, 48, 48) uint8 and ``y_<split>`` (N,) int8 with
splits ``train``, ``public`` (validation) and ``private`` (test), the class
order of ``models/emotion_labels.txt``, and the tarball's sha256.

With the FER+ archive present it also holds ``v_<split>`` (N, 10) float32: the
FER+ annotators' votes for each FER-2013 face (columns ``ferplus_columns``;
NaN where FER+ has no face, e.g. "not a face" images). The two archives name
their files differently, so faces are matched by pixels: nearest neighbour on
a 16×16 thumbnail within the same split (Training ↔ FER2013Train, PublicTest ↔
FER2013Valid, PrivateTest ↔ FER2013Test), kept when the full 48×48 images
differ by at most 4 grey levels on average (the JPEG copy differs from the
lossless PNG by about 1.3). ``train_emotion.py --ferplus-mix`` trains on them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moodbox"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SPLIT_OF_PREFIX = {"Training": "train", "PublicTest": "public", "PrivateTest": "private"}
FERPLUS_FOLDER = {"FER2013Train": "train", "FER2013Valid": "public", "FER2013Test": "private"}
# Vote columns of FER+ label.csv after (file, box).
FERPLUS_COLUMNS = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
]
MAX_MEAN_DIFF = 4.0


def default_data_dir() -> Path:
    return ROOT.parent / "shared" / "data"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_ferplus(tarball: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split: (images (N, 48, 48) uint8, votes (N, 10) float32) from the FER+ PNG archive."""
    import csv

    images: dict[str, dict[str, np.ndarray]] = {s: {} for s in FERPLUS_FOLDER.values()}
    votes: dict[str, dict[str, np.ndarray]] = {s: {} for s in FERPLUS_FOLDER.values()}
    with tarfile.open(tarball) as archive:
        for member in archive:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2 or parts[-2] not in FERPLUS_FOLDER:
                continue
            split = FERPLUS_FOLDER[parts[-2]]
            handle = archive.extractfile(member)
            assert handle is not None
            if parts[-1] == "label.csv":
                for row in csv.reader(io.TextIOWrapper(handle)):
                    votes[split][row[0]] = np.asarray(row[2:12], dtype=np.float32)
            elif parts[-1].endswith(".png"):
                raw = np.frombuffer(handle.read(), dtype=np.uint8)
                image = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE)
                if image is not None and image.shape == (48, 48):
                    images[split][parts[-1]] = image
    out = {}
    for split, faces in images.items():
        names = sorted(n for n in faces if n in votes[split])
        out[split] = (
            np.stack([faces[n] for n in names]),
            np.stack([votes[split][n] for n in names]),
        )
    return out


def match_votes(x: np.ndarray, plus_x: np.ndarray, plus_votes: np.ndarray) -> np.ndarray:
    """FER+ votes for each face of ``x`` (NaN rows where no FER+ face matches)."""

    def thumbs(images: np.ndarray) -> np.ndarray:
        return (
            np.stack([cv2.resize(i, (16, 16), interpolation=cv2.INTER_AREA) for i in images])
            .reshape(len(images), -1)
            .astype(np.float32)
        )

    a, b = thumbs(x), thumbs(plus_x)
    b_sq = (b * b).sum(1)
    result = np.full((len(x), plus_votes.shape[1]), np.nan, dtype=np.float32)
    for start in range(0, len(a), 2048):
        chunk = a[start : start + 2048]
        distance = b_sq[None, :] - 2 * chunk @ b.T  # + |a|², the same for every candidate
        nearest = distance.argmin(1)
        for offset, j in enumerate(nearest):
            i = start + offset
            diff = np.abs(x[i].astype(np.float32) - plus_x[j].astype(np.float32)).mean()
            if diff <= MAX_MEAN_DIFF:
                result[i] = plus_votes[j]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--out", type=Path, default=CACHE / "fer2013.npz")
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
    plus_tarball = args.data / "ferplus" / "ferplus-images.tar.gz"
    if plus_tarball.is_file():
        plus = read_ferplus(plus_tarball)
        for split, (plus_x, plus_votes) in plus.items():
            matched = match_votes(arrays[f"x_{split}"], plus_x, plus_votes)
            arrays[f"v_{split}"] = matched
            ok = ~np.isnan(matched[:, 0])
            # FER+ majority over the 7 shared classes, in our label order.
            seven = matched[ok][:, [4, 5, 6, 1, 3, 2, 0]]
            agree = float((seven.argmax(1) == arrays[f"y_{split}"][ok]).mean()) if ok.any() else 0
            print(
                f"{split}: FER+ votes for {int(ok.sum())} of {len(ok)} faces; "
                f"FER+ majority agrees with the FER-2013 label on {agree:.1%}"
            )
        arrays["ferplus_columns"] = np.asarray(FERPLUS_COLUMNS)
    else:
        print(f"no {plus_tarball}: FER+ votes left out", file=sys.stderr)
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
