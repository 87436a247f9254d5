"""People sync between real daemons on one real mosquitto on loopback: how long it takes.

Starts mosquitto and two `moodbox run` daemons (rooms.sync on, each its own
state dir, device id and replay camera of the demo clip) and prints:

- enrol → in the other box's store: a person committed to A's store (what
  `moodbox enroll` does), until B's store holds them; forget → gone at B;
- enrol → signed in at B: the demo clip's astronaut enrolled at A, until B
  signs her in on its camera (the identity stage re-reads the store every 2 s);
- a box that was away: C ran for the first enrolments, was stopped while others
  were forgotten and enrolled, and started again: from its "connected" log line
  until its store matches; D never ran before (an empty store), the same.

Usage: .venv/bin/python scripts/bench/bench_sync.py [ROUNDS]   (mosquitto from PATH or /usr/sbin)
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the test harness: real mosquitto, real daemon

from daemon_harness import Daemon, daemon_env, env_for  # noqa: E402
from mqtt_broker import MosquittoBroker  # noqa: E402

from edge.identify.forget import forget_user  # noqa: E402
from edge.identify.store import UserStore  # noqa: E402

KEY = "bench-household-key-0123456789abcdef0123"
FRAMES = [ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg" for i in range(5)]


def wait(condition: Callable[[], bool], timeout_s: float = 60.0, step_s: float = 0.005) -> float:
    """Seconds until ``condition`` holds (SystemExit after ``timeout_s``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise SystemExit(f"timed out after {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - start


def names(state: Path) -> set[str]:
    with UserStore.in_state_dir(state) as store:
        return {user.name for user in store.users()}


class Boxes:
    def __init__(self, tmp: Path, broker: MosquittoBroker) -> None:
        self.tmp, self.broker, self.runs = tmp, broker, 0

    def state(self, box: str) -> Path:
        return self.tmp / f"state-{box}"

    def start(self, box: str, *, in_step: bool = True) -> Daemon:
        """A daemon for ``box``; with ``in_step``, once it has read the household's people."""
        self.runs += 1
        folder = self.tmp / f"run-{self.runs}-{box}"
        folder.mkdir()
        env = env_for(
            folder,
            ROOT / "demo" / "faces",
            STATE_DIRECTORY=str(self.state(box)),
            MOODBOX_GENERAL_DEVICE_ID=box,
            MOODBOX_CAMERA_FPS="10",
            MOODBOX_IDENTIFY_ENABLED="true",
            MOODBOX_MUSIC_ENABLED="false",
            MOODBOX_MQTT_HOST=self.broker.host,
            MOODBOX_MQTT_PORT=str(self.broker.port),
            MOODBOX_ROOMS_SYNC="true",
            MOODBOX_HOUSEHOLD_KEY=KEY,
        )
        daemon = Daemon(folder, env=env)
        if in_step:
            daemon.wait_log("people sync: in step with the household")
        return daemon


def report(label: str, values: list[float]) -> None:
    values_ms = sorted(v * 1000 for v in values)
    print(
        f"{label}: median {statistics.median(values_ms):.0f} ms, max {values_ms[-1]:.0f} ms "
        f"(n={len(values_ms)})"
    )


def astronaut(tmp: Path) -> np.ndarray:
    """The demo clip's first portrait, enrolled with the real CLI into a scratch store."""
    scratch = tmp / "scratch"
    subprocess.run(
        [sys.executable, "-m", "edge", "enroll", "x", "--images", *map(str, FRAMES)],
        cwd=tmp,
        env=daemon_env(tmp, STATE_DIRECTORY=str(scratch)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    with UserStore.in_state_dir(scratch) as store:
        return store.embeddings()["x"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "broker").mkdir()
        broker = MosquittoBroker(tmp / "broker")
        broker.start()
        boxes = Boxes(tmp, broker)
        a, b, c = boxes.start("living"), boxes.start("kitchen"), boxes.start("hall")
        daemons = [a, b, c]
        try:
            store_a = UserStore.in_state_dir(boxes.state("living"))
            enrolled, forgotten = [], []
            for index in range(rounds):
                person = f"Person {index}"
                store_a.add_embeddings(person, rng.standard_normal((5, 128)).astype(np.float32))
                enrolled.append(wait(lambda p=person: p in names(boxes.state("kitchen"))))
            report("enrol at A → in B's store", enrolled)
            for index in range(rounds // 2):
                person = f"Person {index}"
                forget_user(store_a, person)
                forgotten.append(wait(lambda p=person: p not in names(boxes.state("kitchen"))))
            report("forget at A → gone from B's store", forgotten)

            vectors = astronaut(tmp)
            store_a.add_embeddings("Eileen", vectors)
            start = time.monotonic()
            b.wait_for(
                "Eileen signed in at B",
                lambda: any(e.get("user") == "Eileen" for e in b.events),
                timeout=60,
            )
            print(f"enrol at A → signed in at B: {time.monotonic() - start:.2f} s")

            c.signal(signal.SIGTERM)
            c.wait()
            daemons.remove(c)
            for index in range(rounds // 2, rounds):
                forget_user(store_a, f"Person {index}")
            for index in range(3):
                store_a.add_embeddings(
                    f"Later {index}", rng.standard_normal((5, 128)).astype(np.float32)
                )
            want = names(boxes.state("living"))
            wait(lambda: names(boxes.state("kitchen")) == want)
            for box, label in (("hall", "C, away during the changes"), ("porch", "D, never ran")):
                daemon = boxes.start(box, in_step=False)
                daemons.append(daemon)
                daemon.wait_log("people sync: connected")
                state = boxes.state(box)
                took = wait(lambda s=state: names(s) == want, timeout_s=60)
                print(f"{label}: its store matches {took:.2f} s after its 'connected' log line")
            store_a.close()
        finally:
            for daemon in daemons:
                daemon.close()
            broker.stop()


if __name__ == "__main__":
    main()
