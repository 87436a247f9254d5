"""`forget` leaves no trace: not in any file of the state dir, not on the broker.

Issue 16, finding 5: music.sqlite kept the name's feedback and weight rows,
music_now.json still listed them, and the broker kept a retained presence
naming them. This enrols a person from the demo clip, lets the real daemon
recognise them, play music for them and record a skip, then forgets them with a
signed MQTT command, and greps every byte of every file in the state dir
(SQLite files included) for the name and for each stored embedding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from daemon_harness import ROOT, Daemon, daemon_env, env_for, run_cli, stop_cleanly
from mqtt_broker import MosquittoBroker, Recorder
from music_audio import write_wav
from paho.mqtt.enums import CallbackAPIVersion

from edge.identify.store import UserStore
from edge.music.preferences import NOW_PLAYING, PREFERENCES_DB, PreferenceStore
from edge.publish.authority import sign_command

NAME = "Zelda Quist"
KEY = "forget-test-key-0123456789abcdef"
PREFIX = "moodbox/moodbox"
FRAMES = [ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg" for i in range(5)]


def enrol(tmp_path: Path, state: Path) -> list[bytes]:
    """Enrol NAME from the demo clip's first portrait with the real CLI; the stored vectors."""
    result = run_cli(tmp_path, state, "enroll", NAME, "--images", *map(str, FRAMES))
    assert result.returncode == 0, result.stderr
    with UserStore.in_state_dir(state) as store:
        vectors = store.embeddings()[NAME]
    return [np.ascontiguousarray(v, dtype=np.float32).tobytes() for v in vectors]


