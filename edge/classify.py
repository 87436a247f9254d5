"""Which emotion: our full-int8 CNN on a 48x48 grey face, probabilities out.

The model contract lives beside the model, so a new model file brings its own: labels in
``emotion_labels.txt``, the softmax temperature in ``emotion_model.json``, the
quantization scale and zero point in the model's own tensor details.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.errors import ModelError
from edge.tflite import dequantize, load_interpreter, quantize

logger = logging.getLogger(__name__)

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_SIZE = 48


class EmotionClassifier(Protocol):
    """Emotion probabilities for a face."""

    labels: tuple[str, ...]

    def classify(self, face: np.ndarray) -> np.ndarray:
        """Probabilities (7,) summing to 1 for a grey 48x48 uint8 face."""


# Below this roll a face is cropped as it is: resampling would only blur it.
MIN_ROLL_DEG = 3.0


def eye_roll(keypoints: np.ndarray) -> float:
    """How far a face leans, in degrees, from its two eye keypoints (BlazeFace order).

    Positive when the eye on the image's right is lower, so that rotating the
    crop by this angle (counter-clockwise, as OpenCV counts) levels the eyes.
    """
    (rx, ry), (lx, ly) = keypoints[0], keypoints[1]  # the person's right eye is image-left
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_face(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    scale: float = 1.2,
    roll_deg: float = 0.0,
) -> np.ndarray:
    """A grey 48x48 face: a square of ``scale`` x the box side around its centre,
    turned by ``roll_deg`` so the face is upright (the model learnt from upright
    FER-2013 faces), padded with edge pixels where it leaves the frame."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    size = max(1, round(side))
    if abs(roll_deg) >= MIN_ROLL_DEG:
        # One warp straight from the frame into the square: only its pixels are computed.
        matrix = np.asarray(cv2.getRotationMatrix2D((cx, cy), roll_deg, 1.0), dtype=np.float64)
        matrix[:, 2] += np.array([size / 2 - cx, size / 2 - cy])
        upright = cv2.warpAffine(
            image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return to_face_input(upright)
    left, top = round(cx - side / 2), round(cy - side / 2)
    height, width = image.shape[:2]
    # Crop only the region we need before converting colour: cheaper than the frame.
    sx0, sy0 = max(left, 0), max(top, 0)
    sx1, sy1 = min(left + size, width), min(top + size, height)
    if sx1 <= sx0 or sy1 <= sy0:
        return np.zeros((FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    region = image[sy0:sy1, sx0:sx1]
    if region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    if (sx0, sy0, sx1, sy1) != (left, top, left + size, top + size):
        region = cv2.copyMakeBorder(
            region, sy0 - top, top + size - sy1, sx0 - left, left + size - sx1, cv2.BORDER_REPLICATE
        )
    return to_face_input(region)


def to_face_input(image: np.ndarray) -> np.ndarray:
    """Any face image (already cropped) to the model's grey 48x48 uint8 input."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.shape != (FACE_SIZE, FACE_SIZE):
        interpolation = cv2.INTER_AREA if image.shape[0] > FACE_SIZE else cv2.INTER_LINEAR
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)
    return image


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    except OSError as err:
        raise ModelError(f"labels file {path}: {err.strerror}") from err
    if labels != EMOTIONS:
        raise ModelError(f"labels file {path} must list {', '.join(EMOTIONS)} in this order")
    return labels


def read_temperature(path: Path) -> float:
    """The calibration temperature written by training (1.0 when absent)."""
    if not path.is_file():
        logger.warning("%s missing: using temperature 1.0 (probabilities uncalibrated)", path)
        return 1.0
    try:
        temperature = float(json.loads(path.read_text())["temperature"])
    except (ValueError, KeyError, TypeError) as err:
        raise ModelError(f"{path}: no valid 'temperature' ({err})") from err
    if not 0.05 <= temperature <= 20:
        raise ModelError(f"{path}: temperature {temperature} out of range")
    return temperature


class TFLiteEmotionClassifier:
    """The shipped int8 CNN; optional mirror-image test-time augmentation."""

    def __init__(
        self,
        model_path: Path,
        labels_path: Path,
        metadata_path: Path,
        *,
        flip_tta: bool = True,
        threads: int = 1,
    ) -> None:
        self.labels = read_labels(labels_path)
        self.temperature = read_temperature(metadata_path)
        self._interpreter = load_interpreter(model_path, threads=threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        shapes = ([tuple(d["shape"]) for d in inputs], [tuple(d["shape"]) for d in outputs])
        if shapes != ([(1, FACE_SIZE, FACE_SIZE, 1)], [(1, len(self.labels))]):
            raise ModelError(
                f"{model_path}: expected input (1,48,48,1) and output (1,7), "
                f"got inputs {shapes[0]} and outputs {shapes[1]}"
            )
        self._in, self._out = inputs[0], outputs[0]
        self._flip_tta = flip_tta

    def logits(self, face: np.ndarray) -> np.ndarray:
        """Dequantized logits (7,) for one grey 48x48 face."""
        self._interpreter.set_tensor(self._in["index"], quantize(face, self._in)[None, :, :, None])
        self._interpreter.invoke()
        return dequantize(self._interpreter.get_tensor(self._out["index"])[0], self._out)  # type: ignore[no-any-return]

    def classify(self, face: np.ndarray) -> np.ndarray:
        logits = self.logits(face)
        if self._flip_tta:
            logits = (logits + self.logits(face[:, ::-1])) / 2
        z = logits / self.temperature
        z = np.exp(z - z.max())
        return (z / z.sum()).astype(np.float32)  # type: ignore[no-any-return]
