"""Two real daemons, one real mosquitto: people enrolled at one box are known at the other.

Each box has its own replay camera (the demo clip), state dir and
``general.device_id``. Enrolment and forget go through the real CLI against one
box's state dir, as a user on that box would run them; the boxes share only the
broker. A recorder subscribed to everything checks what a client without the
household key sees. Waits are generous upper bounds (a loaded 2-core machine
starts a daemon in tens of seconds); the figures are printed, never asserted
tightly (scripts/bench/bench_sync.py measures them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from daemon_harness import ROOT, Daemon, env_for, run_cli, stop_cleanly
from mqtt_broker import MosquittoBroker, Received, Recorder, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edge.identify.store import SyncRecord, UserStore
from edge.identify.sync import HouseholdCipher, RefusedError, encode_record

NAME = "Zelda Quist"
KEY = "people-sync-test-household-key-0123456789"
HOUSEHOLD = "moodbox/household"
FRAMES = [ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg" for i in range(5)]


def box_env(tmp_path: Path, broker: MosquittoBroker, box: str, **extra: str) -> dict[str, str]:
    return env_for(
        tmp_path,
        ROOT / "demo" / "faces",
        STATE_DIRECTORY=str(tmp_path.parent / f"state-{box}"),
        MOODBOX_GENERAL_DEVICE_ID=box,
        MOODBOX_CAMERA_FPS="10",
        MOODBOX_IDENTIFY_ENABLED="true",
        MOODBOX_MUSIC_ENABLED="false",
        MOODBOX_MQTT_HOST=broker.host,
        MOODBOX_MQTT_PORT=str(broker.port),
        MOODBOX_MQTT_RECONNECT_MIN_S="0.2",
        MOODBOX_MQTT_RECONNECT_MAX_S="1",
        MOODBOX_ROOMS_SYNC="true",
        MOODBOX_HOUSEHOLD_KEY=KEY,
        **extra,
    )


def start_box(
    tmp_path: Path, broker: MosquittoBroker, box: str, run: str = "", **extra: str
) -> Daemon:
    """A daemon in its own working folder (its notify socket lives there)."""
    folder = tmp_path / f"run-{box}{run}"
    folder.mkdir()
    return Daemon(folder, env=box_env(folder, broker, box, **extra))


def cli(tmp_path: Path, state: Path, *args: str) -> str:
    result = run_cli(tmp_path, state, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def names(state: Path) -> list[str]:
    with UserStore.in_state_dir(state) as store:
        return [user.name for user in store.users()]


def vector_bytes(state: Path) -> list[bytes]:
    with UserStore.in_state_dir(state) as store:
        return [np.ascontiguousarray(v, "<f4").tobytes() for v in store.embeddings()[NAME]]


def signed_in(daemon: Daemon, name: str) -> bool:
    return any(e.get("user") == name for e in daemon.events if e["type"] == "user_signed_in")


def test_enrol_at_one_box_forget_at_the_other_reaches_a_box_that_was_off(
    mosquitto: MosquittoBroker, recorder: Recorder, tmp_path: Path
) -> None:
    state_a, state_b = tmp_path / "state-living", tmp_path / "state-kitchen"
    a = start_box(tmp_path, mosquitto, "living")
    b = start_box(tmp_path, mosquitto, "kitchen")
    restarted: Daemon | None = None
    try:
        for box in (a, b):
            box.wait_log("people sync: in step with the household")
        cli(tmp_path, state_a, "enroll", NAME, "--images", *map(str, FRAMES))
        enrolled = time.monotonic()
        assert wait_until(lambda: names(state_b) == [NAME], 30), "B never got the person"
        synced = time.monotonic() - enrolled
        assert np.array_equal(vector_bytes(state_a), vector_bytes(state_b))
        b.wait_for(f"{NAME} signed in at B", lambda: signed_in(b, NAME))
        recognised = time.monotonic() - enrolled
        print(
            f"\nafter `moodbox enroll` at A returned: in B's store {synced:.2f} s, "
            f"signed in at B {recognised:.2f} s"
        )

        stop_cleanly(a)  # A is off while B forgets
        cli(tmp_path, state_b, "forget", NAME)
        b.wait_log("people sync: sharing a forget")
        assert names(state_a) == [NAME]  # A has not heard yet

        restarted = start_box(tmp_path, mosquitto, "living", run="-again")
        restarted.wait_log("people sync: connected")
        online = time.monotonic()
        restarted.wait_log(f"people sync: forgot {NAME}", timeout=60)
        converged = time.monotonic() - online
        print(f"A back online → forgotten at A {converged:.2f} s")
        assert names(state_a) == []
        time.sleep(3)  # more frames of the same face, a reload, a reconcile: still gone
        assert names(state_a) == []
        assert names(state_b) == []
        for box in (b, restarted):
            assert box.count_logs("Traceback") == 0
        stop_cleanly(restarted)
        stop_cleanly(b)
    finally:
        for daemon in (a, b, restarted):
            if daemon is not None:
                daemon.close()
    # Neither box's files keep the name (the tombstone holds an opaque id and a version).
    for state in (state_a, state_b):
        for path in (p for p in state.rglob("*") if p.is_file()):
            assert NAME.encode() not in path.read_bytes(), path
    retained = [m for m in recorder.messages if m.topic.startswith(f"{HOUSEHOLD}/people/")]
    assert len({m.topic for m in retained}) == 1  # one person, one topic, ever


def test_a_client_without_the_key_sees_ciphertext_and_cannot_add_a_person(
    mosquitto: MosquittoBroker, recorder: Recorder, tmp_path: Path
) -> None:
    state = tmp_path / "state-living"
    # The box's stats every second, to read the refusals from.
    box = start_box(tmp_path, mosquitto, "living", MOODBOX_MQTT_STATS_INTERVAL_S="1")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        box.wait_log("people sync: in step with the household")
        cli(tmp_path, state, "enroll", NAME, "--images", *map(str, FRAMES))
        people = recorder.wait_for(lambda m: m.topic.startswith(f"{HOUSEHOLD}/people/"), 30)
        time.sleep(2)  # the box signs the person in: names on its own presence topics
        vectors_sent = vector_bytes(state)
        # Whole vectors, and the first four numbers of each.
        numbers = vectors_sent + [v[:16] for v in vectors_sent]
        assert not [m.topic for m in recorder.messages if any(n in m.payload for n in numbers)]
        name_forms = (NAME.encode(), NAME.casefold().encode(), NAME.upper().encode())
        household = [m for m in recorder.messages if m.topic.startswith(HOUSEHOLD)]
        assert household
        assert not [m.topic for m in household if any(n in m.payload for n in name_forms)]
        assert not [m.topic for m in household if "zelda" in m.topic.casefold()]
        # magic, nonce, plain text padded to 4 KiB steps, tag: the size says little.
        assert (len(people.payload) - 4 - 12 - 16) % 4096 == 0
        vectors = np.random.default_rng(1).standard_normal((3, 128)).astype(np.float32)

        # A person sealed with another key, a genuine message moved to another person's
        # topic, a genuine message altered, and garbage: all refused, none added.
        other = HouseholdCipher(b"not-the-household-key-but-long-enough-000")
        fake_id = "f" * 32
        fake_topic = f"{HOUSEHOLD}/people/{fake_id}"
        forged = other.seal(
            fake_topic, encode_record(SyncRecord(fake_id, 99, "intruder", "Mallory", vectors))
        )
        altered = bytearray(people.payload)
        altered[40] ^= 0xFF
        for topic, payload in (
            (fake_topic, forged),
            (f"{HOUSEHOLD}/people/{'e' * 32}", people.payload),
            (people.topic, bytes(altered)),
            (f"{HOUSEHOLD}/people/{'d' * 32}", b'{"name": "Mallory"}'),
        ):
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        box.wait_for(
            "four refusals in the stats",
            lambda: any(
                json.loads(m.payload).get("sync_refused", 0) >= 4
                for m in recorder.on("moodbox/living/stats")
            ),
            timeout=60,
        )
        assert box.count_logs("people sync: refused a message") >= 1
        assert names(state) == [NAME]
        # The altered copy replaced the genuine one on the broker; the box holds that
        # person, so it put its own back at once (readable with the key, and only so).
        mine = HouseholdCipher(KEY.encode())
        assert wait_until(lambda: _opens(mine, recorder.latest(people.topic)), 10)
        assert box.count_logs("Traceback") == 0
        stop_cleanly(box)
    finally:
        client.disconnect()
        client.loop_stop()
        box.close()


def _opens(cipher: HouseholdCipher, message: Received | None) -> bool:
    if message is None:
        return False
    try:
        return NAME.encode() in cipher.open(message.topic, message.payload)
    except RefusedError:
        return False
