"""Forget a user everywhere moodbox keeps them: the user store, the music state beside it.

`moodbox forget`, an MQTT ``forget`` and the daemon's identity stage all come
here, so "every trace" means one list: embeddings and debug images
(users.sqlite3), feedback and weights (music.sqlite), the now-playing file.
Each SQLite store deletes in one transaction with secure_delete, then VACUUMs
and empties its WAL, so neither free pages nor old WAL frames keep the name or
the vectors. What the running daemon holds in memory and on the broker (the
retained presence, mood and player topics) goes with the ``UserForgotten``
event the identity stage emits afterwards.
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

from edge.identify.store import UserStore
from edge.music.preferences import forget_listener

logger = logging.getLogger(__name__)


def forget_user(store: UserStore, name: str, state_dir: Path | None = None) -> str | None:
    """Delete ``name`` (any case or Unicode form) and their music state; the enrolled name
    that was deleted, or None if nobody had it.

    The music state goes first and the user last: killed in between, the user is
    still enrolled and a second ``forget`` finishes the job. Music state under the
    name is cleared even when nobody is enrolled under it (such a second run).
    """
    enrolled = store.find(name)
    state = store.path.parent if state_dir is None else state_dir
    forget_listener(state, enrolled or unicodedata.normalize("NFC", name).strip())
    if enrolled is None:
        return None
    store.forget(enrolled)
    return enrolled
