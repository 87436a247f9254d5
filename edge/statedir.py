"""The state directory and the files in it: private to the owner, never loosened or followed.

It holds face embeddings and listening habits, so moodbox creates it 0700 and
every file in it 0600. A directory that already exists belongs to whoever made
it (systemd's StateDirectory=, the administrator): moodbox never changes its
mode, but refuses to run in one that other users can write to, since anyone
who can write there can swap the user store for their own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.errors import ConfigError

PRIVATE_FILE_MODE = 0o600


def make_state_dir(path: Path) -> Path:
    """The state directory: created 0700 if missing; ConfigError if others may write to it."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as err:
        raise ConfigError(f"state directory {path}: cannot create it: {err.strerror}") from err
    check_state_dir(path)
    return path


def check_state_dir(path: Path) -> None:
    """ConfigError unless ``path`` is a directory that neither group nor others can write."""
    try:
        info = path.stat()  # a symlink to the real directory is fine; its target is checked
    except OSError as err:
        raise ConfigError(f"state directory {path}: {err.strerror}") from err
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"state directory {path} is not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise ConfigError(
            f"state directory {path} is mode {mode:04o}: other users can write to it, so "
            "they could replace the user store; point general.state_dir at a private "
            f"directory (moodbox creates a missing one 0700), or fix it: chmod 700 {path}"
        )


@contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside (SQLite databases and their -wal/-shm siblings) are owner-only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def tighten(path: Path) -> None:
    """Make an existing regular file of ours 0600 (a file an older moodbox left 0644).

    ``lstat`` first: a symlink is left alone, so nothing outside is ever changed.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) & 0o077
    ):
        path.chmod(PRIVATE_FILE_MODE)


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` in a new 0600 file (OSError on failure)."""
    tmp = path.with_name(path.name + ".tmp")
    # O_NOFOLLOW: a symlink planted at the temporary name is not written through.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # it may have existed with another mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
    finally:
        if fd != -1:
            os.close(fd)
    tmp.replace(path)
