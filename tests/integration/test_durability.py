"""The user and preference stores survive kill -9 at any moment.

A writer process enrols users (UserStore.add_embeddings) and records
preferences (PreferenceStore.record) as fast as it can, printing an
acknowledgement line after each call returns (the commit). It is killed with
SIGKILL at a random moment, 100 times, against the same database files. After
every kill both stores must open, pass ``PRAGMA integrity_check``, and hold
every acknowledged write, whole (an enrolment's samples all or none).

To keep 100 kills fast, the writers are forked from one zygote process that has
already imported the stores (a fresh interpreter per kill costs half a second
here); each forked writer opens its own connections, like a restarted daemon.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("edge.identify.store")

from edge.identify.store import UserStore
from edge.music.preferences import PreferenceStore

KILLS = 100
SAMPLES = 3  # embeddings per enrolment, stored in one transaction
DIM = 128

ZYGOTE = Path(__file__).resolve().parents[1] / "durability_zygote.py"


def integrity(path: Path) -> str:
    if not path.exists():
        # A writer killed before it created the state folder left nothing to check
        # (and acknowledged nothing); the stores create it on the next open.
        return "ok"
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def kill_one_writer(
    zygote: subprocess.Popen[str], start: int, delay: float, before_open: bool
) -> tuple[list[str], list[str]]:
    """Fork a writer, SIGKILL it after ``delay``; the acknowledged enrolments and preferences."""
    assert zygote.stdin is not None and zygote.stdout is not None
    zygote.stdin.write(f"go {start}\n")
    zygote.stdin.flush()
    # The fork's "pid" and the writer's "open" may arrive in either order.
    seen: list[str] = []
    while not any(line.startswith("pid ") for line in seen):
        seen.append(zygote.stdout.readline().strip())
    pid = int(next(line for line in seen if line.startswith("pid ")).split()[1])
    if not before_open:
        while "open" not in seen:
            seen.append(zygote.stdout.readline().strip())
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    zygote.stdin.write(f"reap {pid}\n")
    zygote.stdin.flush()
    enrolled, preferred = [], []
    for line in iter(zygote.stdout.readline, ""):
        kind, _, number = line.strip().partition(" ")
        if kind == "reaped":
            assert os.WIFSIGNALED(int(number)), "the writer ended before the kill"
            break
        if kind == "enrol":
            enrolled.append(f"u{number}")
        elif kind == "pref":
            preferred.append(number)
    return enrolled, preferred


def test_stores_survive_100_random_kills(tmp_path: Path) -> None:
    state = tmp_path / "state"
    zygote = subprocess.Popen(
        [sys.executable, str(ZYGOTE), str(state), str(SAMPLES), str(DIM)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    rng = random.Random(7)
    enrolled: set[str] = set()
    preferred: set[str] = set()
    killed_before_open = 0
    try:
        for kill in range(KILLS):
            # A tenth of the kills land while the stores open (schema, WAL set-up).
            before_open = kill % 10 == 0
            killed_before_open += before_open
            delay = rng.uniform(0, 0.003 if before_open else 0.1)
            new_enrolled, new_preferred = kill_one_writer(
                zygote, kill * 100_000, delay, before_open
            )
            enrolled.update(new_enrolled)
            preferred.update(new_preferred)

            # After every kill: both stores open, are intact, and hold every ack.
            assert integrity(state / "users.sqlite3") == "ok"
            assert integrity(state / "preferences.sqlite3") == "ok"
            with UserStore(state / "users.sqlite3") as users:
                samples = {record.name: record.samples for record in users.users()}
            assert enrolled <= samples.keys()
            assert set(samples.values()) <= {SAMPLES}  # whole enrolments only
            with PreferenceStore(state / "preferences.sqlite3") as prefs:
                for number in new_preferred:
                    weights = prefs.weights(f"p{number}", "happy")
                    assert weights[f"track:t{number}"] == pytest.approx(1.0)
                    assert weights["genre:pop"] == pytest.approx(0.5)
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
        zygote.stdout.close()

    # The whole history, once more, through the stores' own API.
    with PreferenceStore(state / "preferences.sqlite3") as prefs:
        assert prefs.feedback_count() >= len(preferred)
        for number in preferred:
            assert prefs.feedback_count(f"p{number}") == 1
    with UserStore(state / "users.sqlite3") as users:
        gallery = users.embeddings()
    # Commits whose acknowledgement the kill cut off may be there too; nothing else.
    unacknowledged = len(gallery) - len(enrolled)
    assert all(name.startswith("u") for name in gallery)
    for name in enrolled:
        assert gallery[name].shape == (SAMPLES, DIM)
    # The run must really have written while being killed.
    assert len(enrolled) + len(preferred) >= KILLS
    print(
        f"{KILLS} kills ({killed_before_open} during open): {len(enrolled)} enrolments and "
        f"{len(preferred)} preference updates acknowledged, all present "
        f"(+{unacknowledged} enrolments committed but killed before their acknowledgement)"
    )
