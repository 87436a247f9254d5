"""Several rooms: who each box sees, the household's presence, music that follows a person.

Pure bookkeeping, no I/O and no clock: ``edge.publish.rooms`` feeds it what
the broker and the frame loop say, with wall-clock times (boxes compare times,
so their clocks must agree to a second or so, as NTP keeps them).

Room reports (``<household_topic>/rooms/<device_id>``, retained, plain JSON)
say which room a box is in and who it sees; they carry names, as the presence
topics Home Assistant reads must. Every box merges them into the household's
presence (``<household_topic>/presence``). Because every box computes the
merge from the same retained reports and republishes only when its result
changes, the last copy on the broker is the merge of the latest reports.

Listening offers (``<household_topic>/listening/<device_id>``, retained) say
what plays in a room, where in the track, and for whom. They can make another
box play, so they are sealed with the household key like the people sync, and
each carries a sequence number: an offer replayed from a capture, or one older
than the last seen from that box, is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.identify.sync import HouseholdCipher, RefusedError

FORMAT = 1
OFFLINE_PAYLOAD = b"offline"  # the Last Will on a box's room topic
_ORIGIN = re.compile(r"^[a-z0-9_-]{1,32}$")  # general.device_id
_PAD_STEP = 1024
MAX_OFFER_BYTES = 16 * 1024
MAX_PEOPLE = 64
MAX_NAME = 64


def room_topic(household_topic: str, device_id: str) -> str:
    return f"{household_topic}/rooms/{device_id}"


def listening_topic(household_topic: str, device_id: str) -> str:
    return f"{household_topic}/listening/{device_id}"


def presence_topic(household_topic: str) -> str:
    return f"{household_topic}/presence"


def origin_of(topic: str) -> str | None:
    """The device id a room or listening topic belongs to (None: not a box's topic)."""
    origin = topic.rsplit("/", 1)[-1]
    return origin if _ORIGIN.match(origin) else None


# --- room reports and the household's presence ----------------------------------------


@dataclass(frozen=True, slots=True)
class RoomReport:
    """What one box says about its room: who is signed in there, and who is in view."""

    device_id: str
    room: str
    online: bool = True
    present: Mapping[str, float] = field(default_factory=dict)  # name → signed in at (wall)
    in_view: frozenset[str] = frozenset()
    time: float = 0.0

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "device_id": self.device_id,
                "room": self.room,
                "online": self.online,
                "present": sorted(self.present),
                "since": {name: round(t, 3) for name, t in sorted(self.present.items())},
                "in_view": sorted(self.in_view),
                "time": round(self.time, 3),
            },
            separators=(",", ":"),
        ).encode()


def decode_room(topic: str, payload: bytes) -> RoomReport | None:
    """A room report from the broker; None for an empty (removed) one. ValueError if bad."""
    device_id = origin_of(topic)
    if device_id is None:
        raise ValueError("not a box's room topic")
    if not payload:
        return None
    if payload == OFFLINE_PAYLOAD:
        return RoomReport(device_id, device_id, online=False)
    if len(payload) > MAX_OFFER_BYTES:
        raise ValueError("too large")
    data = json.loads(payload)
    if not isinstance(data, dict) or data.get("device_id") != device_id:
        raise ValueError("not this box's report")
    room = data.get("room")
    since = data.get("since", {})
    in_view = data.get("in_view", [])
    if not isinstance(room, str) or not isinstance(since, dict) or not isinstance(in_view, list):
        raise ValueError("malformed report")
    present = {_name(n): _time(t) for n, t in list(since.items())[:MAX_PEOPLE]}
    return RoomReport(
        device_id,
        room[:MAX_NAME],
        online=data.get("online") is not False,
        present=present,
        in_view=frozenset(n for n in map(_name, in_view[:MAX_PEOPLE]) if n in present),
        time=_time(data.get("time", 0.0)),
    )


def household_presence(reports: Mapping[str, RoomReport]) -> dict[str, Any]:
    """Who is in which room, from every box's latest report.

    A person signed in at several boxes (sign-out waits a minute after they walk
    away) is where a camera sees them now, else where they signed in last.
    """
    people: dict[str, dict[str, Any]] = {}
    rank: dict[str, tuple[bool, float, str]] = {}
    rooms: dict[str, dict[str, Any]] = {}
    for device_id in sorted(reports):
        report = reports[device_id]
        rooms[device_id] = {
            "room": report.room,
            "online": report.online,
            "present": sorted(report.present) if report.online else [],
        }
        if not report.online:
            continue
        for name, since in report.present.items():
            key = (name in report.in_view, since, device_id)
            if name not in rank or key > rank[name]:
                rank[name] = key
                people[name] = {"room": report.room, "device_id": device_id, "since": since}
    return {
        "format": FORMAT,
        "people": {name: people[name] for name in sorted(people)},
        "rooms": rooms,
    }


# --- listening offers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TakeOver:
    """A box took ``user``'s music from the box ``origin`` at ``time`` (wall)."""

    origin: str
    user: str
    time: float


