"""The shipped int8 emotion model on real FER-2013 faces, its contract, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.classify import EMOTIONS, TFLiteEmotionClassifier, crop_face, to_face_input
from edge.cli import main
from edge.errors import ModelError
from edge.measure.emotion_eval import evaluate_emotion
from edge.tflite import dequantize, load_interpreter, quantize

MODELS = Path(__file__).resolve().parents[2] / "models"


def make(**kwargs: object) -> TFLiteEmotionClassifier:
    paths = {
        "model_path": MODELS / "emotion_int8.tflite",
        "labels_path": MODELS / "emotion_labels.txt",
        "metadata_path": MODELS / "emotion_model.json",
    }
    paths.update(kwargs)  # type: ignore[arg-type]
    return TFLiteEmotionClassifier(**paths)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def classifier() -> TFLiteEmotionClassifier:
    return make()


def test_model_is_full_int8_and_quantization_is_read_from_the_model() -> None:
    interpreter = load_interpreter(MODELS / "emotion_int8.tflite")
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert tuple(inp["shape"]) == (1, 48, 48, 1)
    # Pixels 0..255 map onto the int8 range through the model's own scale/zero point.
    assert np.array_equal(
        dequantize(quantize(np.array([0, 128, 255]), inp), inp),
        np.array([0, 128, 255], dtype=np.float32),
    )
    assert MODELS.joinpath("emotion_int8.tflite").stat().st_size < 1.5 * 1024 * 1024


def test_probabilities_are_a_distribution(classifier: TFLiteEmotionClassifier) -> None:
    face = cv2.imread(str(Path(__file__).resolve().parents[1] / "data" / "astronaut.png"))
    probs = classifier.classify(crop_face(face, (180, 40, 320, 190)))
    assert probs.shape == (7,)
    assert probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(probs >= 0)


def test_mirror_tta_is_symmetric(classifier: TFLiteEmotionClassifier) -> None:
    rng = np.random.default_rng(1)
    face = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    assert np.allclose(classifier.classify(face), classifier.classify(face[:, ::-1].copy()))


def test_real_fer2013_faces_well_above_chance(
    classifier: TFLiteEmotionClassifier, fer_private_subset: Path
) -> None:
    report = evaluate_emotion(classifier, fer_private_subset)
    assert report.n >= 250
    # 7 classes: chance is ~14%; the shipped model scores ~2/3 on all of PrivateTest.
    assert report.accuracy > 0.5
    assert report.per_class_recall["happy"] > 0.7
    assert report.confusion.shape == (7, 7)


def test_eval_emotion_cli_json_plot_and_synonyms(
    fer_private_subset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(fer_private_subset / "happy", tree / "happiness")
    shutil.copytree(fer_private_subset / "angry", tree / "anger")
    (tree / "not_an_emotion").mkdir()
    (tree / "happiness" / "broken.jpg").write_bytes(b"nope")
    plot = tmp_path / "confusion.png"
    assert main(["eval-emotion", str(tree), "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 80
    assert 0 <= result["accuracy"] <= 1
    assert set(result["per_class_recall"]) == set(EMOTIONS)
    assert result["per_class_recall"]["sad"] is None  # no sad folder given
    assert sum(map(sum, result["confusion"])) == 80
    assert result["skipped_folders"] == ["not_an_emotion"]
    assert result["unreadable_images"] == 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_emotion_table_output(
    fer_private_subset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-emotion", str(fer_private_subset)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "fear" in out


def test_eval_emotion_on_an_empty_folder_exits_2(tmp_path: Path) -> None:
    assert main(["eval-emotion", str(tmp_path)]) == 2


def test_crop_face_pads_at_the_frame_edge() -> None:
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    face = crop_face(image, (-20, -20, 30, 30))
    assert face.shape == (48, 48)
    assert face.dtype == np.uint8
    assert to_face_input(np.zeros((10, 10), np.uint8)).shape == (48, 48)


def test_wrong_labels_file_is_rejected(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("happy\nsad\n")
    with pytest.raises(ModelError, match="must list"):
        make(labels_path=labels)


def test_corrupt_emotion_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "emotion.tflite"
    bad.write_bytes(MODELS.joinpath("emotion_int8.tflite").read_bytes()[:5000])
    with pytest.raises(ModelError, match="cannot load model"):
        make(model_path=bad)


def test_detector_model_in_place_of_the_classifier_is_rejected() -> None:
    with pytest.raises(ModelError, match=r"expected input \(1,48,48,1\)"):
        make(model_path=MODELS / "face_detection_short_range.tflite")


def test_bad_metadata_is_rejected(tmp_path: Path) -> None:
    meta = tmp_path / "meta.json"
    meta.write_text('{"temperature": "warm"}')
    with pytest.raises(ModelError, match="temperature"):
        make(metadata_path=meta)
