"""`moodbox eval-faces`: verification accuracy on LFW-style pairs and an open-set household test.

Verification: cosine similarity of each pair's embeddings, accuracy with the
threshold chosen on the other nine folds of a 10-fold split, and TAR at a FAR
of 0.1% (the threshold that lets at most 0.1% of mismatched pairs through).

Household simulation: ``people`` identities are enrolled from ``shots``
images each (as ``moodbox enroll`` would store them); each of their other
images is a genuine track, every image of everybody else (all data sets
found) a stranger track. A track is ``frames`` embeddings of one image and
its augmentations (mirror, small shift and zoom: the frames of one visit)
decided by the same consensus code as the daemon. A stranger named as any
user, or a user named as another, is a false sign-in.

Embeddings are cached per model (sha256) under the cache folder, so a rerun
only pays for images it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.detect import FaceDetector
from edge.identify.align import align_face, centre_keypoints
from edge.identify.embed import FaceEmbedder, mirrored, normalise
from edge.identify.recognize import Gallery, score_tracks

logger = logging.getLogger(__name__)

VIEWS = ("original", "mirror", "shifted")


def read_image(path: Path) -> np.ndarray | None:
    """A BGR image from any file OpenCV reads, GIFs (Yale) included."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read()
        capture.release()
        image = frame if ok else None
    return image


@dataclass
class Embedded:
    """Embeddings of images, (n, views, dim), and how many used the centre fallback."""

    paths: list[Path]
    vectors: np.ndarray
    fallbacks: int
    unreadable: int


def _views(image: np.ndarray, keypoints: np.ndarray) -> list[np.ndarray]:
    """The aligned face, its mirror image, and a slightly shifted and zoomed copy."""
    aligned = align_face(image, keypoints)
    centre = keypoints[:4].mean(0)
    jitter = (keypoints - centre) * 1.06 + centre + np.array([2.0, -1.5], dtype=np.float32)
    return [aligned, mirrored(aligned), align_face(image, jitter.astype(np.float32))]


