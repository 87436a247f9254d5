#!/usr/bin/env python3
"""Simulation benchmark: noisy emotion predictions → decide → MusicController → FakePlayer.

Prints four figures against the targets of issue 4:

  follow      time from a sustained true mood change until the music's mood follows  (≤ 3 s)
  unwanted    mid-track switches per hour to a mood the person is not in             (≤ 1 /h)
  repeats     picks that repeat a track within the last 20 (100-track library)        (0)
  prefs       interactions until a listener who skips one style skips half as often   (≤ 20)

Noise model. A true mood path (dwell times exponential, mean --dwell s, at least
10 s) is sampled per frame at --fps; each frame's predicted class is drawn from
the classifier's confusion-matrix row of the true mood, and its probability
vector is 0.5·onehot(predicted) + 0.5·Dirichlet(1): a confident but often wrong
per-frame classifier. The confusion matrix is, first found: --confusion FILE
(the JSON of `moodbox eval-emotion --json`, or any JSON with "confusion" and
"labels"), a "confusion" key in models/emotion_model.json, else the documented
FER-like matrix below (about 62 % accuracy, the confusions typical of FER-2013
CNNs: fear↔sad↔neutral, angry↔disgust); the output says which was used.

    .venv/bin/python scripts/bench/sim_music.py [--hours 5] [--seed 1] [--confusion FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import numpy as np

from edge.classify import EMOTIONS
from edge.config import DEFAULT_CONFIG, load_config

# The daemon's own settings: config.yaml with the MOODBOX_* overrides of the environment.
from edge.decide import MoodDecider, Observation
from edge.events import Event, MoodChanged, MoodSustained
from edge.music.controller import MusicController
from edge.music.library import Library, Track
from edge.music.moods import Point
from edge.music.player import FakePlayer
from edge.music.preferences import PreferenceStore

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(DEFAULT_CONFIG)

# Rows: true class, columns: predicted; order angry, disgust, fear, happy, sad, surprise, neutral.
FER_LIKE = np.array(
    [
        [0.55, 0.03, 0.10, 0.04, 0.14, 0.03, 0.11],
        [0.20, 0.55, 0.06, 0.04, 0.08, 0.02, 0.05],
        [0.10, 0.01, 0.45, 0.04, 0.19, 0.10, 0.11],
        [0.02, 0.00, 0.02, 0.86, 0.03, 0.02, 0.05],
        [0.08, 0.00, 0.11, 0.04, 0.55, 0.01, 0.21],
        [0.02, 0.00, 0.09, 0.04, 0.02, 0.79, 0.04],
        [0.05, 0.00, 0.06, 0.06, 0.16, 0.02, 0.65],
    ]
)
GENRES = ("pop", "metal", "jazz", "folk", "ambient")
TRUE_MOOD_WEIGHTS = {
    "angry": 1,
    "disgust": 0.3,
    "fear": 0.6,
    "happy": 2,
    "sad": 1.5,
    "surprise": 0.6,
    "neutral": 3,
}


def load_confusion(path: Path | None) -> tuple[np.ndarray, str]:
    candidates = [path] if path else [ROOT / "models" / "emotion_model.json"]
    for candidate in candidates:
        if candidate is None or not candidate.is_file():
            continue
        data = json.loads(candidate.read_text())
        if "confusion" in data:
            labels = data.get("labels", list(EMOTIONS))
            raw = np.asarray(data["confusion"], dtype=float)
            order = [labels.index(label) for label in EMOTIONS]
            matrix = raw[np.ix_(order, order)]
            matrix = matrix / np.maximum(matrix.sum(1, keepdims=True), 1e-9)
            return (
                matrix,
                f"{candidate} (accuracy-weighted diagonal {np.mean(np.diag(matrix)):.2f})",
            )
    return FER_LIKE / FER_LIKE.sum(
        1, keepdims=True
    ), "documented FER-like matrix (no real confusion matrix found; rerun with --confusion)"


def make_library(n: int, seed: int) -> Library:
    rng = random.Random(seed)
    return Library(
        Track(
            id=f"t{i:03d}",
            path=Path(f"/sim/t{i:03d}.ogg"),
            title=f"t{i}",
            artist=f"artist{i % 13}",
            duration=rng.uniform(150, 270),
            genre=GENRES[i % len(GENRES)],
            point=Point(rng.uniform(-1, 1), rng.uniform(-1, 1)),
            mood="",
            placed_by="override",
        )
        for i in range(n)
    )


def mood_path(hours: float, dwell: float, rng: random.Random) -> list[tuple[float, str]]:
    """(start time, mood) segments."""
    labels, weights = zip(*TRUE_MOOD_WEIGHTS.items(), strict=True)
    t, current, path = 0.0, "neutral", []
    while t < hours * 3600:
        path.append((t, current))
        t += max(10.0, rng.expovariate(1 / dwell))
        current = rng.choices(
            [m for m in labels if m != current],
            [w for m, w in zip(labels, weights, strict=True) if m != current],
        )[0]
    return path


def run_moods(
    hours: float,
    fps: float,
    dwell: float,
    seed: int,
    confusion: np.ndarray,
    *,
    stickiness: float = 0.0,
) -> dict[str, float]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    library = make_library(100, seed)
    player = FakePlayer(durations={t.path: t.duration for t in library.tracks})
    music = MusicController(
        library=library,
        player=player,
        config=CONFIG.music,
        rng=random.Random(seed),
        clock=lambda: 0.0,
    )
    decider = MoodDecider.from_config(CONFIG.decide)
    events: list[Event] = []
    music.start(events.append)
    path = mood_path(hours, dwell, rng)
    segment = 0
    follow: list[float] = []
    audible: list[float] = []
    pending_change: tuple[float, str] | None = None
    switch_times: set[float] = set()
    unwanted = 0
    step = 1.0 / fps
    frames = int(hours * 3600 * fps)
    last_truth = ""
    probs = np.full(7, 1 / 7)
    for k in range(frames):
        now = k * step
        while segment + 1 < len(path) and path[segment + 1][0] <= now:
            segment += 1
            start, mood = path[segment]
            end = path[segment + 1][0] if segment + 1 < len(path) else hours * 3600
            pending_change = (start, mood) if end - start >= 10 else None
        truth = path[segment][1]
        # Correlated frames: with probability `stickiness` a frame repeats the previous
        # frame's reading of the same true mood (a face holding an expression).
        if not (stickiness > 0 and k and truth == last_truth and nrng.random() < stickiness):
            predicted = nrng.choice(7, p=confusion[EMOTIONS.index(truth)])
            probs = 0.5 * np.eye(7)[predicted] + 0.5 * nrng.dirichlet(np.ones(7))
        last_truth = truth
        for event in decider.update(now, [Observation(1, probs, (0, 0, 1, 1))]):
            if isinstance(event, MoodChanged | MoodSustained):
                music.emit(event)
        before = len(music.history)
        music.poll(now)
        if pending_change and music.mood == pending_change[1]:
            follow.append(now - pending_change[0])
            pending_change = None
        for when, _track, reason in music.history[before:]:
            if reason == "switch" and when not in switch_times:
                switch_times.add(when)
                if music.mood != truth:
                    unwanted += 1
                elif now - path[segment][0] < 60:
                    audible.append(now - path[segment][0])
    ids = [track for _, track, _ in music.history]
    repeats = sum(ids[i] in ids[max(0, i - 20) : i] for i in range(len(ids)))
    return {
        "changes": len(
            [
                1
                for i in range(1, len(path))
                if (path[i + 1][0] if i + 1 < len(path) else hours * 3600) - path[i][0] >= 10
            ]
        ),
        "followed": len(follow),
        "follow_median": statistics.median(follow) if follow else float("nan"),
        "follow_p90": float(np.percentile(follow, 90)) if follow else float("nan"),
        "audible_median": statistics.median(audible) if audible else float("nan"),
        "switches": len(switch_times),
        "unwanted_per_hour": unwanted / hours,
        "picks": len(ids),
        "repeats": repeats,
    }


def run_preferences(listeners: int, interactions: int, seed: int) -> list[float]:
    """P(skip) at each interaction for a listener who skips every metal track."""
    skips = np.zeros(interactions)
    for n in range(listeners):
        library = make_library(100, seed + n)
        player = FakePlayer()
        store = PreferenceStore(Path(":memory:"))
        music = MusicController(
            library=library,
            player=player,
            config=CONFIG.music,
            preferences=store,
            rng=random.Random(seed * 1000 + n),
            clock=lambda: 0.0,
        )
        music.start(lambda _e: None)
        probs = dict.fromkeys(EMOTIONS, 0.05) | {"neutral": 0.7}
        music.emit(
            MoodChanged(
                time=0,
                face_id=1,
                mood="neutral",
                previous=None,
                probabilities=probs,
                box=(0, 0, 1, 1),
                user="sim",
            )
        )
        now = 0.0
        for i in range(interactions):
            now += 0.2
            music.poll(now)
            for _ in range(100):
                if music.current is not None:
                    break
                now += 0.2
                music.poll(now)
            else:
                raise RuntimeError(
                    f"listener {n}: nothing plays at interaction {i}: {music.state()}"
                )
            track = music.current
            assert track is not None
            if track.genre == "metal":
                skips[i] += 1
                music.next()
            else:
                player.trigger_end()
            now += 0.2
            music.poll(now)
        store.close()
    return list(skips / listeners)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--dwell", type=float, default=180.0, help="mean seconds in one mood")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--confusion", type=Path, default=None)
    parser.add_argument(
        "--stickiness",
        type=float,
        default=0.0,
        help="probability that a frame repeats the previous frame's reading (correlated errors)",
    )
    args = parser.parse_args()
    confusion, source = load_confusion(args.confusion)
    print(f"confusion matrix: {source}")
    print(
        f"decide: {CONFIG.decide.model_dump()}  music: strategy={CONFIG.music.strategy} switch_distance={CONFIG.music.switch_distance} switch_hold_s={CONFIG.music.switch_hold_s} min_switch_interval_s={CONFIG.music.min_switch_interval_s}"
    )
    m = run_moods(
        args.hours, args.fps, args.dwell, args.seed, confusion, stickiness=args.stickiness
    )
    if args.stickiness:
        print(f"frames repeat the previous reading with probability {args.stickiness:g}")
    curve = run_preferences(args.listeners, 40, args.seed)
    first = float(np.mean(curve[:3]))
    halved = next(
        (
            i + 1
            for i in range(len(curve))
            if float(np.mean(curve[max(0, i - 2) : i + 1])) <= first / 2
        ),
        None,
    )
    ok = lambda good: "OK  " if good else "MISS"  # noqa: E731
    print(
        f"{ok(m['follow_median'] <= 3)} follow: music's mood follows a sustained change in {m['follow_median']:.1f} s median, {m['follow_p90']:.1f} s p90 ({m['followed']}/{m['changes']} changes followed; target ≤ 3 s)"
    )
    print(
        f"     audible: strong changes cross-fade {m['audible_median']:.1f} s (median) after the true change; weaker ones at the next track boundary"
    )
    print(
        f"{ok(m['unwanted_per_hour'] <= 1)} unwanted switches: {m['unwanted_per_hour']:.2f} per hour ({m['switches']} mid-track switches in {args.hours:g} h; target ≤ 1/h)"
    )
    print(
        f"{ok(m['repeats'] == 0)} repeats within 20 picks: {m['repeats']} of {m['picks']} picks (100-track library; target 0)"
    )
    print(
        f"{ok(halved is not None and halved <= 20)} preferences: P(skip) {first:.2f} at first → {np.mean(curve[17:20]):.2f} at interactions 18–20 → {np.mean(curve[-3:]):.2f} at 38–40; halved after {halved} interactions ({args.listeners} listeners; target ≤ 20)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
