#!/usr/bin/env python3
"""The emotion model's figures on every test set, beside the `fer` baseline, in one run.

    python scripts/assets/prepare_eval_sets.py         # once: writes .cache/eval/<set>/<class>/*
    scripts/models/setup-fer-baseline            # once: fer in its own venv (optional)
    python scripts/models/emotion_report.py [--fer-python ~/.cache/moodbox/venv-fer/bin/python]

For each set it runs the shipped int8 model exactly as `moodbox eval-emotion`
does (production preprocessing, mirror TTA as `emotion.flip_tta` defaults, and
once the other way), an earlier model the same way if --compare names one
(the first model: `git show 9943fb8:models/emotion_int8.tflite`), and fer's mini-Xception through fer_baseline.py --eval on the
same images. It prints a Markdown table for models/README.md, writes the
confusion-matrix PNG of FER-2013 PrivateTest under docs/, and measures the
model's latency per face on one interpreter thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.classify import TFLiteEmotionClassifier
from edge.config import EmotionConfig
from edge.measure.emotion_eval import EmotionReport, evaluate_emotion, plot_confusion

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moodbox"

SETS = {
    "fer2013_private": "FER-2013 PrivateTest (test)",
    "fer2013_private_dedup": "FER-2013 PrivateTest, not in Training",
    "ferplus_test": "FER+ test, majority label (7 classes)",
    "ferplus_test_ref": "FER+ test, FERPlus reference protocol",
    "fer2013_public": "FER-2013 PublicTest (validation)",
}


def classifier(tta: bool, folder: Path = ROOT / "models") -> TFLiteEmotionClassifier:
    return TFLiteEmotionClassifier(
        folder / "emotion_int8.tflite",
        ROOT / "models" / "emotion_labels.txt",
        folder / "emotion_model.json",
        flip_tta=tta,
        threads=1,
    )


def latency_ms(model: TFLiteEmotionClassifier, runs: int = 2000) -> float:
    """Median ms per face over ``runs`` calls of ``classify`` (preprocessing excluded)."""
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    for _ in range(50):
        model.classify(face)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.classify(face)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def run_fer(python: Path, folder: Path, name: str) -> dict[str, Any] | None:
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), str(Path(__file__).with_name("fer_baseline.py")), "--eval", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        print(f"fer baseline failed on {name}: {out.stderr[-500:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def recall_line(report: EmotionReport) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in report.per_class_recall.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT / ".cache" / "eval")
    parser.add_argument("--fer-python", type=Path, default=CACHE / "venv-fer" / "bin" / "python")
    parser.add_argument(
        "--compare",
        type=Path,
        help="a folder with an earlier emotion_int8.tflite and emotion_model.json "
        "(e.g. the first model, from git) to evaluate beside the shipped one",
    )
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args()

    shipped_tta = EmotionConfig().flip_tta  # the runtime's default
    mode, other_mode = ("mirror TTA", "one pass") if shipped_tta else ("one pass", "mirror TTA")
    ours, ours_other = classifier(shipped_tta), classifier(not shipped_tta)
    earlier = classifier(shipped_tta, args.compare) if args.compare else None
    figures: dict[str, Any] = {"shipped_mode": mode}
    rows = [
        f"| set | n | ours int8, {mode} (shipped) | ours, {other_mode} | macro recall | ECE "
        f"| earlier model, {mode} | fer mini-Xception |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, title in SETS.items():
        folder = args.eval_dir / name
        if not folder.is_dir():
            print(f"skip {name}: {folder} missing (run scripts/assets/prepare_eval_sets.py)")
            continue
        main_report = evaluate_emotion(ours, folder)
        other = evaluate_emotion(ours_other, folder)
        before = evaluate_emotion(earlier, folder) if earlier else None
        fer = run_fer(args.fer_python, folder, name)
        figures[name] = {
            "ours": main_report.to_dict(),
            "ours_other_mode": other.to_dict(),
            "earlier": before.to_dict() if before else None,
            "fer": fer,
        }
        fer_cell = f"{fer['accuracy']:.2%}" if fer else "n/a"
        before_cell = (
            f"{before.accuracy:.2%} ({before.macro_recall:.1%}, {before.ece:.3f})"
            if before
            else "n/a"
        )
        rows.append(
            f"| {title} | {main_report.n} | **{main_report.accuracy:.2%}** | "
            f"{other.accuracy:.2%} | {main_report.macro_recall:.2%} | {main_report.ece:.3f} | "
            f"{before_cell} | {fer_cell} |"
        )
        print(f"\n## {title}\n{main_report.table()}")
        if before:
            print(f"earlier model recall: {recall_line(before)}")
        if fer:
            recall = ", ".join(
                f"{k} {v:.0%}" for k, v in fer["per_class_recall"].items() if v is not None
            )
            print(f"fer mini-Xception: accuracy {fer['accuracy']:.2%}; recall {recall}")
        if name == "fer2013_private":
            plot_confusion(
                main_report,
                ROOT / "docs" / "emotion_confusion_fer2013_private.png",
                f"int8 model, {mode}, FER-2013 PrivateTest: {main_report.accuracy:.1%}",
            )
    latency = {"one_pass": latency_ms(classifier(False)), "tta": latency_ms(classifier(True))}
    if args.compare is not None:
        latency["earlier_one_pass"] = latency_ms(classifier(False, args.compare))
    size_kib = (ROOT / "models" / "emotion_int8.tflite").stat().st_size / 1024
    print("\n" + "\n".join(rows))
    print(
        "\nlatency per face, one interpreter thread, median: "
        + ", ".join(f"{k} {v:.3f} ms" for k, v in latency.items())
        + f"; model size {size_kib:.0f} KiB"
    )
    if args.json:
        figures["latency_ms"] = {k: round(v, 4) for k, v in latency.items()}
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
