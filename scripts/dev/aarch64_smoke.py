"""Smoke test for a target runtime (run by scripts/dev/check-aarch64 under qemu-aarch64).

Loads every shipped model in the installed TFLite runtime, runs the pipeline
over the demo frames once, and plays a generated tone through SDL's disk audio
driver (SDL_AUDIODRIVER=disk), checking that samples reached the file.
Exit 0 when everything worked.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tone-file", type=Path, required=True, help="SDL_DISKAUDIOFILE")
    parser.add_argument("--frames", type=int, default=0, help="demo frames to process (0: all)")
    args = parser.parse_args()
    started = time.monotonic()
    import numpy as np

    print(f"python {platform.python_version()} on {platform.machine()}, numpy {np.__version__}")
    import cv2

    print(f"opencv {cv2.__version__}")

    from edge.camera.replay import ReplaySource
    from edge.config import load_config
    from edge.tflite import load_interpreter

    for model in sorted((ROOT / "models").glob("*.tflite")):
        interpreter = load_interpreter(model)
        details = interpreter.get_input_details()[0]
        interpreter.set_tensor(details["index"], np.zeros(details["shape"], details["dtype"]))
        interpreter.invoke()
        print(f"model {model.name}: loaded and invoked, input {list(details['shape'])}", flush=True)

    from edge.pipeline import Pipeline
    from edge.stats import Stats

    config = load_config(ROOT / "config.yaml", environ={})
    pipeline = Pipeline.from_config(config, Stats())
    source = ReplaySource(ROOT / "demo" / "faces", fps=0, loop=False)
    frames = 0
    from edge.errors import EndOfStream

    with source:
        while True:
            try:
                frame = source.read()
            except EndOfStream:
                break
            pipeline.process(frame, wall_time=time.time())
            frames += 1
            if frames == args.frames:
                break
    detections = pipeline.detector.detect(
        cv2.imread(str(ROOT / "demo" / "faces" / "frame_000.jpg"))
    )
    print(f"pipeline: {frames} demo frames processed, {len(detections)} face(s) in frame 0")
    if frames == 0 or not detections:
        print("FAIL: the pipeline saw no frames or no face")
        return 1

    import pygame

    print(f"pygame {pygame.version.ver}, SDL_AUDIODRIVER={os.environ.get('SDL_AUDIODRIVER')}")
    pygame.mixer.init(frequency=22050, size=-16, channels=1)
    t = np.arange(22050 // 2) / 22050
    tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    sound = pygame.sndarray.make_sound(tone)
    channel = sound.play()
    while channel.get_busy():
        time.sleep(0.05)
    pygame.mixer.quit()
    size = args.tone_file.stat().st_size if args.tone_file.exists() else 0
    print(f"audio: 0.5 s tone played, {size} bytes written by the disk driver")
    if size == 0:
        print("FAIL: the disk audio driver wrote nothing")
        return 1
    print(f"OK in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
