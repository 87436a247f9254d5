"""Rooms: the household's presence, sealed listening offers, when music moves and when not."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from edge.classify import EMOTIONS
from edge.config import MoodboxConfig, MusicConfig
from edge.errors import ConfigError
from edge.events import FaceLost, MoodChanged, PlayerState
from edge.identify.sync import HouseholdCipher, RefusedError
from edge.music.controller import MusicController
from edge.music.library import Library, Track
from edge.music.moods import MOOD_POINTS
from edge.music.player import FakePlayer
from edge.publish.discovery import build_household_discovery
from edge.publish.rooms import RoomsService
from edge.rooms import (
    HandoverBook,
    Offer,
    RoomReport,
    TakeOver,
    decode_room,
    household_presence,
    listening_topic,
    open_offer,
    room_topic,
    seal_offer,
)

KEY = HouseholdCipher(b"a household key that is long enough to use....")
H = "moodbox/household"


def test_presence_puts_a_person_where_a_camera_sees_them_else_where_they_came_last() -> None:
    living = RoomReport("living", "Living room", present={"ann": 100.0, "bob": 50.0}, time=101)
    kitchen = RoomReport(
        "kitchen", "Kitchen", present={"ann": 90.0, "bob": 80.0},
        in_view=frozenset({"ann"}), time=102,
    )  # fmt: skip
    garage = RoomReport("garage", "Garage", online=False)
    presence = household_presence({"living": living, "kitchen": kitchen, "garage": garage})
    # ann: still signed in at the living room, but the kitchen's camera sees her now.
    assert presence["people"]["ann"]["room"] == "Kitchen"
    # bob: signed in at both (sign-out waits), seen by neither: where he came last.
    assert presence["people"]["bob"]["room"] == "Kitchen"
    assert presence["rooms"]["garage"] == {"room": "Garage", "online": False, "present": []}
    # The same reports in any order give the same merge (every box computes it).
    again = household_presence({"garage": garage, "kitchen": kitchen, "living": living})
    assert json.dumps(again) == json.dumps(presence)


def test_room_reports_round_trip_and_bad_ones_are_refused() -> None:
    report = RoomReport("kitchen", "Kitchen", present={"ann": 5.0}, in_view=frozenset({"ann"}))
    topic = room_topic(H, "kitchen")
    assert decode_room(topic, report.encode()) == dataclasses.replace(report, time=0.0)
    assert decode_room(topic, b"offline") == RoomReport("kitchen", "kitchen", online=False)
    assert decode_room(topic, b"") is None
    with pytest.raises(ValueError, match="this box"):
        decode_room(room_topic(H, "living"), report.encode())  # moved to another box's topic
    for bad in (b"{", b"[]", b'{"device_id":"kitchen","room":1}', b"x" * 20000):
        with pytest.raises(ValueError):
            decode_room(topic, bad)


def offer(origin: str = "living", seq: int = 1, **changes: object) -> Offer:
    base = Offer(origin, seq, 1000.0, "happy/1", 30.0, "happy", {"ann": 995.0})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_an_offer_is_sealed_to_its_topic_and_padded() -> None:
    topic = listening_topic(H, "living")
    sealed = seal_offer(KEY, topic, offer())
    assert b"ann" not in sealed and b"happy" not in sealed
    assert (len(sealed) - 4 - 12 - 16) % 1024 == 0
    assert open_offer(KEY, topic, sealed) == offer()
    with pytest.raises(RefusedError, match="authentication"):
        open_offer(KEY, listening_topic(H, "kitchen"), sealed)  # moved
    with pytest.raises(RefusedError, match="authentication"):
        other = HouseholdCipher(b"another household key, also long enough.......")
        open_offer(other, topic, sealed)
    wrong_origin = seal_offer(KEY, topic, offer(origin="kitchen"))
    with pytest.raises(RefusedError, match="not this box"):
        open_offer(KEY, topic, wrong_origin)


def test_music_comes_along_only_when_the_person_was_just_there_and_once() -> None:
    book = HandoverBook("kitchen", handover_s=60)
    book.receive(offer(), now=1000)
    assert book.candidate("bob", None, now=1001) is None  # not a listener there
    assert book.candidate("ann", 999.0, now=1001) is None  # seen here after there
    assert book.candidate("ann", None, now=1100) is None  # too long ago
    chosen = book.candidate("ann", 900.0, now=1001)
    assert chosen is not None and chosen.position_at(1001) == pytest.approx(31.0)
    assert book.candidate("ann", 900.0, now=1002) is None  # that offer was used
    # Nothing playing there: nothing to continue.
    book.receive(offer(seq=2, track=None, listeners={"ann": 1003.0}), now=1003)
    assert book.candidate("ann", None, now=1004) is None


def test_a_replayed_or_older_offer_is_refused_and_a_take_over_acts_once() -> None:
    book = HandoverBook("living", handover_s=60)
    took = TakeOver("living", "ann", 1000.0)
    claim = offer(origin="kitchen", seq=5, took_over=took)
    assert book.receive(claim, now=1001) == took
    with pytest.raises(RefusedError, match="replayed"):
        book.receive(claim, now=1002)
    # The same take-over in the box's next offer does nothing more.
    assert book.receive(dataclasses.replace(claim, seq=6), now=1003) is None
    # After a restart (a new book), a retained take-over long past does nothing.
    fresh = HandoverBook("living", handover_s=60)
    assert fresh.receive(dataclasses.replace(claim, seq=7), now=2000) is None
    # Someone else's take-over is not ours to act on.
    other = offer(origin="kitchen", seq=8, took_over=TakeOver("garage", "ann", 1003.0))
    assert HandoverBook("living", 60).receive(other, now=1004) is None


def library() -> Library:
    return Library(
        Track(
            f"{m}/{i}",
            Path(f"/m/{m}/{i}.ogg"),
            f"{m} {i}",
            "artist",
            100.0,
            "rock",
            MOOD_POINTS[m],
            m,
            "folder",
        )
        for m in ("happy", "sad", "neutral")
        for i in range(4)
    )


def mood(label: str, face_id: int, user: str | None) -> MoodChanged:
    probabilities = {e: (0.9 if e == label else 0.1 / 6) for e in EMOTIONS}
    return MoodChanged(time=0, face_id=face_id, mood=label, previous=None,
                       probabilities=probabilities, box=(0, 0, 1, 1), user=user)  # fmt: skip


def controller() -> tuple[MusicController, FakePlayer, list[object]]:
    player = FakePlayer(default_duration=100.0)
    events: list[object] = []
    music = MusicController(
        library=library(), player=player, config=MusicConfig(), rng=random.Random(1)
    )
    music.start(events.append)
    return music, player, events


def test_handover_in_continues_the_track_at_its_position() -> None:
    music, player, _ = controller()
    music.poll(0.0)
    track = music.handover_in("sad/2", 42.5, "ann")
    music.poll(0.1)
    assert track is not None and track.id == "sad/2"
    assert player.started == [Path("/m/sad/2.ogg")] and player.starts_at == [42.5]
    assert music.history[-1][2] == "handover"
    listening = music.listening()
    assert listening is not None and listening["track"] == "sad/2"
    assert listening["position_s"] == pytest.approx(42.6)  # a poll later
    # A track this box lacks, or one that has ended by now: the next pick, from its start.
    other = music.handover_in("jazz/none", 10.0, "ann")
    ended = music.handover_in("sad/3", 99.5, "ann")
    music.poll(1.0)  # after the cross-fade
    assert other is not None and ended is not None and ended.id != "sad/3"
    assert player.starts_at[-1] == 0.0


def test_handover_out_fades_at_once_when_only_their_own_face_lingers() -> None:
    music, player, events = controller()
    music.emit(mood("happy", face_id=1, user="ann"))
    music.poll(0.0)
    music.poll(0.1)
    assert player.current is not None
    assert music.handover_out("ann", fade_ms=500)
    assert player.current is None and player.stops == [500]
    assert isinstance(events[-1], PlayerState) and events[-1].state == "stopped"
    music.emit(FaceLost(time=1.0, face_id=1, last_mood="happy", user="ann"))
    for t in (0.2, 0.3, 5.0):  # nobody here: no new track
        music.poll(t)
    assert player.current is None and music.listening() is None
    music.emit(mood("sad", face_id=2, user=None))  # someone comes in: music again
    music.poll(5.1)
    music.poll(5.2)
    assert player.current is not None


def test_handover_out_plays_on_for_a_guest_until_the_guest_leaves() -> None:
    music, player, _ = controller()
    music.emit(mood("happy", face_id=1, user="ann"))
    music.emit(mood("happy", face_id=2, user=None))  # a guest, not enrolled
    music.poll(0.0)
    music.poll(0.1)
    assert not music.handover_out("ann", fade_ms=500)
    music.emit(FaceLost(time=1.0, face_id=1, last_mood="happy", user="ann"))
    assert player.current is not None and player.stops == []
    music.emit(FaceLost(time=2.0, face_id=2, last_mood="happy", user=None))
    assert player.current is None and player.stops == [500]


def test_the_household_device_has_a_room_sensor_per_person_and_removes_the_forgotten() -> None:
    payload = build_household_discovery(f"{H}/presence", people=['Ann "the" O\'Neil'],
                                        removed=["Bob"])  # fmt: skip
    sensors = [c for c in payload["cmps"].values() if c.get("name")]
    assert len(sensors) == 1
    template = sensors[0]["value_template"]
    assert '"Ann \\"the\\" O\'Neil"' in template  # a JSON string literal: Jinja-safe
    assert {"p": "sensor"} in payload["cmps"].values()  # Bob's sensor goes


def test_rooms_say_what_they_lack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOODBOX_HOUSEHOLD_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    music, _, _ = controller()
    handover = MoodboxConfig.model_validate(
        {"mqtt": {"host": "127.0.0.1"}, "rooms": {"handover": True}}
    )
    with pytest.raises(ConfigError, match="household key"):
        RoomsService.from_config(handover, in_view=list, music=music, people=None)
    with pytest.raises(ConfigError, match=r"music\.enabled"):
        RoomsService.from_config(handover, in_view=list, music=None, people=None)
    no_broker = MoodboxConfig.model_validate({"rooms": {"presence": True}})
    with pytest.raises(ConfigError, match=r"mqtt\.host"):
        RoomsService.from_config(no_broker, in_view=list, music=None, people=None)
