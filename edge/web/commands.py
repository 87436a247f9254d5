"""The web app's commands beside the MQTT ones: rename, enrol from samples, forget everywhere.

They run through the same ``CommandDispatcher`` (validated on the request
thread, run on the loop thread), so the identity stage and its store are
only ever changed from the loop, whichever front-end asked.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.control import NAME_RE, CommandSpec, Controls, IdentityControl, InvalidCommandError

if TYPE_CHECKING:
    from edge.history import HistoryStore
    from edge.identify.stage import IdentityStage

logger = logging.getLogger(__name__)

MAX_SAMPLES = 64  # per enrolment request (a backup file holds every person's samples)
EMBEDDING_DIM = 128


def valid_name(name: object) -> str:
    """A name as MQTT's enrol command accepts it; InvalidCommandError otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name.strip()):
        raise InvalidCommandError(
            "bad name", "1–32 letters, digits, spaces, . ' _ - (starting with a letter or digit)"
        )
    return name.strip()


def _object(payload: bytes, keys: set[str]) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise InvalidCommandError("not JSON") from err
    if not isinstance(data, dict) or set(data) != keys:
        raise InvalidCommandError("bad schema", f"expected the keys {sorted(keys)}")
    return data


def parse_rename(payload: bytes) -> tuple[str, str]:
    data = _object(payload, {"old", "new"})
    return valid_name(data["old"]), valid_name(data["new"])


def encode_vectors(vectors: list[np.ndarray]) -> list[str]:
    return [base64.b64encode(np.asarray(v, np.float32).tobytes()).decode() for v in vectors]


def decode_vectors(items: object) -> list[np.ndarray]:
    """Base64 float32 embeddings, each finite and of the embedder's size."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_SAMPLES:
        raise InvalidCommandError("bad samples", f"1–{MAX_SAMPLES} embeddings")
    vectors = []
    for item in items:
        try:
            vector = np.frombuffer(base64.b64decode(str(item), validate=True), np.float32)
        except ValueError as err:
            raise InvalidCommandError("bad samples", "not base64") from err
        if vector.size != EMBEDDING_DIM or not np.isfinite(vector).all():
            raise InvalidCommandError("bad samples", f"{EMBEDDING_DIM} finite numbers each")
        vectors.append(vector.copy())
    return vectors


def parse_samples(payload: bytes) -> tuple[str, list[np.ndarray]]:
    data = _object(payload, {"name", "samples"})
    return valid_name(data["name"]), decode_vectors(data["samples"])


def web_commands(
    identity: IdentityStage | None, history: HistoryStore | None
) -> dict[str, CommandSpec]:
    """Commands only the web app sends (none without face sign-in)."""
    if identity is None:
        return {}

    def rename(_controls: Controls, value: tuple[str, str]) -> None:
        old, new = value
        if identity.rename(old, new) and history is not None:
            history.rename(old, new)

    def add_samples(_controls: Controls, value: tuple[str, list[np.ndarray]]) -> None:
        name, vectors = value
        # Samples from a backup or photos of this box: its embedding model made them.
        count = identity.store.add_embeddings(name, vectors, model=identity.model_id)
        identity.reload()
        logger.info("enrolled %s: %d new sample(s), %d in all", name, len(vectors), count)

    return {
        spec.name: spec
        for spec in (
            # Both change who the box recognises (identity commands); a backup import sends
            # one add_samples per person, so its bucket holds a household.
            CommandSpec("rename", parse_rename, rename, burst=5, every_s=10.0, identity=True),
            CommandSpec(
                "add_samples", parse_samples, add_samples, burst=20, every_s=2.0, identity=True
            ),
        )
    }


class IdentityWithHistory:
    """The identity stage for remote commands, whose ``forget`` also erases the history."""

    def __init__(self, identity: IdentityControl, history: HistoryStore) -> None:
        self.identity = identity
        self.history = history

    def enroll_from_camera(self, name: str) -> None:
        self.identity.enroll_from_camera(name)

    def forget(self, name: str) -> bool:
        removed = self.identity.forget(name)
        erased = self.history.forget(name.strip())
        if erased:
            logger.info("erased %d history row(s) of %s", erased, name)
        return removed
