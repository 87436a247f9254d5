"""libasound's own error lines (``ALSA lib …`` on stderr), silenced once moodbox has reported.

Without a sound card every attempt to open the mixer makes libasound print about
eight lines straight to stderr, bypassing logging; the player retries with backoff,
so the log would fill with them. After the first failure has been logged (the
lines of that attempt stay: they say what is missing), libasound's error handler
is replaced by one that drops the messages.

The replacement must be C code: SDL calls into libasound from its own hotplug
thread while pygame holds the GIL and waits for that thread, so a Python
(ctypes) callback would deadlock. libc's ``getpid`` serves as the no-op: it
ignores its arguments and has no effect, and every Linux calling convention
lets a caller pass arguments a callee does not read (the caller cleans up).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# Libraries already quietened (path → the library, kept loaded for the process's life).
_installed: dict[str, ctypes.CDLL] = {}


def _libraries() -> list[str]:
    """Every libasound mapped into this process (pygame's wheel links its own copy) and
    the system's, which SDL opens by name for its ALSA driver and closes again after a
    failure: holding it open here keeps the quiet handler for SDL's next attempt."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    found = sorted({line.split()[-1] for line in maps.splitlines() if "libasound" in line})
    system = ctypes.util.find_library("asound")
    if system and system not in found:
        found.append(system)
    return found


def silence_alsa_errors() -> int:
    """Drop libasound's error messages from now on; how many libraries were silenced."""
    try:
        no_op = ctypes.cast(ctypes.CDLL(None).getpid, ctypes.c_void_p)
    except (OSError, AttributeError) as err:
        logger.debug("no C no-op to quieten libasound with: %s", err)
        return 0
    for path in _libraries():
        if path in _installed:
            continue
        try:
            library = ctypes.CDLL(path)
            library.snd_lib_error_set_handler.argtypes = [ctypes.c_void_p]
            library.snd_lib_error_set_handler(no_op)
        except (OSError, AttributeError) as err:
            logger.debug("cannot quieten %s: %s", path, err)
            continue
        _installed[path] = library
    return len(_installed)
