"""Face sign-in end to end on real LFW photos: enrol, recognise, report strangers, forget.

Uses the shipped BlazeFace and SFace models and a real SQLite store; the
"camera" is a sequence of real photos delivered as frames.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import Frame
from edge.cli import main
from edge.config import IdentifyConfig, load_config
from edge.detect import BlazeFaceDetector
from edge.events import (
    EnrolmentFinished,
    EnrolmentStarted,
    Event,
    UnknownFace,
    UserSignedIn,
    UserSignedOut,
)
from edge.identify.embed import TFLiteFaceEmbedder, embed_still
from edge.identify.enroll import choose, embed_images
from edge.identify.stage import IdentityStage
from edge.identify.store import UserStore
from edge.track import Tracker

PEOPLE = {"Colin_Powell": 6, "Donald_Rumsfeld": 6, "Ariel_Sharon": 6}
STRANGERS = ("Angelina_Jolie", "Bill_Gates", "Fidel_Castro")


@pytest.fixture(scope="module")
def lfw(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """A few people's first images from the real LFW archive."""
    out = tmp_path_factory.mktemp("lfw")
    wanted = {**PEOPLE, **dict.fromkeys(STRANGERS, 1)}
    found: dict[str, list[Path]] = {}
    with tarfile.open(shared_data / "faces" / "lfw-a-f.tar.gz") as archive:
        for member in archive:
            name = Path(member.name)
            person = name.parent.name
            if not member.isfile() or person not in wanted:
                continue
            index = int(name.stem.rsplit("_", 1)[1])
            if index > wanted[person]:
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            target = out / name.name
            target.write_bytes(handle.read())
            found.setdefault(person, []).append(target)
    return {person: sorted(paths) for person, paths in found.items()}


@pytest.fixture(scope="module")
def detector(repo_root: Path) -> BlazeFaceDetector:
    return BlazeFaceDetector(repo_root / "models" / "face_detection_short_range.tflite")


@pytest.fixture(scope="module")
def embedder(repo_root: Path) -> TFLiteFaceEmbedder:
    return TFLiteFaceEmbedder(repo_root / "models" / "face_embedding.tflite")


