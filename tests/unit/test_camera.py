"""Camera sources on real files: replay folders and videos, OpenCV files, registry errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import open_source
from edge.camera.opencv import OpenCVSource
from edge.camera.picamera import PicameraSource
from edge.camera.replay import ReplaySource
from edge.config import load_config
from edge.errors import CameraError, EndOfStream


def write_video(path: Path, frames: int = 6, size: tuple[int, int] = (160, 120)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), i * 40, dtype=np.uint8)
        writer.write(image)
    writer.release()


def test_replay_folder_once_in_name_order(repo_root: Path) -> None:
    folder = repo_root / "demo" / "faces"
    count = len(list(folder.glob("*.jpg")))
    with ReplaySource(folder, fps=0, loop=False) as source:
        frames = []
        with pytest.raises(EndOfStream):
            while True:
                frames.append(source.read())
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    assert frames[0].image.shape == (480, 640, 3)
    assert frames[0].image.dtype == np.uint8


def test_replay_folder_loops(tmp_path: Path, repo_root: Path) -> None:
    for name in ("frame_000.jpg", "frame_010.jpg"):
        shutil.copy(repo_root / "demo" / "faces" / name, tmp_path / name)
    with ReplaySource(tmp_path, fps=0, loop=True) as source:
        frames = [source.read() for _ in range(5)]
    assert np.array_equal(frames[0].image, frames[2].image)
    assert not np.array_equal(frames[0].image, frames[1].image)


def test_replay_skips_unreadable_images(
    tmp_path: Path, repo_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(repo_root / "demo" / "faces" / "frame_000.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    with ReplaySource(tmp_path, fps=0, loop=False) as source:
        first = source.read()
        with pytest.raises(EndOfStream):
            source.read()
    assert first.image.shape == (480, 640, 3)
    assert "skipping unreadable image" in caplog.text


def test_replay_folder_of_only_broken_images_is_a_camera_error(tmp_path: Path) -> None:
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 broken")
    with ReplaySource(tmp_path, fps=0) as source, pytest.raises(CameraError, match="no readable"):
        source.read()


def test_replay_missing_or_empty_source(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        ReplaySource(tmp_path / "nope").open()
    with pytest.raises(CameraError, match="holds no images"):
        ReplaySource(tmp_path).open()


def test_replay_video_file_loops(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, frames=4)
    with ReplaySource(video, fps=0, loop=True) as source:
        frames = [source.read() for _ in range(6)]
    means = [round(float(f.image.mean()) / 40) for f in frames]
    assert means == [0, 1, 2, 3, 0, 1]


def test_replay_paces_to_fps(tmp_path: Path, repo_root: Path) -> None:
    shutil.copy(repo_root / "demo" / "faces" / "frame_000.jpg", tmp_path / "a.jpg")
    with ReplaySource(tmp_path, fps=20, loop=True) as source:
        stamps = [source.read().timestamp for _ in range(4)]
    gaps = np.diff(stamps)
    assert np.all(gaps >= 0.049)


def test_frame_slots_missed_by_a_slow_loop_are_counted(tmp_path: Path, repo_root: Path) -> None:
    shutil.copy(repo_root / "demo" / "faces" / "frame_000.jpg", tmp_path / "a.jpg")
    with ReplaySource(tmp_path, fps=20, loop=True) as source:
        first, on_time = source.read(), source.read()
        time.sleep(0.23)  # the loop is busy for 4.6 frame periods
        late, after = source.read(), source.read()
    assert (first.dropped, on_time.dropped) == (0, 0)
    # Slots at +0.10, +0.15 and +0.20 s passed; the late frame takes the last one.
    assert late.dropped in (3, 4)  # 4 if the read itself ran past another period
    assert after.dropped == 0


def test_corrupt_video_is_a_camera_error(tmp_path: Path) -> None:
    video = tmp_path / "broken.avi"
    video.write_bytes(b"RIFF0000AVI garbage" * 10)
    with pytest.raises(CameraError):
        source = ReplaySource(video, fps=0)
        source.open()
        source.read()


def test_opencv_source_reads_a_video_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, frames=3)
    with OpenCVSource(str(video), fps=0) as source:
        frames = [source.read() for _ in range(3)]
        with pytest.raises(EndOfStream):
            source.read()
    assert frames[2].image.shape == (120, 160, 3)


def test_opencv_missing_device_is_retryable() -> None:
    with pytest.raises(CameraError, match="cannot open"):
        OpenCVSource("/dev/video-does-not-exist", fps=0).open()


def test_picamera_without_picamera2_is_a_clear_camera_error() -> None:
    pytest.importorskip("cv2")
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraError, match="python3-picamera2"):
            PicameraSource().open()
    else:  # pragma: no cover - only on a Pi
        pytest.skip("picamera2 present: hardware test belongs to the Pi checks")


def test_registry_builds_the_configured_source(tmp_path: Path, repo_root: Path) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(f"camera:\n  type: replay\n  source: {repo_root / 'demo' / 'faces'}\n")
    source = open_source(load_config(config_path, environ={}))
    assert isinstance(source, ReplaySource)
    config_path.write_text("camera:\n  type: opencv\n  source: '0'\n")
    assert isinstance(open_source(load_config(config_path, environ={})), OpenCVSource)
