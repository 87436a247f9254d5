"""Emotion crops as in training: turned upright by the eye keypoints; the mirror image on
every other pass of a face, so the smoothing averages both views."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import CountingClassifier

from edge.camera import Frame
from edge.classify import MIN_ROLL_DEG, crop_face, eye_roll
from edge.config import MoodboxConfig, load_config
from edge.detect import BlazeFaceDetector, Detection
from edge.measure.benchmark import with_settings
from edge.pipeline import Pipeline
from edge.stats import Stats
from edge.track import mean_abs_diff


@pytest.fixture(scope="module")
def config(repo_root: Path) -> MoodboxConfig:
    return load_config(repo_root / "config.yaml", environ={"MOODBOX_IDENTIFY_ENABLED": "false"})


@pytest.fixture(scope="module")
def detector(config: MoodboxConfig) -> BlazeFaceDetector:
    return BlazeFaceDetector(config.resolve(config.detect.model), min_face_px=40)


@pytest.fixture(scope="module")
def portrait(repo_root: Path) -> np.ndarray:
    image = cv2.imread(str(repo_root / "tests" / "data" / "grace_hopper.jpg"))
    assert image is not None
    return image


def rotated(image: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def only_face(detector: BlazeFaceDetector, image: np.ndarray) -> Detection:
    faces = detector.detect(image)
    assert faces, "the detector found no face"
    return faces[0]


def test_eye_roll_is_zero_for_level_eyes_and_signed_by_the_lower_eye() -> None:
    level = np.array([[40.0, 50.0], [80.0, 50.0]])
    assert eye_roll(level) == pytest.approx(0.0)
    right_side_lower = np.array([[40.0, 50.0], [80.0, 90.0]])
    assert eye_roll(right_side_lower) == pytest.approx(45.0)
    assert eye_roll(right_side_lower[:, ::1] * [1, -1]) == pytest.approx(-45.0)


@pytest.mark.parametrize("tilt", [-20.0, 20.0])
def test_a_tilted_face_is_cropped_upright(
    detector: BlazeFaceDetector, portrait: np.ndarray, tilt: float
) -> None:
    upright = only_face(detector, portrait)
    x0, y0, x1, y1 = upright.box
    tilted_image = rotated(portrait, tilt, ((x0 + x1) / 2, (y0 + y1) / 2))
    tilted = only_face(detector, tilted_image)
    roll = eye_roll(tilted.keypoints)
    # cv2 turns counter-clockwise for a positive angle, so the eyes now lean by -tilt.
    assert roll == pytest.approx(-tilt, abs=6.0)
    reference = crop_face(portrait, upright.box, 1.2, eye_roll(upright.keypoints))
    straightened = crop_face(tilted_image, tilted.box, 1.2, roll)
    as_it_is = crop_face(tilted_image, tilted.box, 1.2)
    # The boxes differ (a turned face has a larger box), so the framing never matches exactly.
    assert mean_abs_diff(straightened, reference) < 0.8 * mean_abs_diff(as_it_is, reference)


def test_small_rolls_crop_without_resampling(portrait: np.ndarray) -> None:
    box = (100.0, 60.0, 220.0, 180.0)
    assert np.array_equal(
        crop_face(portrait, box, 1.2, MIN_ROLL_DEG / 2), crop_face(portrait, box, 1.2)
    )


def pipeline(config: MoodboxConfig, detector: BlazeFaceDetector) -> Pipeline:
    classifier = CountingClassifier(
        config.resolve(config.emotion.model),
        config.resolve(config.emotion.labels),
        config.resolve(config.emotion.metadata),
        flip_tta=False,
    )
    return Pipeline(config, detector=detector, classifier=classifier, stats=Stats())


@pytest.mark.parametrize("alternate", [True, False])
def test_every_other_pass_of_a_face_sees_its_mirror_image(
    config: MoodboxConfig, detector: BlazeFaceDetector, portrait: np.ndarray, alternate: bool
) -> None:
    settings = {"mirror_alternate": alternate, "reuse_max_diff": 0.0, "upright": False}
    run = pipeline(with_settings(config, emotion=settings), detector)
    for i in range(4):
        run.process(Frame(portrait, i / 30, i))
    classifier = run.classifier
    assert isinstance(classifier, CountingClassifier)
    first, second, third, _ = classifier.inputs
    assert np.array_equal(first, third)  # a still portrait: the same crop each time
    if alternate:
        assert np.array_equal(second, first[:, ::-1])
    else:
        assert np.array_equal(second, first)
