"""Model backends chosen by each stage's ``backend:`` key: one construction path.

The daemon, camera enrolment, the evaluation commands and the benchmark all
build their detector, emotion classifier and face embedder here, so a new
backend is one entry in one table and an unknown key fails the same way
everywhere (a ConfigError naming the choices), as ``camera.type`` does for
frame sources.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.classify import EmotionClassifier
    from edge.config import MoodboxConfig
    from edge.detect import FaceDetector
    from edge.identify.embed import FaceEmbedder


def _blazeface(config: MoodboxConfig, threads: int) -> FaceDetector:
    from edge.detect import BlazeFaceDetector

    detect = config.detect
    return BlazeFaceDetector(
        config.resolve(detect.model),
        min_score=detect.min_score,
        nms_iou=detect.nms_iou,
        min_face_px=detect.min_face_px,
        threads=threads,
    )


def _tflite_emotion(config: MoodboxConfig, threads: int) -> EmotionClassifier:
    from edge.classify import TFLiteEmotionClassifier

    emotion = config.emotion
    return TFLiteEmotionClassifier(
        config.resolve(emotion.model),
        config.resolve(emotion.labels),
        config.resolve(emotion.metadata),
        flip_tta=emotion.flip_tta,
        threads=threads,
    )


def _sface(config: MoodboxConfig, threads: int) -> FaceEmbedder:
    from edge.identify.embed import TFLiteFaceEmbedder

    return TFLiteFaceEmbedder(config.resolve(config.identify.model), threads=threads)


DETECTORS: dict[str, Callable[[MoodboxConfig, int], FaceDetector]] = {"blazeface": _blazeface}
CLASSIFIERS: dict[str, Callable[[MoodboxConfig, int], EmotionClassifier]] = {
    "tflite": _tflite_emotion
}
EMBEDDERS: dict[str, Callable[[MoodboxConfig, int], FaceEmbedder]] = {"sface": _sface}


T = TypeVar("T")


def _pick(table: dict[str, T], section: str, key: str) -> T:
    try:
        return table[key]
    except KeyError as err:
        raise ConfigError(
            f"{section}.backend: unknown backend {key!r} (choose from {', '.join(table)})"
        ) from err


def make_detector(config: MoodboxConfig, *, threads: int | None = None) -> FaceDetector:
    """The face detector ``detect.backend`` names (ModelError if its model is unusable)."""
    factory = _pick(DETECTORS, "detect", config.detect.backend)
    return factory(config, threads or config.detect.threads)


def make_classifier(config: MoodboxConfig, *, threads: int | None = None) -> EmotionClassifier:
    """The emotion classifier ``emotion.backend`` names."""
    factory = _pick(CLASSIFIERS, "emotion", config.emotion.backend)
    return factory(config, threads or config.emotion.threads)


def make_embedder(config: MoodboxConfig, *, threads: int | None = None) -> FaceEmbedder:
    """The face embedder ``identify.backend`` names."""
    factory = _pick(EMBEDDERS, "identify", config.identify.backend)
    return factory(config, threads or config.identify.threads)
