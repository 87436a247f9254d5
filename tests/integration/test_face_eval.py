"""eval-faces: pairs parsing, 10-fold accuracy, TAR at FAR, household simulation, the command."""

from __future__ import annotations

import itertools
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.identify.embed import normalise
from edge.measure.face_eval import (
    VIEWS,
    Embedded,
    best_threshold,
    parse_pairs,
    simulate_household,
    tar_at_far,
    verify_pairs,
)


def test_parse_pairs_reads_lfw_format(tmp_path: Path) -> None:
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("10\t300\n# comment\nAda_Lovelace\t1\t3\nAda_Lovelace\t2\tBob_Dylan\t4\n")
    (tmp_path / "lfw").mkdir()
    pairs = parse_pairs(pairs_file, tmp_path)
    assert pairs == [
        (
            tmp_path / "lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg",
            tmp_path / "lfw/Ada_Lovelace/Ada_Lovelace_0003.jpg",
            True,
        ),
        (
            tmp_path / "lfw/Ada_Lovelace/Ada_Lovelace_0002.jpg",
            tmp_path / "lfw/Bob_Dylan/Bob_Dylan_0004.jpg",
            False,
        ),
    ]


def test_threshold_and_tar_at_far() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.35, 0.4, 0.1, 0.2, 0.3])
    same = np.array([True, True, True, True, False, False, False, False])
    threshold, accuracy = best_threshold(scores, same)
    assert accuracy == 7 / 8  # one error either way: 0.35 (same) sits below impostor 0.4
    assert ((scores >= threshold) == same).sum() == 7
    tar, far_threshold = tar_at_far(scores, same, 0.001)
    assert far_threshold > 0.4  # above the highest impostor: no false accept
    assert tar == 3 / 4


def synthetic(
    people: int, images: int, noise: float, seed: int = 0
) -> tuple[dict[str, list[Path]], Embedded]:
    rng = np.random.default_rng(seed)
    centres = normalise(rng.normal(size=(people, 128)))
    paths: dict[str, list[Path]] = {}
    vectors = []
    for p in range(people):
        for i in range(images):
            paths.setdefault(f"p{p}", []).append(Path(f"/x/p{p}/{i}.jpg"))
            base = centres[p] + noise * rng.normal(size=128) / np.sqrt(128)
            views = [base + 0.05 * noise * rng.normal(size=128) / np.sqrt(128) for _ in VIEWS]
            vectors.append(normalise(np.stack(views)))
    flat = [p for ps in paths.values() for p in ps]
    return paths, Embedded(flat, np.stack(vectors).astype(np.float32), fallbacks=0, unreadable=0)


def test_verify_pairs_on_separable_embeddings() -> None:
    people, embedded = synthetic(6, 4, noise=0.5)
    index = {p: i for i, p in enumerate(embedded.paths)}
    pairs = [(a[0], a[1], True) for a in people.values()]
    names = list(people)
    pairs += [(people[a][2], people[b][3], False) for a, b in itertools.pairwise(names)]

    def embed(paths: object) -> Embedded:
        order = [index[p] for p in paths]  # type: ignore[attr-defined]
        return Embedded(list(paths), embedded.vectors[order], 0, 0)  # type: ignore[call-overload]

    report = verify_pairs(pairs, embed, folds=2)
    assert report.accuracy == 1.0
    assert report.tar_at_far_0_001 == 1.0
    assert report.pairs == 11 and report.positives == 6


def test_household_simulation_counts_strangers_and_users() -> None:
    people, embedded = synthetic(12, 6, noise=0.6)
    report = simulate_household(
        people,
        embedded,
        threshold=0.5,
        margin=0.0,
        n_people=3,
        shots=3,
        trials=4,
        sweep=[-1.0, 0.99],
    )
    point = report.operating_point
    assert point.stranger_tracks == 4 * 9 * 6
    assert point.genuine_tracks == 4 * 3 * 3
    assert point.false_sign_in == 0.0
    assert point.correct_sign_in == 1.0
    by_threshold = {p.threshold: p for p in report.sweep}
    # At threshold -1 only the per-frame majority vote can still refuse a stranger
    # (a track whose frames split between two users).
    assert by_threshold[-1.0].false_sign_in > 0.98
    assert by_threshold[0.99].correct_sign_in == 0.0


def test_eval_faces_command_on_real_lfw_images(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = {"Colin_Powell": 3, "Donald_Rumsfeld": 2, "Bill_Gates": 1}
    with tarfile.open(shared_data / "faces" / "lfw-a-f.tar.gz") as archive:
        for member in archive:
            name = Path(member.name)
            person = name.parent.name
            if member.isfile() and int(name.stem.rsplit("_", 1)[1]) <= wanted.get(person, 0):
                handle = archive.extractfile(member)
                assert handle is not None
                target = tmp_path / "lfw" / person / name.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(handle.read())
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "Colin_Powell\t1\t2\nColin_Powell\t2\t3\nDonald_Rumsfeld\t1\t2\n"
        "Colin_Powell\t1\tBill_Gates\t1\nDonald_Rumsfeld\t2\tBill_Gates\t1\n"
    )
    args = ["eval-faces", "--pairs", str(pairs), "--images", str(tmp_path), "--repeats", "2"]
    assert main([*args, "--json", "--no-household", "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 5
    assert 0.0 <= report["accuracy"] <= 1.0
    assert 0.0 <= report["tar_at_far_0_001"] <= 1.0
    assert report["missing_images"] == 0
    assert report["ms_per_embedding"] > 0
    # The second run reads the cached embeddings and gives the same figures.
    assert main([*args, "--json", "--no-household", "--cache", str(tmp_path / "cache")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == report["accuracy"]
    assert list((tmp_path / "cache").glob("face-embeddings-*.npz"))