@dataclass(frozen=True, slots=True)
class Offer:
    """What plays at the box ``origin`` (``track`` None: nothing) and for whom."""

    origin: str
    seq: int
    time: float
    track: str | None = None
    position_s: float | None = None
    mood: str | None = None
    listeners: Mapping[str, float] = field(default_factory=dict)  # name → last seen (wall)
    took_over: TakeOver | None = None

    def position_at(self, now: float) -> float:
        """Where the track is at ``now``, had it played on."""
        if self.position_s is None:
            return 0.0
        return max(0.0, self.position_s + max(0.0, now - self.time))


def seal_offer(cipher: HouseholdCipher, topic: str, offer: Offer) -> bytes:
    data: dict[str, Any] = {
        "format": FORMAT,
        "origin": offer.origin,
        "seq": offer.seq,
        "time": offer.time,
        "track": offer.track,
        "position_s": offer.position_s,
        "mood": offer.mood,
        "listeners": dict(offer.listeners),
        "took_over": None
        if offer.took_over is None
        else {
            "origin": offer.took_over.origin,
            "user": offer.took_over.user,
            "time": offer.took_over.time,
        },
    }
    plain = json.dumps(data, separators=(",", ":")).encode()
    # Padded, so the size tells little about the names or how many listen.
    plain += b" " * (-len(plain) % _PAD_STEP)
    return cipher.seal(topic, plain)


def open_offer(cipher: HouseholdCipher, topic: str, payload: bytes) -> Offer:
    """An authentic offer of the box whose topic it came on (RefusedError otherwise)."""
    origin = origin_of(topic)
    if origin is None:
        raise RefusedError("not a box's listening topic")
    if len(payload) > MAX_OFFER_BYTES:
        raise RefusedError("too large")
    plain = cipher.open(topic, payload)
    try:
        data = json.loads(plain)
        if data.get("format") != FORMAT or data.get("origin") != origin:
            raise RefusedError("not this box's offer")
        listeners = data.get("listeners") or {}
        took = data.get("took_over")
        track = data.get("track")
        position = data.get("position_s")
        return Offer(
            origin=origin,
            seq=int(data["seq"]),
            time=_time(data["time"]),
            track=None if track is None else str(track)[:512],
            position_s=None if position is None else _time(position),
            mood=None if data.get("mood") is None else str(data["mood"])[:32],
            listeners={_name(n): _time(t) for n, t in list(listeners.items())[:MAX_PEOPLE]},
            took_over=None
            if took is None
            else TakeOver(_origin(took["origin"]), _name(took["user"]), _time(took["time"])),
        )
    except RefusedError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise RefusedError("malformed offer") from err


class HandoverBook:
    """The other boxes' latest offers; decides when music comes here or goes away.

    ``handover_s`` bounds both: a person takes the music with them only if they
    were seen at the other box at most that long ago, and a take-over older than
    that does nothing (so a retained one found after a restart acts on nothing).
    Each take-over and each offer acts at most once.
    """

    def __init__(self, me: str, handover_s: float) -> None:
        self.me = me
        self.handover_s = handover_s
        self.offers: dict[str, Offer] = {}
        self._acted: set[tuple[str, str, float]] = set()  # take-overs handled
        self._used: set[tuple[str, int, str]] = set()  # (origin, seq, user) continued here

    def receive(self, offer: Offer, now: float) -> TakeOver | None:
        """Keep ``offer``; the take-over it reports of this box's music, if any, once."""
        if offer.origin == self.me:
            return None
        last = self.offers.get(offer.origin)
        if last is not None and offer.seq <= last.seq:
            raise RefusedError("replayed or older than the last one")
        self.offers[offer.origin] = offer
        took = offer.took_over
        if took is None or took.origin != self.me:
            return None
        key = (offer.origin, took.user, took.time)
        if key in self._acted or not 0 <= now - took.time <= self.handover_s:
            return None
        self._acted.add(key)
        return took

    def forget(self, user: str) -> None:
        """A forgotten person's music follows them nowhere."""
        self.offers = {
            origin: dataclasses.replace(
                offer, listeners={n: t for n, t in offer.listeners.items() if n != user}
            )
            for origin, offer in self.offers.items()
        }

    def candidate(self, user: str, seen_here: float | None, now: float) -> Offer | None:
        """The offer whose music ``user``, just seen here, brings: the room they left last.

        Only music that plays, for them, seen there within ``handover_s`` and after
        they were last seen here (someone walking back in takes it back); each
        offer at most once per person.
        """
        best: Offer | None = None
        for offer in self.offers.values():
            seen = offer.listeners.get(user)
            if offer.track is None or seen is None or (offer.origin, offer.seq, user) in self._used:
                continue
            if now - seen > self.handover_s or (seen_here is not None and seen <= seen_here):
                continue
            if best is None or seen > best.listeners[user]:
                best = offer
        if best is not None:
            self._used.add((best.origin, best.seq, user))
        return best


def _name(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise ValueError("bad name")
    return value


def _origin(value: object) -> str:
    if not isinstance(value, str) or not _ORIGIN.match(value):
        raise ValueError("bad device id")
    return value


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("bad time")
    return float(value)
