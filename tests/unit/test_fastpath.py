"""The fast frame path keeps behaviour: a still face's emotion result is reused, a moved or
changed one is classified again; the detector's cheap resize and grey input find the same faces."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import CountingClassifier, FakePicamera2

from edge.camera import Frame
from edge.config import MoodboxConfig, load_config
from edge.detect import BlazeFaceDetector, shrink
from edge.measure.benchmark import with_settings
from edge.pipeline import Pipeline
from edge.stats import Stats
from edge.track import mean_abs_diff


@pytest.fixture(scope="module")
def config(repo_root: Path) -> MoodboxConfig:
    return load_config(repo_root / "config.yaml", environ={})


@pytest.fixture(scope="module")
def detector(config: MoodboxConfig) -> BlazeFaceDetector:
    return BlazeFaceDetector(config.resolve(config.detect.model), min_face_px=40)


def pipeline_for(config: MoodboxConfig, detector: BlazeFaceDetector) -> Pipeline:
    classifier = CountingClassifier(
        config.resolve(config.emotion.model),
        config.resolve(config.emotion.labels),
        config.resolve(config.emotion.metadata),
    )
    return Pipeline(config, detector=detector, classifier=classifier, stats=Stats())


def demo(repo_root: Path, index: int) -> np.ndarray:
    image = cv2.imread(str(repo_root / "demo" / "faces" / f"frame_{index:03d}.jpg"))
    assert image is not None
    return image


def still_frames(image: np.ndarray, n: int) -> list[np.ndarray]:
    """A person sitting still: fresh sensor noise (sigma 2) on every frame."""
    rng = np.random.default_rng(1)
    return [
        np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8) for _ in range(n)
    ]


def run(
    pipeline: Pipeline, images: list[np.ndarray], fps: float = 30.0, start: int = 0
) -> list[np.ndarray]:
    """Process frames stamped like an ``fps`` camera; the probabilities of track 1 per frame."""
    seen: list[np.ndarray] = []
    for i, image in enumerate(images, start):
        pipeline.process(Frame(image, i / fps, i))
        track = pipeline.tracker.tracks[min(pipeline.tracker.tracks)]
        seen.append(track.emotion.probabilities)
    return seen


def classifications(pipeline: Pipeline) -> int:
    classifier = pipeline.classifier
    assert isinstance(classifier, CountingClassifier)
    return classifier.calls


def test_a_still_face_is_classified_once_per_reuse_period(
    config: MoodboxConfig, detector: BlazeFaceDetector, repo_root: Path
) -> None:
    assert config.emotion.reuse_max_diff > 0 and config.emotion.reuse_max_s == 0.5
    pipeline = pipeline_for(config, detector)
    probabilities = run(pipeline, still_frames(demo(repo_root, 0), 10))  # 0.3 s at 30 fps
    assert classifications(pipeline) == 1
    assert pipeline.stats.counters["classify_reused"] == 9
    assert all(np.array_equal(p, probabilities[0]) for p in probabilities)
    # Past reuse_max_s the face is classified again even though it has not changed.
    run(pipeline, still_frames(demo(repo_root, 0), 10), start=10)
    assert classifications(pipeline) == 2


def test_reuse_off_classifies_every_frame(
    config: MoodboxConfig, detector: BlazeFaceDetector, repo_root: Path
) -> None:
    pipeline = pipeline_for(with_settings(config, emotion={"reuse_max_diff": 0.0}), detector)
    run(pipeline, still_frames(demo(repo_root, 0), 6))
    assert classifications(pipeline) == 6


def test_a_moving_face_is_classified_every_frame(
    config: MoodboxConfig, detector: BlazeFaceDetector, repo_root: Path
) -> None:
    pipeline = pipeline_for(config, detector)
    run(pipeline, [demo(repo_root, i) for i in range(8)])  # drifts 4 px right, 2 down per frame
    assert classifications(pipeline) == 8


def test_a_changed_expression_region_is_classified_again(
    config: MoodboxConfig, detector: BlazeFaceDetector, repo_root: Path
) -> None:
    image = demo(repo_root, 0)
    pipeline = pipeline_for(config, detector)
    run(pipeline, [image, image])
    assert classifications(pipeline) == 1
    # Brighten the lower half of the face box (a mouth opening, a hand): same box, new pixels.
    x0, y0, x1, y1 = (round(v) for v in detector.detect(image)[0].box)
    changed = image.copy()
    mid = (y0 + y1) // 2
    changed[mid:y1, x0:x1] = np.clip(changed[mid:y1, x0:x1].astype(np.int16) + 40, 0, 255)
    pipeline.process(Frame(changed, 2 / 30, 2))
    assert classifications(pipeline) == 2


def test_grey_input_is_accepted(detector: BlazeFaceDetector, repo_root: Path) -> None:
    # Grey costs BlazeFace confidence (the astronaut drops from 0.79 to 0.46), which is
    # why the Pi camera's lores stream is converted to colour; grey still works.
    image = demo(repo_root, 15)
    (colour,) = detector.detect(image)
    (grey,) = detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert np.allclose(colour.box, grey.box, atol=6)
    assert detector.detect(cv2.cvtColor(demo(repo_root, 10), cv2.COLOR_BGR2GRAY)) == []


def test_lores_sized_input_gives_boxes_in_its_own_pixels(
    detector: BlazeFaceDetector, repo_root: Path
) -> None:
    image = demo(repo_root, 0)
    (full,) = detector.detect(image)
    lores = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    (half,) = detector.detect(lores)
    assert np.allclose(np.array(half.box) * 2, full.box, atol=8)


def test_two_step_shrink_stays_close_to_area_averaging(repo_root: Path) -> None:
    image = demo(repo_root, 0)
    fast = shrink(image, 128, 96)
    exact = cv2.resize(image, (128, 96), interpolation=cv2.INTER_AREA)
    assert fast.shape == exact.shape
    assert mean_abs_diff(fast, exact) < 3.0
    # Small enough sources take the single area step unchanged.
    small = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    assert np.array_equal(
        shrink(small, 128, 96), cv2.resize(small, (128, 96), interpolation=cv2.INTER_AREA)
    )


def test_picamera_lores_is_colour_and_finds_the_face(
    monkeypatch: pytest.MonkeyPatch,
    detector: BlazeFaceDetector,
    config: MoodboxConfig,
    repo_root: Path,
) -> None:
    import types

    from edge.camera.picamera import PicameraSource

    FakePicamera2.frame = demo(repo_root, 0)
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    with PicameraSource(fps=0) as source:
        frame = source.read()
    assert frame.lores is not None and frame.lores.shape == (240, 320, 3)
    assert frame.lores_scale == 0.5
    pipeline = pipeline_for(config, detector)
    pipeline.process(frame)
    (track,) = pipeline.tracker.tracks.values()
    (direct,) = detector.detect(FakePicamera2.frame)
    # Detected on the lores stream, reported in main-stream pixels.
    assert np.allclose(track.detection.box, direct.box, atol=8)
