#!/usr/bin/env python3
"""Write the emotion test sets as folder-per-class trees for `moodbox eval-emotion`.

From ../shared/data (never committed; written under the git-ignored .cache/eval):

- ``fer2013_private``: FER-2013 PrivateTest (3,589 faces, the test split everyone reports);
- ``fer2013_private_dedup``: the PrivateTest faces whose pixels do not occur in Training
  (about 8% do, see ../shared/data/README.md);
- ``fer2013_public``: FER-2013 PublicTest (the validation split, for tuning);
- ``ferplus_test``: FER+ test faces under their majority vote, keeping the faces whose
  majority is one of our 7 classes (contempt, unknown and not-a-face majorities dropped;
  ties go to the first class in the FER+ column order);
- ``ferplus_test_ref``: FER+ test faces under the FERPlus reference protocol (votes of one
  dropped as outliers, a face kept only where one emotion then holds more than half of the
  remaining votes and that emotion is one of our 7 classes: 3,122 faces), the protocol the
  published FER+ figures use.

    python scripts/assets/prepare_eval_sets.py && moodbox eval-emotion .cache/eval/fer2013_private
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import tarfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# FER+ vote columns after (file, box): neutral, happiness, surprise, sadness, anger,
# disgust, fear, contempt, unknown, NF.
FERPLUS_CLASSES = [
    "neutral",
    "happy",
    "surprise",
    "sad",
    "angry",
    "disgust",
    "fear",
    None,
    None,
    None,
]


def pixel_hash(data: bytes) -> str:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return hashlib.sha256(image.tobytes()).hexdigest()


def fer2013(data_dir: Path, out: Path) -> None:
    train_hashes: set[str] = set()
    private: list[tuple[str, str, bytes]] = []
    with tarfile.open(data_dir / "fer2013" / "fer2013-images.tar.gz") as archive:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            path = Path(member.name)
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            prefix = path.name.split("_", 1)[0]
            if prefix == "Training":
                train_hashes.add(pixel_hash(data))
            elif prefix == "PrivateTest":
                private.append((path.parent.name, path.name, data))
            elif prefix == "PublicTest":
                write(out / "fer2013_public" / path.parent.name / path.name, data)
    duplicates = 0
    for label, name, data in private:
        write(out / "fer2013_private" / label / name, data)
        # JPEG re-encoding makes "identical" faces differ slightly, so duplicates are
        # matched on the decoded pixels; this finds the pixel-identical ones.
        if pixel_hash(data) in train_hashes:
            duplicates += 1
        else:
            write(out / "fer2013_private_dedup" / label / name, data)
    print(
        f"fer2013_private: {len(private)} faces; {duplicates} also in Training, "
        f"{len(private) - duplicates} in fer2013_private_dedup"
    )


def majority_label(votes: np.ndarray) -> str | None:
    """The most-voted FER+ column's class (None: contempt, unknown or not-a-face)."""
    return FERPLUS_CLASSES[int(np.argmax(votes))]


def reference_label(votes: np.ndarray) -> str | None:
    """The FERPlus reference protocol's class for one face's ten vote counts (None: left out).

    A single vote is taken as an annotator's slip and dropped; the face counts only
    where one emotion then holds more than half of the remaining votes, and not where
    that is contempt, unknown or not-a-face. This is the training script's
    ``ferplus_reference`` on one face, so validation and test use one protocol.
    """
    kept = np.where(votes <= 1, 0, votes)
    total = int(kept.sum())
    if total == 0 or 2 * int(kept.max()) <= total:
        return None
    return FERPLUS_CLASSES[int(np.argmax(kept))]


def ferplus(data_dir: Path, out: Path) -> None:
    tarball = data_dir / "ferplus" / "ferplus-images.tar.gz"
    # Two sequential passes (a gzip tar cannot seek back cheaply): labels, then images.
    labels: dict[str, str] = {}
    reference: dict[str, str] = {}
    dropped = 0
    with tarfile.open(tarball) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith("FER2013Test/label.csv"):
                handle = archive.extractfile(member)
                assert handle is not None
                folder = member.name.rsplit("/", 1)[0]
                for row in csv.reader(handle.read().decode().splitlines()):
                    votes = np.asarray([int(v) for v in row[2:12]])
                    name = f"{folder}/{row[0]}"
                    label = majority_label(votes)
                    if label is None:
                        dropped += 1
                    else:
                        labels[name] = label
                    ref = reference_label(votes)
                    if ref is not None:
                        reference[name] = ref
                break
    kept = kept_ref = 0
    with tarfile.open(tarball) as archive:
        for member in archive:
            label, ref = labels.get(member.name), reference.get(member.name)
            if label is None and ref is None:
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            if label is not None:
                write(out / "ferplus_test" / label / Path(member.name).name, data)
                kept += 1
            if ref is not None:
                write(out / "ferplus_test_ref" / ref / Path(member.name).name, data)
                kept_ref += 1
    print(f"ferplus_test: {kept} faces kept, {dropped} dropped (contempt/unknown/NF majority)")
    print(f"ferplus_test_ref: {kept_ref} faces under the FERPlus reference protocol")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "eval")
    parser.add_argument("--only-ferplus", action="store_true")
    args = parser.parse_args()
    if not args.only_ferplus:
        fer2013(args.data, args.out)
    ferplus(args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
