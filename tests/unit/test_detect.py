"""The BlazeFace detector on real photos, on a face-free image, and on bad model files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detect import BlazeFaceDetector, ssd_anchors
from edge.errors import ModelError


@pytest.fixture(scope="module")
def detector(repo_root: Path) -> BlazeFaceDetector:
    return BlazeFaceDetector(repo_root / "models" / "face_detection_short_range.tflite")


def test_anchor_layout_matches_the_model() -> None:
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    assert anchors.min() > 0 and anchors.max() < 1


@pytest.mark.parametrize("name", ["astronaut.png", "grace_hopper.jpg"])
def test_finds_the_face_in_real_portraits(detector: BlazeFaceDetector, name: str) -> None:
    image = cv2.imread(str(Path(__file__).resolve().parents[1] / "data" / name))
    faces = detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    x0, y0, x1, y1 = face.box
    height, width = image.shape[:2]
    # A portrait: the face is a sizeable box in the upper part of the frame.
    assert 0.15 * width < x1 - x0 < 0.6 * width
    assert y0 < 0.5 * height
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    assert right_eye[0] < left_eye[0]  # the person's right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert x0 <= nose[0] <= x1 and y0 <= nose[1] <= y1


def test_finds_nothing_in_a_face_free_photo(detector: BlazeFaceDetector) -> None:
    image = cv2.imread(str(Path(__file__).resolve().parents[1] / "data" / "coffee.png"))
    assert detector.detect(image) == []


def test_boxes_follow_the_face_in_a_640x480_frame(
    detector: BlazeFaceDetector, repo_root: Path
) -> None:
    frame = cv2.imread(str(repo_root / "demo" / "faces" / "frame_000.jpg"))
    shifted = cv2.imread(str(repo_root / "demo" / "faces" / "frame_009.jpg"))
    (a,) = detector.detect(frame)
    (b,) = detector.detect(shifted)
    # frame_009 is the same portrait moved 36 px right and 18 px down.
    assert b.box[0] - a.box[0] == pytest.approx(36, abs=6)
    assert b.box[1] - a.box[1] == pytest.approx(18, abs=6)


def test_min_face_size_filters_small_faces(repo_root: Path) -> None:
    detector = BlazeFaceDetector(
        repo_root / "models" / "face_detection_short_range.tflite", min_face_px=400
    )
    image = cv2.imread(str(repo_root / "demo" / "faces" / "frame_000.jpg"))
    assert detector.detect(image) == []


def test_grey_noise_gives_no_faces(detector: BlazeFaceDetector) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert detector.detect(image) == []


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        BlazeFaceDetector(tmp_path / "nope.tflite")


def test_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelError, match="cannot load model"):
        BlazeFaceDetector(bad)


def test_wrong_model_is_rejected(repo_root: Path) -> None:
    with pytest.raises(ModelError, match="BlazeFace"):
        BlazeFaceDetector(repo_root / "models" / "emotion_int8.tflite")
