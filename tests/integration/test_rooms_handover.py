"""Two real daemons, one real mosquitto: a person walks from one room to the other.

Each box has its own replay camera (a folder of the demo clip's frames), state
dir and ``general.device_id``, and plays the demo music through the real
pygame mixer (SDL's dummy audio driver). The person "walks" when the test
swaps the two folders' pictures: the living room's camera then sees only the
cup of coffee, the kitchen's sees the person. A recorder subscribed to
everything checks what the broker carries. Waits are generous upper bounds;
the figures are printed, never asserted tightly.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import jinja2
import paho.mqtt.client as mqtt
from daemon_harness import ROOT, Daemon, env_for, run_cli, stop_cleanly
from mqtt_broker import MosquittoBroker, Recorder, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edge.identify.sync import HouseholdCipher
from edge.rooms import Offer, listening_topic, seal_offer

NAME = "Zelda Quist"
KEY = "rooms-test-household-key-0123456789abcdef"
HOUSEHOLD = "moodbox/household"
DEMO = ROOT / "demo" / "faces"
PERSON = [DEMO / f"frame_{i:03d}.jpg" for i in range(10)]  # the astronaut
EMPTY = [DEMO / f"frame_{i:03d}.jpg" for i in (10, 11, 12)]  # a cup of coffee, no face
FRAMES = 10


def show(folder: Path, pictures: list[Path]) -> None:
    """What the camera of ``folder`` sees from its next pass on (atomic per file)."""
    folder.mkdir(exist_ok=True)
    for i in range(FRAMES):
        target = folder / f"f{i:03d}.jpg"
        temporary = folder / f".f{i:03d}.tmp"
        shutil.copy(pictures[i % len(pictures)], temporary)
        temporary.replace(target)


def start_box(tmp_path: Path, broker: MosquittoBroker, box: str, room: str) -> Daemon:
    folder = tmp_path / f"run-{box}"
    folder.mkdir()
    env = env_for(
        folder,
        tmp_path / f"camera-{box}",
        STATE_DIRECTORY=str(tmp_path / f"state-{box}"),
        MOODBOX_GENERAL_DEVICE_ID=box,
        MOODBOX_CAMERA_FPS="5",
        MOODBOX_IDENTIFY_ENABLED="true",
        MOODBOX_IDENTIFY_SIGN_OUT_AFTER_S="3",
        MOODBOX_MUSIC_ENABLED="true",
        MOODBOX_MQTT_HOST=broker.host,
        MOODBOX_MQTT_PORT=str(broker.port),
        MOODBOX_MQTT_RECONNECT_MIN_S="0.2",
        MOODBOX_MQTT_RECONNECT_MAX_S="1",
        MOODBOX_MQTT_STATS_INTERVAL_S="1",
        MOODBOX_ROOMS_ROOM=room,
        MOODBOX_ROOMS_PRESENCE="true",
        MOODBOX_ROOMS_HANDOVER="true",
        MOODBOX_ROOMS_HANDOVER_FADE_MS="500",
        MOODBOX_HOUSEHOLD_KEY=KEY,
        MOODBOX_WEB_ENABLED="false",
    )
    return Daemon(folder, env=env)


def enrol(tmp_path: Path, state: Path) -> None:
    result = run_cli(tmp_path, state, "enroll", NAME, "--images", *map(str, PERSON[:5]))
    assert result.returncode == 0, result.stderr


def events(daemon: Daemon, kind: str) -> list[dict[str, object]]:
    return [e for e in daemon.events if e["type"] == kind]


def presence(recorder: Recorder) -> dict[str, object]:
    message = recorder.latest(f"{HOUSEHOLD}/presence")
    return {} if message is None else json.loads(message.payload)


def room_of(recorder: Recorder, name: str) -> str | None:
    people = presence(recorder).get("people", {})
    assert isinstance(people, dict)
    entry = people.get(name)
    return None if entry is None else entry["room"]


def test_the_music_follows_the_person_from_room_to_room(
    mosquitto: MosquittoBroker, recorder: Recorder, tmp_path: Path
) -> None:
    for box in ("living", "kitchen"):  # enrolled at both (the people sync is tested apart)
        enrol(tmp_path, tmp_path / f"state-{box}")
    show(tmp_path / "camera-living", PERSON)
    show(tmp_path / "camera-kitchen", EMPTY)
    a = start_box(tmp_path, mosquitto, "living", "Living room")
    b = start_box(tmp_path, mosquitto, "kitchen", "Kitchen")
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    intruder.connect(mosquitto.host, mosquitto.port)
    intruder.loop_start()
    try:
        a.wait_for("the person signed in at A", lambda: bool(events(a, "user_signed_in")))
        a.wait_for("music at A", lambda: bool(events(a, "track_started")))
        assert wait_until(lambda: room_of(recorder, NAME) == "Living room", 30)
        b.wait_log("rooms: presence and handover as room 'Kitchen'")
        time.sleep(2)  # into the track

        # An offer sealed with another key, and one replayed onto another box's topic:
        # refused and counted, nothing plays.
        other = HouseholdCipher(b"not-the-household-key-but-long-enough-000")
        topic = listening_topic(HOUSEHOLD, "garage")
        forged = Offer("garage", 1, time.time(), "music/angry/demo-angry-1.ogg", 0.0,
                       "angry", {NAME: time.time()})  # fmt: skip
        genuine = recorder.latest(listening_topic(HOUSEHOLD, "living"))
        assert genuine is not None
        for where, payload in ((topic, seal_offer(other, topic, forged)), (topic, genuine.payload)):
            intruder.publish(where, payload, qos=1, retain=True).wait_for_publish(5)
        b.wait_for(
            "two refusals in B's stats",
            lambda: any(
                json.loads(m.payload).get("rooms_refused", 0) >= 2
                for m in recorder.on("moodbox/kitchen/stats")
            ),
            timeout=60,
        )
        assert not events(b, "track_started")

        # The walk.
        show(tmp_path / "camera-living", EMPTY)
        show(tmp_path / "camera-kitchen", PERSON)
        walked = time.monotonic()
        b.wait_for("the person signed in at B", lambda: bool(events(b, "user_signed_in")))
        signed_in = time.monotonic()
        b.wait_log("rooms: continuing", timeout=60)
        line = next(line for line in b.logs if "rooms: continuing" in line)
        match = re.search(r"continuing '(.+)' for (.+) at ([0-9.]+) s", line)
        assert match is not None, line
        title, who, position = match.group(1), match.group(2), float(match.group(3))
        assert who == NAME
        # B may have started a track of its own for the face before it knew who it was.
        b.wait_for(
            "A's track at B",
            lambda: any(e["title"] == title for e in events(b, "track_started")),
            timeout=30,
        )
        started = time.monotonic()
        # The track that played in the living room when the person left.
        assert title in {e["title"] for e in events(a, "track_started")}, title

        a.wait_log(f"rooms: {NAME} took their music to kitchen", timeout=30)
        a.wait_for(
            "A's music stopped",
            lambda: (
                bool(events(a, "player_state"))
                and events(a, "player_state")[-1]["state"] == "stopped"
            ),
            timeout=30,
        )
        faded = time.monotonic()
        assert wait_until(lambda: room_of(recorder, NAME) == "Kitchen", 30)
        print(
            f"\nwalk → signed in at B {signed_in - walked:.2f} s; B signed in → B plays "
            f"{title!r} from {position:.1f} s: {started - signed_in:.2f} s; A stopped "
            f"{faded - walked:.2f} s after the walk"
        )
        time.sleep(2)  # A stays quiet with nobody in view
        assert events(a, "player_state")[-1]["state"] == "stopped"

        # Home Assistant: a sensor per person whose state is the room.
        discovery = recorder.latest("homeassistant/device/moodbox_household/config")
        assert discovery is not None
        components = json.loads(discovery.payload)["cmps"]
        sensors = [c for c in components.values() if c.get("name") == f"{NAME} room"]
        assert len(sensors) == 1 and sensors[0]["state_topic"] == f"{HOUSEHOLD}/presence"
        # Its template, rendered by Jinja as Home Assistant does, on the retained presence.
        template = jinja2.Environment(autoescape=False).from_string(  # noqa: S701 - not HTML
            sensors[0]["value_template"]
        )
        assert template.render(value_json=presence(recorder)) == "Kitchen"
        assert template.render(value_json={"people": {}}) == "away"

        # What the broker carried: the listening offers are opaque, names only on presence.
        offers = [m for m in recorder.messages if m.topic.startswith(f"{HOUSEHOLD}/listening/")]
        assert offers
        assert all(m.payload.startswith(b"MBP1") for m in offers if m.payload)
        named = {m.topic for m in recorder.messages if NAME.encode() in m.payload}
        household = {t for t in named if t.startswith(HOUSEHOLD)}
        assert household <= {
            f"{HOUSEHOLD}/presence",
            f"{HOUSEHOLD}/rooms/living",
            f"{HOUSEHOLD}/rooms/kitchen",
        }, household
        for box in (a, b):
            assert box.count_logs("Traceback") == 0
        stop_cleanly(a)
        stop_cleanly(b)
        rooms = presence(recorder).get("rooms", {})
        assert isinstance(rooms, dict)
        assert wait_until(
            lambda: (
                recorder.latest(f"{HOUSEHOLD}/rooms/kitchen") is not None
                and recorder.latest(f"{HOUSEHOLD}/rooms/kitchen").payload == b"offline"
            ),
            10,
        )
    finally:
        intruder.disconnect()
        intruder.loop_stop()
        a.close()
        b.close()