def traces(state: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which needles occur in which files under ``state`` (raw bytes, any file)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [label for label, needle in needles.items() if needle in data]
        if hits:
            found[path.name] = hits
    return found


def needles_for(vectors: list[bytes]) -> dict[str, bytes]:
    needles = {"name": NAME.encode(), "name, case-folded": NAME.casefold().encode()}
    for index, vector in enumerate(vectors):
        needles[f"vector {index}"] = vector
        needles[f"vector {index}, first 32 bytes"] = vector[:32]
    return needles


def test_forget_over_mqtt_removes_every_trace(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    state = tmp_path / "state"
    vectors = enrol(tmp_path, state)
    needles = needles_for(vectors)
    assert "users.sqlite3" in traces(state, needles)  # the check finds what is there
    music = tmp_path / "music"
    for index, mood in enumerate(("happy", "sad", "neutral", "angry", "surprise", "fear")):
        write_wav(music / mood / f"{mood}.wav", seconds=30, freq=300 + 60 * index)
    env = env_for(
        tmp_path,
        ROOT / "demo" / "faces",
        STATE_DIRECTORY=str(state),
        MOODBOX_CAMERA_FPS="10",
        MOODBOX_MUSIC_FOLDERS=f"[{music}]",
        MOODBOX_IDENTIFY_ENABLED="true",
        MOODBOX_MQTT_HOST=mosquitto.host,
        MOODBOX_MQTT_PORT=str(mosquitto.port),
        MOODBOX_MQTT_IDENTITY_COMMANDS="true",
        MOODBOX_COMMAND_KEY=KEY,
    )
    daemon = Daemon(tmp_path, env=env)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="home-assistant")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        daemon.wait_for(
            f"{NAME} signed in",
            lambda: any(
                e.get("user") == NAME for e in daemon.events if e["type"] == "user_signed_in"
            ),
        )
        daemon.wait_for(
            "a track for them",
            lambda: any(
                NAME in str(e.get("user")) for e in daemon.events if e["type"] == "track_started"
            ),
        )
        assert NAME in json.loads((state / NOW_PLAYING).read_text())["users"]
        client.publish(f"{PREFIX}/player/set", "NEXT", qos=1).wait_for_publish(5)
        with PreferenceStore(state / PREFERENCES_DB) as prefs:
            deadline = time.monotonic() + 30
            while prefs.feedback_count(NAME) == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert prefs.feedback_count(NAME) >= 1
        presence = Recorder(mosquitto, f"{PREFIX}/presence")
        assert NAME in presence.topic(f"{PREFIX}/presence").text
        presence.close()

        forget = sign_command(KEY.encode(), PREFIX, "forget", NAME.upper())  # any case
        client.publish(f"{PREFIX}/forget/set", forget, qos=1).wait_for_publish(5)
        daemon.wait_log(f"forgot user {NAME}", timeout=60)
        time.sleep(3)  # a few more frames of the same face: now unknown
        stop_cleanly(daemon)
    finally:
        client.disconnect()
        client.loop_stop()
        daemon.close()

    assert traces(state, needles) == {}
    retained = Recorder(mosquitto, f"{PREFIX}/#")
    time.sleep(1)
    leaked = [m.topic for m in retained.messages if m.retain and NAME.encode() in m.payload]
    retained.close()
    assert leaked == []
    assert json.loads((state / NOW_PLAYING).read_text())["users"] == []


def test_cli_forget_removes_music_state_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    vectors = enrol(tmp_path, state)
    with PreferenceStore(state / PREFERENCES_DB) as prefs:
        for kind in ("like", "skip", "replay"):
            prefs.record(NAME, "happy", "music/happy/a.wav", kind, genre="pop", artist="Ann")
        prefs.record(None, "happy", "music/happy/a.wav", "like")
    (state / NOW_PLAYING).write_text(json.dumps({"track_id": "a", "users": [NAME, "Bo"]}))
    # The other Unicode form and another case name the same person.
    result = run_cli(tmp_path, state, "forget", NAME.lower())
    assert result.returncode == 0, result.stderr
    assert traces(state, needles_for(vectors)) == {}
    assert json.loads((state / NOW_PLAYING).read_text())["users"] == ["Bo"]
    with PreferenceStore(state / PREFERENCES_DB) as prefs:
        assert prefs.feedback_count(None) == 1  # the household's own feedback stays


def test_cli_forget_beside_a_running_daemon_clears_its_retained_presence(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    enrol(tmp_path, state)
    env = env_for(
        tmp_path,
        ROOT / "demo" / "faces",
        STATE_DIRECTORY=str(state),
        MOODBOX_CAMERA_FPS="10",
        MOODBOX_IDENTIFY_ENABLED="true",
        MOODBOX_MUSIC_ENABLED="false",
        MOODBOX_MQTT_HOST=mosquitto.host,
        MOODBOX_MQTT_PORT=str(mosquitto.port),
    )
    daemon = Daemon(tmp_path, env=env)
    presence = Recorder(mosquitto, f"{PREFIX}/presence")
    try:
        named = presence.wait_for(lambda m: NAME.encode() in m.payload, timeout_s=120)
        result = subprocess.run(
            [sys.executable, "-m", "edge", "forget", NAME],
            cwd=tmp_path,
            env=daemon_env(tmp_path, STATE_DIRECTORY=str(state)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        # The daemon notices within a couple of seconds and republishes presence without them.
        presence.wait_for(
            lambda m: NAME.encode() not in m.payload,
            timeout_s=30,
            after=presence.messages.index(named) + 1,
        )
        daemon.wait_for(
            "user_forgotten", lambda: any(e["type"] == "user_forgotten" for e in daemon.events)
        )
        stop_cleanly(daemon)
    finally:
        presence.close()
        daemon.close()
    retained = Recorder(mosquitto, f"{PREFIX}/#")
    time.sleep(1)
    leaked = [m.topic for m in retained.messages if m.retain and NAME.encode() in m.payload]
    retained.close()
    assert leaked == []


def test_a_forget_killed_half_way_is_finished_by_the_next_one(tmp_path: Path) -> None:
    """The music state goes before the user: a second forget still finds them enrolled;
    and music rows left under a name nobody is enrolled as go too."""
    from edge.identify.forget import forget_user

    state = tmp_path / "state"
    with PreferenceStore(state / PREFERENCES_DB) as prefs:
        prefs.record("Orphan", "sad", "t1", "skip")
    with UserStore.in_state_dir(state) as store:
        store.add_embeddings("Ada", np.eye(2, 128, dtype=np.float32))
        assert forget_user(store, "orphan") is None  # not enrolled, music rows cleared anyway
        assert forget_user(store, "ADA") == "Ada"
    with PreferenceStore(state / PREFERENCES_DB) as prefs:
        assert prefs.feedback_count("Orphan") == 0
