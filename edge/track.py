"""Face tracks across frames: greedy IoU matching of detections to known faces.

A face id stays with a face while its boxes overlap from frame to frame, so
later stages (smoothing, embedding, recognition) work per person, not per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.classify import crop_face
from edge.detect import Detection


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(slots=True)
class FaceTrack:
    """One face over time, and what later stages learnt about it.

    The stage fields are typed here rather than kept in a free-form dict so
    that a reader can see which stage writes what: ``user`` and
    ``embeddings`` belong to the identity stage, ``emotion`` to the pipeline's
    classify step.
    """

    face_id: int
    detection: Detection
    first_seen: float
    last_seen: float
    hits: int = 1
    user: str | None = None  # the identity stage's current decision (None: unknown or undecided)
    embeddings: int = 0  # embeddings submitted for this face (every other one is mirrored)
    emotion: ClassifiedFace | None = None  # the last classification, reused while unchanged
    classified: int = 0  # classifier passes so far (odd ones may see the mirror image)


class Tracker:
    """Assigns track ids to detections; drops tracks unseen for ``timeout_s``."""

    def __init__(self, *, iou_threshold: float = 0.3, timeout_s: float = 2.0) -> None:
        self._iou_threshold = iou_threshold
        self._timeout_s = timeout_s
        self._next_id = 1
        self.tracks: dict[int, FaceTrack] = {}

    def update(
        self, detections: list[Detection], now: float
    ) -> tuple[list[FaceTrack], list[FaceTrack]]:
        """Match detections; return (tracks seen now, tracks that just expired)."""
        pairs = sorted(
            (
                (iou(track.detection.box, det.box), tid, i)
                for tid, track in self.tracks.items()
                for i, det in enumerate(detections)
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        seen: list[FaceTrack] = []
        for overlap, tid, i in pairs:
            if overlap < self._iou_threshold:
                break
            if tid in used_tracks or i in used_dets:
                continue
            track = self.tracks[tid]
            track.detection, track.last_seen = detections[i], now
            track.hits += 1
            used_tracks.add(tid)
            used_dets.add(i)
            seen.append(track)
        for i, det in enumerate(detections):
            if i not in used_dets:
                track = FaceTrack(self._next_id, det, first_seen=now, last_seen=now)
                self.tracks[track.face_id] = track
                self._next_id += 1
                seen.append(track)
        expired = [t for t in self.tracks.values() if now - t.last_seen > self._timeout_s]
        for track in expired:
            del self.tracks[track.face_id]
        return seen, expired


@dataclass(frozen=True, slots=True)
class ClassifiedFace:
    """A track's last emotion result, kept so an unchanged face is not classified again.

    "Unchanged" compares the same region (the box classified then) of the new
    frame with the face crop classified then: a still person in a still room
    differs only by sensor noise, while any movement or expression change moves
    the mean grey difference well above it. Comparing the new detection's crop
    instead would not work: detector jitter of a few pixels alone changes that
    crop by 5-25 grey levels.
    """

    box: tuple[float, float, float, float]
    face: np.ndarray
    probabilities: np.ndarray
    time: float
    roll_deg: float = 0.0  # the rotation the crop was made with (same again for the comparison)

    def unchanged(
        self, image: np.ndarray, now: float, max_diff: float, max_age_s: float, crop_scale: float
    ) -> bool:
        """Whether the result may be reused for ``image`` at ``now`` (max_diff 0: never)."""
        if max_diff <= 0 or now - self.time > max_age_s:
            return False
        again = crop_face(image, self.box, crop_scale, self.roll_deg)
        return mean_abs_diff(again, self.face) <= max_diff


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two equally shaped uint8 images, in grey levels."""
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size
