"""The FER+ test labels the evaluation sets are written under: the majority vote and the
FERPlus reference protocol, the latter the same rule the training script scores validation by."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LABELS = (ROOT / "models" / "emotion_labels.txt").read_text().split()


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def eval_sets() -> ModuleType:
    return load_script(ROOT / "scripts" / "assets" / "prepare_eval_sets.py")


# Vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
@pytest.mark.parametrize(
    ("votes", "majority", "reference"),
    [
        ([4, 3, 1, 1, 1, 0, 0, 0, 0, 0], "neutral", "neutral"),  # 4 of the 7 left after the ones
        ([1, 6, 1, 1, 1, 0, 0, 0, 0, 0], "happy", "happy"),
        ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "neutral", None),  # a tie is no majority
        ([2, 2, 2, 1, 1, 1, 1, 0, 0, 0], "neutral", None),  # nobody above half of 6
        ([0, 0, 0, 0, 3, 2, 1, 1, 1, 1], "angry", "angry"),  # 3 of 5 once the ones go
        ([0, 0, 0, 0, 0, 0, 0, 8, 2, 0], None, None),  # contempt
        ([0, 0, 0, 0, 0, 0, 2, 0, 0, 8], None, None),  # not a face
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "neutral", None),  # every vote an outlier
    ],
)
def test_majority_and_reference_labels(
    eval_sets: ModuleType, votes: list[int], majority: str | None, reference: str | None
) -> None:
    counts = np.asarray(votes)
    assert eval_sets.majority_label(counts) == majority
    assert eval_sets.reference_label(counts) == reference


def test_the_test_sets_reference_protocol_is_the_training_scripts_on_validation(
    eval_sets: ModuleType,
) -> None:
    """One protocol for both splits: the per-face rule agrees with the training script's
    vectorised one on every one of 5,000 random vote rows."""
    train = load_script(ROOT / "scripts" / "models" / "train_emotion.py")
    rng = np.random.default_rng(7)
    # Ten annotators spread over a few columns, as real FER+ rows are.
    votes = np.zeros((5000, 10), dtype=np.int64)
    for row in votes:
        for column in rng.choice(10, size=10, p=rng.dirichlet(np.full(10, 0.3))):
            row[column] += 1
    theirs = train.ferplus_reference({"v_test": votes.astype(np.float32)}, "test")
    ours = [eval_sets.reference_label(row) for row in votes]
    assert [LABELS[i] if i >= 0 else None for i in theirs] == ours
    assert 0 < theirs.tolist().count(-1) < len(votes)  # both outcomes were exercised
