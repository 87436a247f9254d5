"""Faces in a frame: BlazeFace short range (MediaPipe's 128x128 TFLite detector).

Decoding follows MediaPipe's ``face_detection_short_range_common.pbtxt`` (SSD
anchors with strides 8/16/16/16, 896 anchors, box and six keypoints relative
to the anchor centre, sigmoid scores) and its weighted non-maximum
suppression. The image is letterboxed to a square so faces keep their shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.errors import ModelError
from edge.tflite import load_interpreter

logger = logging.getLogger(__name__)

# Keypoint order of BlazeFace (as seen in the image: "right eye" is the person's).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True, slots=True)
class Detection:
    """A face: box (x0, y0, x1, y1) and keypoints (6, 2) in pixels of the frame."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class FaceDetector(Protocol):
    """Finds faces in a BGR or grey image."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (BGR (H, W, 3) or grey (H, W) uint8), best first."""


def ssd_anchors(input_size: int = 128, strides: tuple[int, ...] = (8, 16, 16, 16)) -> np.ndarray:
    """Anchor centres (N, 2), normalised; two anchors per cell per layer of a stride."""
    anchors: list[tuple[float, float]] = []
    layer = 0
    while layer < len(strides):
        repeats = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            repeats += 2  # aspect ratio 1.0 plus the interpolated scale
            last += 1
        cells = input_size // strides[layer]
        for y in range(cells):
            for x in range(cells):
                anchors.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * repeats)
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: overlapping boxes are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    kept: list[tuple[np.ndarray, np.ndarray, float]] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        x0 = np.maximum(boxes[i, 0], boxes[:, 0])
        y0 = np.maximum(boxes[i, 1], boxes[:, 1])
        x1 = np.minimum(boxes[i, 2], boxes[:, 2])
        y1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        group = remaining & (iou > iou_threshold)
        group[i] = True
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        points = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((box, points, float(scores[i])))
        remaining &= ~group
    return kept


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to (width, height) for the detector.

    Area averaging straight from 640x480 to 128x96 costs ~0.7 ms on one x86 core
    (~7 ms on a Pi 4); a bilinear step to twice the target size followed by an
    exact 2x area step costs a quarter of that and still averages every input
    pixel's neighbourhood, so small faces do not alias away.
    """
    src_h, src_w = image.shape[:2]
    if src_w >= 4 * width and src_h >= 4 * height:
        image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class BlazeFaceDetector:
    """BlazeFace short range in a TFLite interpreter."""

    def __init__(
        self,
        model_path: Path,
        *,
        min_score: float = 0.6,
        nms_iou: float = 0.3,
        min_face_px: int = 0,
        threads: int = 1,
    ) -> None:
        self._interpreter = load_interpreter(model_path, threads=threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or tuple(inputs[0]["shape"][1:]) != (128, 128, 3):
            raise ModelError(
                f"{model_path}: expected one (1,128,128,3) input, a BlazeFace "
                f"short-range model; got {[tuple(d['shape']) for d in inputs]}"
            )
        by_width = {int(d["shape"][-1]): d["index"] for d in outputs}
        if set(by_width) != {16, 1}:
            raise ModelError(f"{model_path}: expected outputs (1,896,16) and (1,896,1)")
        self._input_index = inputs[0]["index"]
        self._boxes_index = by_width[16]
        self._scores_index = by_width[1]
        self._anchors = ssd_anchors()
        self._min_score = min_score
        self._min_logit = float(np.log(min_score / (1 - min_score)))
        self._nms_iou = nms_iou
        self._min_face_px = min_face_px
        # Reused every frame: the float input, its letterbox bars already at -1 (black).
        self._input = np.full((1, 128, 128, 3), -1.0, dtype=np.float32)
        self._placement: tuple[int, int, int, int] = (0, 0, 0, 0)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR (H, W, 3) or grey (H, W) uint8 image, e.g. picamera's Y plane."""
        height, width = image.shape[:2]
        side = max(height, width)
        scale = 128 / side
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (128 - new_w) // 2, (128 - new_h) // 2
        if self._placement != (pad_x, pad_y, new_w, new_h):
            self._input.fill(-1.0)
            self._placement = (pad_x, pad_y, new_w, new_h)
        small = shrink(image, new_w, new_h)
        # BGR -> RGB (grey -> 3 channels) and 0..255 -> -1..1, only where the image lies.
        rgb = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB if small.ndim == 2 else cv2.COLOR_BGR2RGB)
        view = self._input[0, pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        view[...] = rgb
        view *= 1 / 127.5
        view -= 1.0
        self._interpreter.set_tensor(self._input_index, self._input)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        candidates = np.nonzero(logits > self._min_logit)[0]
        if candidates.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._boxes_index)[0, candidates] / 128.0
        anchors = self._anchors[candidates]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        scores = 1 / (1 + np.exp(-np.clip(logits[candidates], -80, 80)))
        detections: list[Detection] = []
        offset = np.array([pad_x, pad_y], dtype=np.float32)
        for box, keypoints, score in weighted_nms(boxes, points, scores, self._nms_iou):
            # Normalised letterbox coordinates -> frame pixels.
            corners = (box.reshape(2, 2) * 128 - offset) / scale
            pixels = (keypoints * 128 - offset) / scale
            x0, y0 = np.clip(corners[0], 0, [width, height])
            x1, y1 = np.clip(corners[1], 0, [width, height])
            if x1 - x0 < max(self._min_face_px, 1) or y1 - y0 < 1:
                continue
            detections.append(
                Detection(
                    (float(x0), float(y0), float(x1), float(y1)), score, pixels.astype(np.float32)
                )
            )
        return detections
