"""Identity vectors from aligned faces: the FaceEmbedder protocol and the SFace TFLite adapter."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import ModelError
from edge.identify.align import SIZE
from edge.tflite import dequantize, load_interpreter, quantize

logger = logging.getLogger(__name__)


class FaceEmbedder(Protocol):
    """Turns an aligned 112×112 BGR face into a unit-length identity vector."""

    dim: int

    def embed(self, face: np.ndarray) -> np.ndarray:
        """A float32 vector of length ``dim`` with norm 1."""


def model_id(model: Path) -> str:
    """Which embedding model a vector came from: ``sha256:`` and 16 hex digits of the file.

    The user store keeps it with each embedding, so that a new model never has its
    vectors compared with another model's (they live in different spaces).
    """
    digest = hashlib.sha256()
    with Path(model).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:16]}"


def embedder_model_id(embedder: FaceEmbedder) -> str | None:
    """The embedder's ``model_id``; None for one that does not say (a test double),
    whose vectors are then compared with every stored one."""
    value = getattr(embedder, "model_id", None)
    return value if isinstance(value, str) else None


REENROL_HINT = "re-enrol: moodbox forget {name} && moodbox enroll {name}"


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length; zero vectors stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def mirrored(face: np.ndarray) -> np.ndarray:
    """The face flipped left to right, contiguous as the interpreter wants it."""
    return np.ascontiguousarray(face[:, ::-1])


def embed_still(embedder: FaceEmbedder, face: np.ndarray) -> np.ndarray:
    """The embedding of a single still image: the face and its mirror image, averaged.

    A track sees several frames and alternates them with their mirror images
    (``IdentityStage``), so its mean has this flip average for free; a single
    photo (``moodbox enroll --images``) pays for the second pass instead. On
    LFW pairs the flip average is the difference between 98.96% and 99.14%.
    """
    return normalise(embedder.embed(face) + embedder.embed(mirrored(face)))


class TFLiteFaceEmbedder:
    """SFace (OpenCV model zoo, 128-D) converted to TFLite; see models/README.md.

    The model takes raw 0..255 pixel values (no normalisation) in RGB order,
    NHWC, as OpenCV's FaceRecognizerSF feeds it (``blobFromImage`` with
    ``swapRB=true``, scale 1, mean 0).
    """

    def __init__(self, model_path: Path, *, threads: int = 1) -> None:
        self._interpreter = load_interpreter(model_path, threads=threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, SIZE, SIZE, 3):
            raise ModelError(
                f"{model_path}: expected one (1,{SIZE},{SIZE},3) input, a face embedding "
                f"model; got {[tuple(d['shape']) for d in inputs]}"
            )
        if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
            raise ModelError(f"{model_path}: expected one (1, D) embedding output")
        self._input = inputs[0]
        self._output = outputs[0]
        self.dim = int(outputs[0]["shape"][1])
        self.model_id = model_id(model_path)

    def embed(self, face: np.ndarray) -> np.ndarray:
        if face.shape != (SIZE, SIZE, 3):
            raise ValueError(f"expected an aligned {SIZE}x{SIZE} BGR face, got {face.shape}")
        rgb = face[None, :, :, ::-1].astype(np.float32)
        self._interpreter.set_tensor(self._input["index"], quantize(rgb, self._input))
        self._interpreter.invoke()
        vector = dequantize(self._interpreter.get_tensor(self._output["index"])[0], self._output)
        return normalise(vector)
