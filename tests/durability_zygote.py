"""Writer zygote for test_durability: forks writers that enrol and record preferences.

Commands on stdin: ``go START`` forks a writer (prints ``pid N``); the writer
opens both stores (prints ``open``), then alternates enrolments and preference
records from number START on, printing ``enrol N`` / ``pref N`` after each
call has returned, until it is killed. ``reap PID`` waits for it and prints
``reaped STATUS``. Run as ``python durability_zygote.py STATE_DIR SAMPLES DIM``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from edge.identify.store import UserStore
from edge.music.preferences import PreferenceStore


def write(state: Path, start: int, samples: int, dim: int) -> None:
    out = sys.stdout.buffer
    users = UserStore(state / "users.sqlite3")
    prefs = PreferenceStore(state / "preferences.sqlite3")
    out.write(b"open\n")
    out.flush()
    for i in range(start, start + 100_000):
        if i % 2 == 0:
            vectors = np.random.default_rng(i).standard_normal((samples, dim)).astype(np.float32)
            users.add_embeddings(f"u{i}", vectors)
            out.write(b"enrol %d\n" % i)
        else:
            prefs.record(f"p{i}", "happy", f"t{i}", "like", genre="pop", artist=f"a{i % 7}")
            out.write(b"pref %d\n" % i)
        out.flush()
    os._exit(0)


def main() -> None:
    state, samples, dim = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out = sys.stdout.buffer
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "go":
            pid = os.fork()
            if pid == 0:
                write(state, int(arg), samples, dim)
            out.write(b"pid %d\n" % pid)
        elif command == "reap":
            _, status = os.waitpid(int(arg), 0)
            out.write(b"reaped %d\n" % status)
        out.flush()


if __name__ == "__main__":
    main()