@pytest.fixture(params=[True, False], ids=["worker", "inline"])
def stage(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: TFLiteFaceEmbedder
) -> Iterator[IdentityStage]:
    """The stage embedding on its worker thread (the default) and inline."""
    config = IdentifyConfig(sign_out_after_s=5.0, enroll_samples=3, background=request.param)
    store = UserStore.in_state_dir(tmp_path / "state")
    stage = IdentityStage(config, embedder=embedder, store=store)
    yield stage
    stage.close()
    store.close()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Path:
    """$STATE_DIRECTORY for commands and pipelines built from config, as systemd sets it."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return tmp_path / "state"


class Feeder:
    """Runs photos through detect → track → identify as a camera at 4 frames per second."""

    def __init__(self, stage: IdentityStage, detector: BlazeFaceDetector) -> None:
        self.stage, self.detector = stage, detector
        self.tracker = Tracker(timeout_s=1.0)
        self.now, self.index = 0.0, 0

    def frame(self, image: np.ndarray | None) -> list[Event]:
        image = image if image is not None else np.zeros((250, 250, 3), np.uint8)
        frame = Frame(image, self.now, self.index)
        seen, expired = self.tracker.update(self.detector.detect(image), self.now)
        events = self.stage.process(frame, seen, expired, self.now)
        # A camera frame takes longer than an embedding: the worker's results are
        # in by the next frame. Waiting here makes that so on a loaded test machine.
        assert self.stage.wait_idle()
        self.last_seen = seen
        self.now += 0.25
        self.index += 1
        return events

    def show(self, path: Path, frames: int) -> list[Event]:
        """A person in view for ``frames`` frames, then an empty view until their track ends."""
        image = cv2.imread(str(path))
        events = [e for _ in range(frames) for e in self.frame(image)]
        return events + [e for _ in range(5) for e in self.frame(None)]


def enrol_from_files(
    stage: IdentityStage, paths: list[Path], name: str, detector: BlazeFaceDetector
) -> None:
    samples, problems = embed_images(paths, detector=detector, embedder=stage.embedder)
    assert problems == []
    stage.store.add_embeddings(name, [s.vector for s in choose(samples, 3)])
    stage.reload()


def test_recognises_enrolled_people_and_calls_strangers_unknown(
    lfw: dict[str, list[Path]], stage: IdentityStage, detector: BlazeFaceDetector
) -> None:
    enrol_from_files(stage, lfw["Colin_Powell"][:3], "colin", detector)
    enrol_from_files(stage, lfw["Donald_Rumsfeld"][:3], "donald", detector)
    feed = Feeder(stage, detector)

    image = cv2.imread(str(lfw["Colin_Powell"][4]))
    events = [e for _ in range(4) for e in feed.frame(image)]
    assert [(type(e), getattr(e, "user", None)) for e in events] == [(UserSignedIn, "colin")]
    assert feed.last_seen[0].user == "colin"
    feed.show(lfw["Colin_Powell"][4], 0)

    stranger_events = [e for s in STRANGERS for e in feed.show(lfw[s][0], 4)]
    # Every stranger's track is decided as unknown, and nobody signs in.
    assert not any(isinstance(e, UserSignedIn) for e in stranger_events)
    assert len({e.face_id for e in stranger_events if isinstance(e, UnknownFace)}) == 3

    events = feed.show(lfw["Donald_Rumsfeld"][5], 4)
    assert any(isinstance(e, UserSignedIn) and e.user == "donald" for e in events)
    # Nobody in view for longer than sign_out_after_s: each signs out once.
    later = stranger_events + events + [e for _ in range(20) for e in feed.frame(None)]
    assert sorted(e.user for e in later if isinstance(e, UserSignedOut)) == ["colin", "donald"]
    assert [u.name for u in stage.store.users() if u.last_seen] == ["colin", "donald"]


def test_camera_enrolment_then_recognition_then_forget(
    lfw: dict[str, list[Path]], stage: IdentityStage, detector: BlazeFaceDetector
) -> None:
    feed = Feeder(stage, detector)
    stage.enroll_from_camera("ariel")
    assert stage.enrolling
    events: list[Event] = []
    for path in lfw["Ariel_Sharon"][:4]:
        events += feed.show(path, 4)
        if not stage.enrolling:
            break
    assert [e.user for e in events if isinstance(e, EnrolmentStarted)] == ["ariel"]
    finished = [e for e in events if isinstance(e, EnrolmentFinished)]
    assert len(finished) == 1 and finished[0].ok, finished
    assert (finished[0].samples, finished[0].also_matches) == (3, ())
    assert [(u.name, u.samples) for u in stage.store.users()] == [("ariel", 3)]

    image = cv2.imread(str(lfw["Ariel_Sharon"][5]))
    events = [e for _ in range(4) for e in feed.frame(image)]
    assert any(isinstance(e, UserSignedIn) and e.user == "ariel" for e in events)

    assert stage.forget("ariel")
    events = feed.frame(cv2.imread(str(lfw["Ariel_Sharon"][5])))
    assert any(isinstance(e, UserSignedOut) and e.user == "ariel" for e in events)
    assert stage.store.users() == []
    assert feed.last_seen[0].user is None
    assert not stage.forget("ariel")


def test_camera_enrolment_of_an_enrolled_face_under_another_name_asks(
    lfw: dict[str, list[Path]], stage: IdentityStage, detector: BlazeFaceDetector
) -> None:
    enrol_from_files(stage, lfw["Ariel_Sharon"][:3], "ariel", detector)
    feed = Feeder(stage, detector)
    asked: list[tuple[str, list[str]]] = []

    def refuse(name: str, others: list[str]) -> bool:
        asked.append((name, others))
        return False

    stage.enroll_from_camera("sharon", confirm=refuse)
    events: list[Event] = []
    for path in lfw["Ariel_Sharon"][3:7]:
        events += feed.show(path, 4)
        if not stage.enrolling:
            break
    assert asked == [("sharon", ["ariel"])]
    [finished] = [e for e in events if isinstance(e, EnrolmentFinished)]
    assert not finished.ok
    assert finished.also_matches == ("ariel",)
    assert finished.reason == "not stored: the face already signs in as ariel"
    assert [u.name for u in stage.store.users()] == ["ariel"]

    # Without anyone to ask (a remote enrolment) it is stored, and the event says so.
    stage.enroll_from_camera("sharon")
    events = []
    for path in lfw["Ariel_Sharon"][3:7]:
        events += feed.show(path, 4)
        if not stage.enrolling:
            break
    [finished] = [e for e in events if isinstance(e, EnrolmentFinished)]
    assert finished.ok and finished.also_matches == ("ariel",)
    assert [u.name for u in stage.store.users()] == ["ariel", "sharon"]


def test_camera_enrolment_with_two_faces_fails_clearly(
    lfw: dict[str, list[Path]], stage: IdentityStage, detector: BlazeFaceDetector
) -> None:
    two = np.hstack(
        [cv2.imread(str(lfw["Colin_Powell"][0])), cv2.imread(str(lfw["Bill_Gates"][0]))]
    )
    feed = Feeder(stage, detector)
    stage.enroll_from_camera("both")
    events = [e for _ in range(45) for e in feed.frame(two)]
    finished = [e for e in events if isinstance(e, EnrolmentFinished)]
    assert len(finished) == 1 and not finished[0].ok
    assert "more than one face" in (finished[0].reason or "")
    assert stage.store.users() == []


def test_cli_enroll_users_forget(
    lfw: dict[str, list[Path]],
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    repo_root: Path,
) -> None:
    monkeypatch.setenv("MOODBOX_CONFIG", str(repo_root / "config.yaml"))
    files = [str(p) for p in lfw["Colin_Powell"][:4]]
    assert main(["enroll", "Colin", "--images", *files]) == 0
    assert "enrolled Colin" in capsys.readouterr().out
    assert main(["users", "--json"]) == 0
    users = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["samples"]) for u in users] == [("Colin", 4)]
    assert main(["forget", "Colin"]) == 0
    assert main(["forget", "Colin"]) == 1
    assert main(["users"]) == 0
    assert "nobody enrolled" in capsys.readouterr().out
    # The daemon's config finds the same store.
    assert load_config(repo_root / "config.yaml").state_dir() == state_dir


@pytest.mark.usefixtures("state_dir")
def test_pipeline_signs_in_and_mood_events_carry_the_user(
    lfw: dict[str, list[Path]],
    tmp_path: Path,
    repo_root: Path,
    detector: BlazeFaceDetector,
    embedder: TFLiteFaceEmbedder,
) -> None:
    from edge.events import MoodChanged
    from edge.pipeline import Pipeline
    from edge.stats import Stats

    models = repo_root / "models"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"detect: {{model: {models / 'face_detection_short_range.tflite'}}}\n"
        f"emotion: {{model: {models / 'emotion_int8.tflite'},"
        f" labels: {models / 'emotion_labels.txt'}, metadata: {models / 'emotion_model.json'}}}\n"
        "decide: {hold_s: 1.0}\n"
        f"identify: {{model: {models / 'face_embedding.tflite'}}}\n"
    )
    config = load_config(config_file)
    samples, _ = embed_images(lfw["Colin_Powell"][:3], detector=detector, embedder=embedder)
    with UserStore.in_state_dir(config.state_dir()) as store:
        store.add_embeddings("colin", [s.vector for s in samples])
    pipeline = Pipeline.from_config(config, Stats())
    assert pipeline.identity is not None
    image = cv2.imread(str(lfw["Colin_Powell"][5]))
    events: list[Event] = []
    for i in range(8):
        events += pipeline.process(Frame(image, i * 0.25, i), wall_time=100.0 + i)
        assert pipeline.identity.wait_idle()
    signed_in = [e for e in events if isinstance(e, UserSignedIn)]
    assert [(e.user, e.face_id) for e in signed_in] == [("colin", 1)]
    moods = [e for e in events if isinstance(e, MoodChanged)]
    assert moods and all(e.user == "colin" for e in moods)
    assert {"align", "embed"} <= set(pipeline.stats.stage_ms)
    pipeline.close()


@pytest.mark.usefixtures("state_dir")
def test_demo_config_without_users_reports_unknown(repo_root: Path) -> None:
    from edge.pipeline import Pipeline
    from edge.stats import Stats

    pipeline = Pipeline.from_config(load_config(repo_root / "config.yaml"), Stats())
    image = cv2.imread(str(repo_root / "tests" / "data" / "grace_hopper.jpg"))
    assert pipeline.identity is not None
    events: list[Event] = []
    for i in range(5):
        events += pipeline.process(Frame(image, i * 0.25, i))
        assert pipeline.identity.wait_idle()
    assert [type(e) for e in events if isinstance(e, UnknownFace | UserSignedIn)] == [UnknownFace]
    pipeline.close()


def test_users_enrolled_by_another_process_are_picked_up(
    lfw: dict[str, list[Path]], stage: IdentityStage, detector: BlazeFaceDetector, tmp_path: Path
) -> None:
    feed = Feeder(stage, detector)
    feed.frame(None)
    samples, _ = embed_images(lfw["Colin_Powell"][:3], detector=detector, embedder=stage.embedder)
    with UserStore.in_state_dir(tmp_path / "state") as other:  # as `moodbox enroll` would
        other.add_embeddings("colin", [s.vector for s in samples])
    for _ in range(9):
        feed.frame(None)  # a little over RELOAD_CHECK_S
    assert stage.recognizer.gallery.names == ("colin",)


def test_camera_enrolment_stores_face_images_only_when_debugging(
    lfw: dict[str, list[Path]],
    detector: BlazeFaceDetector,
    embedder: TFLiteFaceEmbedder,
    tmp_path: Path,
) -> None:
    for debug, expected in ((False, 0), (True, 3)):
        config = IdentifyConfig(enroll_samples=3, store_images_debug=debug)
        with UserStore(tmp_path / f"debug-{debug}.sqlite3") as store:
            stage = IdentityStage(config, embedder=embedder, store=store)
            feed = Feeder(stage, detector)
            stage.enroll_from_camera("colin")
            image = cv2.imread(str(lfw["Colin_Powell"][0]))
            for _ in range(14):
                feed.frame(image)
            stage.close()
            assert stage.last_enrolment == ("colin", None)
            assert store.debug_image_count() == expected
            assert store.users()[0].created > 1e9  # wall-clock time, not the camera's clock


class RecordingEmbedder:
    """The real SFace embedder, recording each face it is given."""

    def __init__(self, real: TFLiteFaceEmbedder) -> None:
        self.real, self.dim, self.faces = real, real.dim, []

    def embed(self, face: np.ndarray) -> np.ndarray:
        self.faces.append(face.copy())
        return self.real.embed(face)


def test_a_track_alternates_faces_with_their_mirror_images(
    tmp_path: Path,
    embedder: TFLiteFaceEmbedder,
    detector: BlazeFaceDetector,
    lfw: dict[str, list[Path]],
) -> None:
    recorder = RecordingEmbedder(embedder)
    store = UserStore.in_state_dir(tmp_path / "state")
    stage = IdentityStage(IdentifyConfig(), embedder=recorder, store=store)
    # The same photo in every frame, so each frame's aligned face is identical.
    Feeder(stage, detector).show(lfw["Colin_Powell"][0], frames=8)
    stage.close()
    store.close()
    faces = recorder.faces
    assert len(faces) >= 3
    assert np.array_equal(faces[1], faces[0][:, ::-1])
    assert np.array_equal(faces[2], faces[0])
    # A still photo is embedded the same way: the face and its mirror image averaged.
    still = embed_still(embedder, faces[0])
    both = embedder.embed(faces[0]) + embedder.embed(faces[1])
    assert np.allclose(still, both / np.linalg.norm(both), atol=1e-5)
