"""Enrolment: pick a few good, diverse face samples of one person, from the camera or files.

Good means big enough, sharp enough and facing the camera (checks on the
keypoints and the aligned crop); diverse means the chosen embeddings are far
apart from each other (farthest-point selection), so one enrolment covers a
little pose and expression variety instead of five copies of one frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.detect import Detection, FaceDetector
from edge.identify.align import align_face
from edge.identify.embed import FaceEmbedder, embed_still, normalise

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """What a face must satisfy to become an enrolment sample."""

    min_face_px: float = 60.0  # detector box width
    min_sharpness: float = 15.0  # variance of the Laplacian of the aligned grey crop
    max_yaw: float = 0.35  # nose offset from the eyes' midpoint / eye distance
    max_roll_deg: float = 25.0


@dataclass(frozen=True, slots=True)
class Quality:
    face_px: float
    sharpness: float
    yaw: float
    roll_deg: float

    def problem(self, limits: QualityLimits) -> str | None:
        """Why this face is not a good sample, or None."""
        if self.face_px < limits.min_face_px:
            return f"face too small ({self.face_px:.0f} px < {limits.min_face_px:.0f})"
        if self.sharpness < limits.min_sharpness:
            return f"too blurred (sharpness {self.sharpness:.0f} < {limits.min_sharpness:.0f})"
        if abs(self.yaw) > limits.max_yaw:
            return "face turned away (look at the camera)"
        if abs(self.roll_deg) > limits.max_roll_deg:
            return "head tilted"
        return None


def measure_quality(detection: Detection, aligned: np.ndarray) -> Quality:
    """Size, sharpness and pose of one detected face."""
    points = np.asarray(detection.keypoints, dtype=np.float64)
    right_eye, left_eye, nose = points[0], points[1], points[2]
    eye_vector = left_eye - right_eye
    eye_distance = float(np.hypot(*eye_vector)) or 1.0
    midpoint = (left_eye + right_eye) / 2
    # Project the nose offset on the eye axis: zero for a frontal face.
    yaw = float(np.dot(nose - midpoint, eye_vector) / eye_distance**2)
    roll = float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0])))
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return Quality(detection.width, sharpness, yaw, roll)


def select_diverse(vectors: np.ndarray, k: int) -> list[int]:
    """Indices of ``k`` vectors: the most typical first, then each farthest from those chosen."""
    vectors = normalise(vectors)
    if len(vectors) <= k:
        return list(range(len(vectors)))
    centre = normalise(vectors.mean(0))
    chosen = [int(np.argmax(vectors @ centre))]
    while len(chosen) < k:
        nearest = (vectors @ vectors[chosen].T).max(axis=1)
        nearest[chosen] = np.inf
        chosen.append(int(np.argmin(nearest)))
    return chosen


def consistent(vectors: np.ndarray, min_similarity: float) -> np.ndarray:
    """Mask of samples that look like the majority (drops a passer-by caught in a frame)."""
    vectors = normalise(vectors)
    centre = normalise(np.median(vectors, axis=0))
    return np.asarray(vectors @ centre >= min_similarity)


@dataclass
class Sample:
    vector: np.ndarray
    aligned: np.ndarray
    quality: Quality
    time: float


@dataclass
class EnrolmentSession:
    """Collects samples of the single visible face over a few seconds (pure: ``now`` in).

    ``offer`` each frame's faces; once ``collect_s`` has passed with at least
    ``samples`` good frames (or ``max_candidates`` are in) ``result`` picks the
    diverse set; after ``timeout_s`` without enough, it fails with the reason
    seen most often.
    """

    name: str
    started: float
    samples: int = 5
    collect_s: float = 3.0
    timeout_s: float = 10.0
    max_candidates: int = 20
    limits: QualityLimits = field(default_factory=QualityLimits)
    candidates: list[Sample] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)

    def wants(self, faces: int) -> bool:
        """Whether a frame with ``faces`` faces is worth embedding; notes why not."""
        if faces != 1:
            self._note("no face in view" if faces == 0 else "more than one face in view")
            return False
        return len(self.candidates) < self.max_candidates

    def offer(self, sample: Sample) -> None:
        problem = sample.quality.problem(self.limits)
        if problem:
            self._note(problem)
        else:
            self.candidates.append(sample)

    def _note(self, problem: str) -> None:
        self.problems[problem] = self.problems.get(problem, 0) + 1

    def finished(self, now: float) -> bool:
        enough = len(self.candidates) >= self.samples
        elapsed = now - self.started
        return (
            len(self.candidates) >= self.max_candidates
            or (enough and elapsed >= self.collect_s)
            or elapsed >= self.timeout_s
        )

    def result(self, min_similarity: float = 0.3) -> tuple[list[Sample], str | None]:
        """The chosen samples, or ([], why enrolment failed)."""
        if not self.candidates:
            return [], self._failure()
        vectors = np.stack([s.vector for s in self.candidates])
        keep = [
            s
            for s, ok in zip(self.candidates, consistent(vectors, min_similarity), strict=True)
            if ok
        ]
        if len(keep) < min(self.samples, 3):
            return [], self._failure()
        chosen = select_diverse(np.stack([s.vector for s in keep]), self.samples)
        return [keep[i] for i in chosen], None

    def _failure(self) -> str:
        if not self.problems:
            return "no usable face within the time limit"
        reason = max(self.problems, key=lambda p: self.problems[p])
        return f"not enough good face samples ({len(self.candidates)}); mostly: {reason}"


def embed_images(
    paths: Iterable[Path],
    *,
    detector: FaceDetector,
    embedder: FaceEmbedder,
    limits: QualityLimits | None = None,
) -> tuple[list[Sample], list[str]]:
    """Samples from image files (largest face of each); and a problem line per skipped file."""
    limits = limits or QualityLimits()
    samples: list[Sample] = []
    problems: list[str] = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            problems.append(f"{path}: not an image")
            continue
        detections = detector.detect(image)
        if not detections:
            problems.append(f"{path}: no face found")
            continue
        detection = max(detections, key=lambda d: d.width)
        aligned = align_face(image, detection.keypoints)
        quality = measure_quality(detection, aligned)
        problem = quality.problem(limits)
        if problem:
            problems.append(f"{path}: {problem}")
            continue
        samples.append(Sample(embed_still(embedder, aligned), aligned, quality, 0.0))
    return samples, problems


def choose(samples: Sequence[Sample], k: int) -> list[Sample]:
    """At most ``k`` diverse samples."""
    if not samples:
        return []
    return [samples[i] for i in select_diverse(np.stack([s.vector for s in samples]), k)]
