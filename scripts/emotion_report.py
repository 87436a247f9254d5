#!/usr/bin/env python3
"""The emotion model's figures on every test set, beside the `fer` baseline, in one run.

    python scripts/prepare_eval_sets.py          # once: writes .cache/eval/<set>/<class>/*
    scripts/setup-fer-baseline                   # once: fer in its own venv (optional)
    python scripts/emotion_report.py [--fer-python /work/cache/venv-fer/bin/python]

For each set it runs the shipped int8 model exactly as `moodbox eval-emotion`
does (production preprocessing, mirror TTA as configured, and once without
TTA), and fer's mini-Xception through scripts/fer_baseline.py --eval on the
same images. It prints a Markdown table for models/README.md, writes the
confusion-matrix PNG of FER-2013 PrivateTest under docs/, and measures the
model's latency per face on one interpreter thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.classify import TFLiteEmotionClassifier  # noqa: E402
from edge.evaluate import evaluate_emotion, plot_confusion  # noqa: E402

SETS = {
    "fer2013_private": "FER-2013 PrivateTest (test)",
    "fer2013_private_dedup": "FER-2013 PrivateTest, not in Training",
    "ferplus_test": "FER+ test, majority label (7 classes)",
    "fer2013_public": "FER-2013 PublicTest (validation)",
}


def classifier(tta: bool) -> TFLiteEmotionClassifier:
    models = ROOT / "models"
    return TFLiteEmotionClassifier(
        models / "emotion_int8.tflite",
        models / "emotion_labels.txt",
        models / "emotion_model.json",
        flip_tta=tta,
        threads=1,
    )


def latency_ms(model: TFLiteEmotionClassifier, runs: int = 2000) -> float:
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    for _ in range(50):
        model.classify(face)
    start = time.perf_counter()
    for _ in range(runs):
        model.classify(face)
    return (time.perf_counter() - start) / runs * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=ROOT / ".cache" / "eval")
    parser.add_argument("--fer-python", type=Path, default=Path("/work/cache/venv-fer/bin/python"))
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args()

    ours_tta, ours_plain = classifier(True), classifier(False)
    figures: dict[str, dict[str, object]] = {}
    rows = [
        "| set | n | ours int8 + mirror TTA | ours int8, one pass | macro recall (TTA) | ECE (TTA) | fer mini-Xception |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, title in SETS.items():
        folder = args.eval_dir / name
        if not folder.is_dir():
            print(f"skip {name}: {folder} missing (run scripts/prepare_eval_sets.py)")
            continue
        tta = evaluate_emotion(ours_tta, folder)
        plain = evaluate_emotion(ours_plain, folder)
        fer = None
        if args.fer_python.exists():
            out = subprocess.run(
                [
                    str(args.fer_python),
                    str(ROOT / "scripts" / "fer_baseline.py"),
                    "--eval",
                    str(folder),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0:
                fer = json.loads(out.stdout.strip().splitlines()[-1])
            else:
                print(f"fer baseline failed on {name}: {out.stderr[-500:]}")
        figures[name] = {"ours_tta": tta.to_dict(), "ours_one_pass": plain.to_dict(), "fer": fer}
        fer_cell = f"{fer['accuracy']:.2%}" if fer else "n/a"
        rows.append(
            f"| {title} | {tta.n} | **{tta.accuracy:.2%}** | {plain.accuracy:.2%} | "
            f"{tta.macro_recall:.2%} | {tta.ece:.3f} | {fer_cell} |"
        )
        print(f"\n## {title}\n{tta.table()}")
        if fer:
            recall = ", ".join(
                f"{k} {v:.0%}" for k, v in fer["per_class_recall"].items() if v is not None
            )
            print(f"fer mini-Xception: accuracy {fer['accuracy']:.2%}; recall {recall}")
        if name == "fer2013_private":
            plot_confusion(
                tta,
                ROOT / "docs" / "emotion_confusion_fer2013_private.png",
                f"int8 model + mirror TTA, FER-2013 PrivateTest: {tta.accuracy:.1%}",
            )
    ms_one, ms_tta = latency_ms(ours_plain), latency_ms(ours_tta)
    size_kib = (ROOT / "models" / "emotion_int8.tflite").stat().st_size / 1024
    print("\n" + "\n".join(rows))
    print(
        f"\nlatency per face, one interpreter thread: {ms_one:.3f} ms one pass, "
        f"{ms_tta:.3f} ms with mirror TTA; model size {size_kib:.0f} KiB"
    )
    if args.json:
        figures["latency_ms"] = {"one_pass": round(ms_one, 4), "tta": round(ms_tta, 4)}
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