def locate(detector: FaceDetector, image: np.ndarray) -> np.ndarray | None:
    """Keypoints of the largest face; tight crops (ORL) get a border so the detector sees a face."""
    for pad in (0, image.shape[0] // 2):
        padded = (
            cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else image
        )
        detections = detector.detect(padded)
        if detections:
            best = max(detections, key=lambda d: d.width)
            return np.asarray(best.keypoints - pad, dtype=np.float32)
    return None


def embed_files(
    paths: Sequence[Path],
    *,
    detector: FaceDetector,
    embedder: FaceEmbedder,
    cache: Path | None,
    model_id: str,
    progress: Callable[[int, int], None] | None = None,
) -> Embedded:
    """Embeddings of every file's face in every view, from the cache where present."""
    cached: dict[str, np.ndarray] = {}
    flags: dict[str, int] = {}
    cache_file = cache / f"face-embeddings-{model_id}.npz" if cache else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as data:
            keys = [str(k) for k in data["keys"]]
            cached = dict(zip(keys, data["vectors"], strict=True))
            flags = dict(zip(keys, (int(f) for f in data["flags"]), strict=True))
    out = np.zeros((len(paths), len(VIEWS), embedder.dim), dtype=np.float32)
    fresh = 0
    for i, path in enumerate(paths):
        key = str(path.resolve())
        if key not in cached:
            image = read_image(path)
            if image is None:
                flags[key], cached[key] = 2, np.zeros((len(VIEWS), embedder.dim), np.float32)
            else:
                keypoints = locate(detector, image)
                flags[key] = 0 if keypoints is not None else 1
                if keypoints is None:
                    keypoints = centre_keypoints(image.shape[1], image.shape[0])
                cached[key] = np.stack([embedder.embed(v) for v in _views(image, keypoints)])
            fresh += 1
            if fresh % 200 == 0:
                if progress:
                    progress(i + 1, len(paths))
                if cache_file is not None:  # an interrupted run keeps what it has done
                    _save_cache(cache_file, cached, flags)
        out[i] = cached[key]
    if cache_file is not None and fresh:
        _save_cache(cache_file, cached, flags)
    keys = [str(p.resolve()) for p in paths]
    return Embedded(
        list(paths),
        out,
        fallbacks=sum(flags[k] == 1 for k in keys),
        unreadable=sum(flags[k] == 2 for k in keys),
    )


def _save_cache(path: Path, cached: dict[str, np.ndarray], flags: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(cached)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial,
        keys=np.array(keys),
        vectors=np.stack([cached[k] for k in keys]),
        flags=np.array([flags[k] for k in keys]),
    )
    partial.replace(path)


# Verification on pairs.


def parse_pairs(pairs_file: Path, images: Path) -> list[tuple[Path, Path, bool]]:
    """LFW pairs: "name i j" (same person) or "name1 i name2 j"; header lines are skipped."""
    root = images / "lfw" if (images / "lfw").is_dir() else images

    def image(name: str, index: str) -> Path:
        return root / name / f"{name}_{int(index):04d}.jpg"

    pairs: list[tuple[Path, Path, bool]] = []
    for line in pairs_file.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            pairs.append((image(parts[0], parts[1]), image(parts[0], parts[2]), True))
        elif len(parts) == 4 and not line.startswith("#"):
            pairs.append((image(parts[0], parts[1]), image(parts[2], parts[3]), False))
    return pairs


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (midpoint between scores) with the highest accuracy; (threshold, acc)."""
    values = np.unique(scores)
    candidates = np.concatenate(
        [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
    )
    accuracies = [float(((scores >= t) == same).mean()) for t in candidates]
    best = int(np.argmax(accuracies))
    return float(candidates[best]), accuracies[best]


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True accept rate at the lowest threshold whose false accept rate is ≤ ``far``."""
    negatives = np.sort(scores[~same])[::-1]
    allowed = int(np.floor(far * len(negatives)))
    threshold = float(negatives[allowed]) + 1e-6 if allowed < len(negatives) else -1.0
    return float((scores[same] >= threshold).mean()), threshold


@dataclass
class VerificationReport:
    pairs: int
    positives: int
    negatives: int
    accuracy: float
    accuracy_std: float
    threshold: float
    tar_at_far_0_001: float
    threshold_at_far_0_001: float
    accuracy_single_view: float
    tar_at_far_0_001_single_view: float
    detector_fallbacks: int
    missing_images: int


def _ten_fold(
    scores: np.ndarray, same: np.ndarray, folds: int, seed: int
) -> tuple[list[float], list[float]]:
    """Accuracy on each fold at the threshold best on the other folds; (accuracies, thresholds)."""
    order = np.random.default_rng(seed).permutation(len(scores))
    accuracies: list[float] = []
    thresholds: list[float] = []
    for fold in np.array_split(order, min(folds, len(scores) // 2)):
        train = np.setdiff1d(order, fold)
        threshold, _ = best_threshold(scores[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(((scores[fold] >= threshold) == same[fold]).mean()))
    return accuracies, thresholds


def verify_pairs(
    pairs: Sequence[tuple[Path, Path, bool]],
    embed: Callable[[Sequence[Path]], Embedded],
    folds: int = 10,
    seed: int = 0,
) -> VerificationReport:
    """10-fold verification accuracy and TAR at FAR 0.1%.

    Each image is embedded as moodbox embeds a still photo (``embed_still``:
    the face and its mirror image averaged; a live track gets the same average
    by alternating mirrored frames). The ``_single_view`` figures use one
    pass per image without the mirror, for comparison.
    """
    files = sorted({p for a, b, _ in pairs for p in (a, b)})
    embedded = embed(files)
    index = {p: i for i, p in enumerate(files)}
    first = np.array([index[a] for a, _, _ in pairs])
    second = np.array([index[b] for _, b, _ in pairs])
    same = np.array([s for _, _, s in pairs], dtype=bool)
    single = embedded.vectors[:, 0]
    mirrored = normalise(embedded.vectors[:, :2].sum(1))
    scores = (single[first] * single[second]).sum(1)
    scores_mirror = (mirrored[first] * mirrored[second]).sum(1)
    accuracies_single, _ = _ten_fold(scores, same, folds, seed)
    accuracies, thresholds = _ten_fold(scores_mirror, same, folds, seed)
    tar_single, _ = tar_at_far(scores, same, 0.001)
    tar, far_threshold = tar_at_far(scores_mirror, same, 0.001)
    return VerificationReport(
        pairs=len(pairs),
        positives=int(same.sum()),
        negatives=int((~same).sum()),
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        threshold=float(np.mean(thresholds)),
        tar_at_far_0_001=tar,
        threshold_at_far_0_001=far_threshold,
        accuracy_single_view=float(np.mean(accuracies_single)),
        tar_at_far_0_001_single_view=tar_single,
        detector_fallbacks=embedded.fallbacks,
        missing_images=embedded.unreadable,
    )


# Household simulation.


def find_people(images: Path) -> dict[str, list[Path]]:
    """Identity → image files for LFW (lfw/<Name>/), ORL (orl/s<N>/) and Yale (subjectNN.*)."""
    people: dict[str, list[Path]] = {}
    for path in sorted(images.rglob("*")):
        if (
            not path.is_file()
            or path.name.startswith(".")
            or path.name.lower().startswith("readme")
        ):
            continue
        if path.suffix.lower() in {".txt", ".npz", ".json", ".db"}:
            continue
        if path.name.startswith("subject") and "." in path.name:
            person = "yale/" + path.name.split(".")[0]
        else:
            person = f"{path.parent.parent.name}/{path.parent.name}"
        people.setdefault(person, []).append(path)
    return people


@dataclass
class OperatingPoint:
    threshold: float
    false_sign_in: float  # of stranger tracks, named as an enrolled user
    correct_sign_in: float  # of user tracks, named right
    wrong_user: float  # of user tracks, named as another user
    false_sign_ins: int
    stranger_tracks: int
    genuine_tracks: int


@dataclass
class HouseholdReport:
    trials: int
    people: int
    shots: int
    frames: int
    margin: float
    enrolled_pool: int
    stranger_pool: int
    operating_point: OperatingPoint
    sweep: list[OperatingPoint] = field(default_factory=list)
    detector_fallbacks: int = 0


def simulate_household(
    people: dict[str, list[Path]],
    embedded: Embedded,
    *,
    threshold: float,
    margin: float,
    n_people: int = 6,
    shots: int = 4,
    frames: int = 3,
    trials: int = 20,
    seed: int = 0,
    sweep: Iterable[float] = (),
) -> HouseholdReport:
    """False and correct sign-in rates of households drawn at random, at each threshold."""
    index = {p: i for i, p in enumerate(embedded.paths)}
    readable = {
        name: [index[p] for p in paths if embedded.vectors[index[p], 0].any()]
        for name, paths in people.items()
    }
    eligible = sorted(n for n, idx in readable.items() if len(idx) > shots)
    thresholds = sorted({threshold, *sweep})
    # Per threshold: strangers let in, stranger tracks, users named right, user tracks,
    # users named as somebody else.
    tallies = {t: [0, 0, 0, 0, 0] for t in thresholds}
    rng = random.Random(seed)
    views = embedded.vectors[:, :frames]
    for _ in range(trials):
        household = rng.sample(eligible, n_people)
        enrol: dict[str, np.ndarray] = {}
        genuine: list[tuple[str, int]] = []
        for name in household:
            images = readable[name][:]
            rng.shuffle(images)
            # As `moodbox enroll --images` stores a photo: averaged with its mirror.
            enrol[name] = normalise(embedded.vectors[images[:shots], :2].sum(1))
            genuine.extend((name, i) for i in images[shots:])
        gallery = Gallery.from_embeddings(enrol)
        strangers = [i for n, idx in readable.items() if n not in enrol for i in idx]
        stranger_scores = score_tracks(views[strangers], gallery)
        genuine_scores = score_tracks(views[[i for _, i in genuine]], gallery)
        for t in thresholds:
            tally = tallies[t]
            named = stranger_scores.names(gallery, t, margin)
            tally[0] += sum(user is not None for user in named)
            tally[1] += len(strangers)
            named = genuine_scores.names(gallery, t, margin)
            for (name, _), user in zip(genuine, named, strict=True):
                tally[4] += user is not None and user != name
                tally[2] += user == name
            tally[3] += len(genuine)
    points = {
        t: OperatingPoint(
            threshold=t,
            false_sign_in=f / max(s, 1),
            correct_sign_in=c / max(g, 1),
            wrong_user=w / max(g, 1),
            false_sign_ins=f,
            stranger_tracks=s,
            genuine_tracks=g,
        )
        for t, (f, s, c, g, w) in tallies.items()
    }
    return HouseholdReport(
        trials=trials,
        people=n_people,
        shots=shots,
        frames=frames,
        margin=margin,
        enrolled_pool=len(eligible),
        stranger_pool=sum(len(v) for v in readable.values()),
        operating_point=points[threshold],
        sweep=[points[t] for t in thresholds],
        detector_fallbacks=embedded.fallbacks,
    )


# Bump when alignment or the views change, so cached embeddings are not reused.
PREPROCESSING_VERSION = "align4-v1"


def model_id(model: Path) -> str:
    """Cache key: the model's sha256 and the preprocessing version."""
    return f"{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}-{PREPROCESSING_VERSION}"


def time_embedding(embedder: FaceEmbedder, repeats: int = 50) -> float:
    """Milliseconds per embedding (median over ``repeats``) on a fixed synthetic face."""
    face = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    embedder.embed(face)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(face)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def to_json(report: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            return plain(asdict(value))
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(report), indent=2)
