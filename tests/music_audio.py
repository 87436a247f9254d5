"""Real audio files for the music tests: short sine WAVs written with the standard library."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 22050


def write_wav(path: Path, seconds: float = 0.3, freq: float = 440.0) -> Path:
    """A mono 16-bit sine tone of ``seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(RATE * seconds)
    samples = (int(12000 * math.sin(2 * math.pi * freq * i / RATE)) for i in range(frames))
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an audio suffix and garbage inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"OggS" + bytes(range(256)) * 3)
    return path
