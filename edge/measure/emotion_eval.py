"""`moodbox eval-emotion`: accuracy, per-class recall and confusion on a folder-per-class tree.

Each image is taken as an already-cropped face and goes through the production
preprocessing (grey, 48x48) and the shipped classifier, TTA included.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.classify import EMOTIONS, EmotionClassifier, to_face_input

logger = logging.getLogger(__name__)

SYNONYMS = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".webp", ".tif"})


@dataclass
class EmotionReport:
    labels: tuple[str, ...]
    confusion: np.ndarray  # rows: true class, columns: predicted
    skipped_folders: list[str]
    unreadable: int
    nll: float
    ece: float

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def per_class_recall(self) -> dict[str, float]:
        totals = self.confusion.sum(1)
        return {
            label: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
            for i, label in enumerate(self.labels)
        }

    @property
    def macro_recall(self) -> float:
        values = [v for v in self.per_class_recall.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_recall": round(self.macro_recall, 4),
            "per_class_recall": {
                k: (None if np.isnan(v) else round(v, 4)) for k, v in self.per_class_recall.items()
            },
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
            "nll": round(self.nll, 4),
            "ece": round(self.ece, 4),
            "skipped_folders": self.skipped_folders,
            "unreadable_images": self.unreadable,
        }

    def table(self) -> str:
        lines = [
            f"images: {self.n}   accuracy: {self.accuracy:.2%}   macro recall: "
            f"{self.macro_recall:.2%}   ECE: {self.ece:.3f}   NLL: {self.nll:.3f}",
            "",
            f"{'class':<10}{'n':>6}{'recall':>9}   confusion (predicted →)",
            f"{'':<25}   " + " ".join(f"{lab[:5]:>5}" for lab in self.labels),
        ]
        for i, label in enumerate(self.labels):
            recall = self.per_class_recall[label]
            row = " ".join(f"{int(c):>5}" for c in self.confusion[i])
            lines.append(f"{label:<10}{int(self.confusion[i].sum()):>6}{recall:>9.2%}   {row}")
        if self.skipped_folders:
            lines.append(f"\nskipped folders (no known emotion): {', '.join(self.skipped_folders)}")
        if self.unreadable:
            lines.append(f"unreadable images skipped: {self.unreadable}")
        return "\n".join(lines)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins."""
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def collect(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image, class index) pairs under ``root``/<class>/, and the folders skipped."""
    items: list[tuple[Path, int]] = []
    skipped: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = SYNONYMS.get(folder.name.lower())
        if label is None:
            skipped.append(folder.name)
            logger.warning("eval-emotion: skipping folder %s (not an emotion)", folder.name)
            continue
        index = EMOTIONS.index(label)
        items.extend(
            (path, index)
            for path in sorted(folder.rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        )
    return items, skipped


def evaluate_emotion(classifier: EmotionClassifier, root: Path) -> EmotionReport:
    items, skipped = collect(root)
    labels = classifier.labels
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    probs: list[np.ndarray] = []
    truth: list[int] = []
    unreadable = 0
    for path, index in items:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            unreadable += 1
            logger.warning("eval-emotion: unreadable image %s", path)
            continue
        p = classifier.classify(to_face_input(image))
        confusion[index, int(np.argmax(p))] += 1
        probs.append(p)
        truth.append(index)
    all_probs = np.asarray(probs).reshape(-1, len(labels))
    all_truth = np.asarray(truth, dtype=np.int64)
    nll = (
        float(-np.log(np.clip(all_probs[np.arange(len(all_truth)), all_truth], 1e-12, 1)).mean())
        if len(all_truth)
        else 0.0
    )
    return EmotionReport(
        labels,
        confusion,
        skipped,
        unreadable,
        nll,
        expected_calibration_error(all_probs, all_truth),
    )


def plot_confusion(report: EmotionReport, path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib, a dev extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = report.confusion / np.maximum(report.confusion.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(report.labels)), report.labels, rotation=45, ha="right")
    ax.set_yticks(range(len(report.labels)), report.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(report.labels)):
        for j in range(len(report.labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_title(title or f"accuracy {report.accuracy:.1%} (n={report.n})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dump_json(report: EmotionReport) -> str:
    return json.dumps(report.to_dict())
