#!/usr/bin/env python3
"""Synthesise the demo music library: a few short public-domain (CC0) tracks per mood.

Each mood gets its own tempo, mode, timbre, register and rhythm, chosen from the
music-emotion literature (fast/major/bright → happy; slow/minor/soft → sad;
slow/pentatonic/pads → calm; fast/minor/distorted → angry; tremolo, drones and
diminished chords → fear; leaps and staccato lydian → surprise). The output
goes to music/<mood>/demo-<mood>-<n>.ogg (Ogg Vorbis through the `soundfile`
package; plain WAV through the standard library when soundfile is missing) with
title, artist, genre, mood and BPM tags (mutagen).

    pip install soundfile mutagen numpy   # a separate venv is fine
    python scripts/assets/make_demo_music.py [--out music] [--seconds 15] [--per-mood 3]

Nothing here is sampled or copied: every sample is computed below, so the
tracks are ours to dedicate to the public domain.
"""

from __future__ import annotations

import argparse
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 22050

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)
LYDIAN = (0, 2, 4, 6, 7, 9, 11)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PENTATONIC = (0, 2, 4, 7, 9, 12, 14)


@dataclass(frozen=True)
class Style:
    """How one mood sounds."""

    bpm: float
    scale: tuple[int, ...]
    root: int  # MIDI note of the tonic
    progression: tuple[int, ...]  # scale degrees of the chord roots, one per bar
    harmonics: tuple[float, ...]  # timbre: relative amplitudes of partials
    notes_per_beat: int  # melody rhythm
    attack: float  # seconds
    release: float
    drums: bool
    tremolo: float = 0.0  # Hz, 0 = none
    leap: int = 2  # largest melodic step in scale degrees
    rest: float = 0.0  # probability of a melody rest
    drive: float = 0.0  # soft clipping amount (distortion)
    diminished: bool = False


STYLES: dict[str, Style] = {
    "happy": Style(128, MAJOR, 60, (0, 4, 5, 3), (1, 0.5, 0.33, 0.25, 0.2), 2, 0.01, 0.12, True),
    "sad": Style(66, MINOR, 53, (0, 5, 2, 6), (1, 0.15, 0.05), 1, 0.15, 0.6, False, rest=0.2),
    "calm": Style(72, PENTATONIC, 62, (0, 3, 4, 0), (1, 0.1), 1, 0.3, 0.9, False, rest=0.3),
    "angry": Style(
        150,
        PHRYGIAN,
        45,
        (0, 0, 1, 0),
        (1, 0.7, 0.6, 0.5, 0.4, 0.3),
        4,
        0.005,
        0.05,
        True,
        leap=3,
        drive=4.0,
    ),
    "fear": Style(
        90,
        MINOR,
        48,
        (0, 1, 0, 6),
        (1, 0.3, 0.1),
        1,
        0.2,
        0.4,
        False,
        tremolo=7.0,
        leap=5,
        rest=0.4,
        diminished=True,
    ),
    "surprise": Style(
        140, LYDIAN, 67, (0, 1, 4, 0), (1, 0.4, 0.1), 2, 0.005, 0.06, True, leap=6, rest=0.25
    ),
    "neutral": Style(100, DORIAN, 57, (0, 3, 0, 4), (1, 0.3, 0.15, 0.05), 1, 0.03, 0.25, False),
}


def midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def tone(freq: float, seconds: float, style: Style, amp: float) -> np.ndarray:
    n = max(1, int(seconds * RATE))
    t = np.arange(n) / RATE
    wave_ = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(style.harmonics))
    env = np.minimum(1.0, t / max(style.attack, 1e-3)) * np.exp(-t / max(style.release, 1e-3) * 0.5)
    if style.tremolo:
        env = env * (0.6 + 0.4 * np.sin(2 * np.pi * style.tremolo * t))
    return amp * env * np.asarray(wave_)


def degree_note(style: Style, degree: int, octave: int = 0) -> int:
    scale = style.scale
    octave += degree // len(scale)
    return style.root + scale[degree % len(scale)] + 12 * octave


def add(buffer: np.ndarray, start: float, sound: np.ndarray) -> None:
    i = int(start * RATE)
    j = min(len(buffer), i + len(sound))
    if i < j:
        buffer[i:j] += sound[: j - i]


def render(style: Style, seconds: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(seconds * RATE))
    beat = 60.0 / style.bpm
    bar = 4 * beat
    t, bar_index, degree = 0.0, 0, 0
    while t < seconds:
        chord_root = style.progression[bar_index % len(style.progression)]
        steps = (0, 3, 6) if style.diminished else (0, 2, 4)
        # Chord: held pad (or re-struck on every beat when there are drums).
        for step in steps:
            note = degree_note(style, chord_root + step, -1)
            if style.drums:
                for b in range(4):
                    add(out, t + b * beat, tone(midi_hz(note), beat * 0.9, style, 0.08))
            else:
                add(out, t, tone(midi_hz(note), bar * 1.1, style, 0.1))
        # Melody: a random walk on the scale around the chord.
        n = 4 * style.notes_per_beat
        step_s = bar / n
        for k in range(n):
            if rng.random() < style.rest:
                continue
            degree = int(np.clip(degree + rng.integers(-style.leap, style.leap + 1), -3, 10))
            note = degree_note(style, chord_root + degree, 1)
            add(out, t + k * step_s, tone(midi_hz(note), step_s * 1.5, style, 0.18))
        if style.drums:
            for b in range(4):
                kick = np.sin(2 * np.pi * 55 * np.arange(int(0.12 * RATE)) / RATE)
                add(out, t + b * beat, 0.35 * kick * np.exp(-np.arange(len(kick)) / (0.03 * RATE)))
                hat = rng.standard_normal(int(0.03 * RATE)) * np.exp(
                    -np.arange(int(0.03 * RATE)) / 80
                )
                add(out, t + (b + 0.5) * beat, 0.05 * hat)
        t += bar
        bar_index += 1
    if style.drive:
        out = np.tanh(style.drive * out) / np.tanh(style.drive)
    fade = int(0.5 * RATE)
    out[:fade] *= np.linspace(0, 1, fade)
    out[-fade:] *= np.linspace(1, 0, fade)
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.8 * out / peak).astype(np.float32)


def write(path: Path, audio: np.ndarray, tags: dict[str, str]) -> Path:
    try:
        import soundfile
    except ImportError:
        path = path.with_suffix(".wav")
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(RATE)
            handle.writeframes((audio * 32767).astype("<i2").tobytes())
        return path
    soundfile.write(path, audio, RATE, format="OGG", subtype="VORBIS")
    try:
        from mutagen.oggvorbis import OggVorbis
    except ImportError:
        return path
    tagged = OggVorbis(path)
    for key, value in tags.items():
        tagged[key] = value
    tagged.save()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "music")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--per-mood", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    total = 0
    for mood, style in STYLES.items():
        for n in range(1, args.per_mood + 1):
            rng = np.random.default_rng([args.seed, n, sum(map(ord, mood))])
            audio = render(style, args.seconds, rng)
            folder = args.out / mood
            folder.mkdir(parents=True, exist_ok=True)
            path = write(
                folder / f"demo-{mood}-{n}.ogg",
                audio,
                {
                    "title": f"Demo {mood} {n}",
                    "artist": "moodbox demo synth",
                    "genre": "demo",
                    "mood": mood,
                    "bpm": str(int(style.bpm)),
                    "license": "CC0-1.0 (public domain dedication)",
                },
            )
            total += path.stat().st_size
            print(f"{path}  {path.stat().st_size // 1024} KiB")
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
