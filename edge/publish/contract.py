"""The MQTT contract: every moodbox topic, its retain flag, QoS and payload, in one table.

The README's topic table is rendered from ``TOPICS`` (``markdown_table``) and a
test checks that the two agree, so the documentation cannot drift from the code.
All topics hang below the prefix (default ``moodbox/<device_id>``); Home
Assistant's own topics (discovery, birth) are in ``edge.publish.discovery``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["availability", "state", "event", "stats", "command"]

ONLINE = "online"
OFFLINE = "offline"
NO_MOOD = "none"  # the household mood while no face is in view

# Event types that go out on <prefix>/events (also Home Assistant's event entity types).
EVENT_TYPES: tuple[str, ...] = (
    "mood_changed",
    "user_signed_in",
    "user_signed_out",
    "unknown_face",
    "track_started",
    "enrolment_started",
    "enrolment_finished",
)


@dataclass(frozen=True, slots=True)
class Topic:
    """One row of the contract."""

    key: str
    suffix: str
    kind: Kind
    retained: bool
    qos: int
    payload: str
    example: str

    def full(self, prefix: str) -> str:
        return f"{prefix}/{self.suffix}"


def _command(key: str, payload: str, example: str) -> Topic:
    return Topic(f"{key}/set", f"{key}/set", "command", False, 1, payload, example)


TOPICS: tuple[Topic, ...] = (
    Topic(
        "available",
        "available",
        "availability",
        True,
        1,
        "`online` or `offline` (Last Will, also sent on a clean stop)",
        "online",
    ),
    Topic(
        "mood",
        "mood",
        "state",
        True,
        1,
        "household mood: the mood of the face whose mood changed last among those in view; "
        "one of angry, disgust, fear, happy, sad, surprise, neutral, or `none` (no face)",
        "happy",
    ),
    Topic(
        "mood/attributes",
        "mood/attributes",
        "state",
        True,
        1,
        "JSON: mood, probabilities (label → 0..1), user (or null), face_id (also as "
        "track_id, its old name, until the next release), faces "
        "(faces with a mood in view), time (ISO-8601)",
        '{"mood":"happy","probabilities":{"angry":0.02,"disgust":0.0,"fear":0.03,'
        '"happy":0.81,"sad":0.04,"surprise":0.03,"neutral":0.07},"user":"alice",'
        '"face_id":3,"faces":1,"time":"2026-11-27T07:34:25.601+00:00"}',
    ),
    Topic(
        "presence",
        "presence",
        "state",
        True,
        1,
        "JSON: users (signed-in names, sorted), user (the latest to sign in, or null), count",
        '{"users":["alice"],"user":"alice","count":1}',
    ),
    Topic(
        "player",
        "player",
        "state",
        True,
        1,
        "JSON: state (playing, paused, stopped, …), title, artist, mood, user (each may be null)",
        '{"state":"playing","title":"Morning","artist":"Ann","mood":"happy","user":"alice"}',
    ),
    Topic("volume", "volume", "state", True, 1, "integer 0–100 (percent)", "40"),
    Topic("auto", "auto", "state", True, 1, "`ON` (music follows the mood) or `OFF`", "ON"),
    Topic(
        "mood_override",
        "mood_override",
        "state",
        True,
        1,
        "`auto` or the mood the music is pinned to",
        "auto",
    ),
    Topic(
        "events",
        "events",
        "event",
        False,
        1,
        "JSON: type and event_type (one of " + ", ".join(EVENT_TYPES) + "), time (ISO-8601) "
        "and the event's fields (see Events); kept in a bounded queue while the broker is away",
        '{"type":"user_signed_in","event_type":"user_signed_in",'
        '"time":"2026-11-27T07:34:25.601+00:00","user":"alice","face_id":3}',
    ),
    Topic(
        "stats",
        "stats",
        "stats",
        False,
        0,
        "JSON every `mqtt.stats_interval_s`: fps, stage_ms (moving average per stage), "
        "inference_ms, cpu_temp_c (null where unreadable), uptime_s, version, frames, "
        "dropped_frames (frame slots at `camera.fps` that the loop was too busy to take), "
        "camera_errors, reconnects, queued_events, dropped_events, invalid_commands (every "
        "refused command), retained_commands, unauthorized_commands, rate_limited_commands "
        "(refusals of those kinds), discovery_suppressed (Home Assistant births within "
        "`mqtt.discovery_min_interval_s`), sync_refused (people-sync messages that failed "
        "authentication or were malformed, see Several rooms), rooms_refused (room reports and "
        "listening offers refused: malformed, failed authentication, replayed), handovers "
        "(music continued here from another room)",
        '{"fps":4.9,"stage_ms":{"detect":6.1,"classify":1.2,"decide":0.1},'
        '"inference_ms":7.4,"cpu_temp_c":51.2,"uptime_s":3600,"version":"0.2.0",'
        '"frames":17640,"dropped_frames":0,"camera_errors":0,"reconnects":1,'
        '"queued_events":0,"dropped_events":0,"invalid_commands":0,"retained_commands":0,'
        '"unauthorized_commands":0,"rate_limited_commands":0,"discovery_suppressed":0,'
        '"sync_refused":0,"rooms_refused":0,"handovers":0}',
    ),
    _command("player", "`PLAY`, `PAUSE`, `NEXT` or `LIKE` (any case)", "NEXT"),
    _command("volume", "number 0–100 (rounded to an integer)", "35"),
    _command("mood_override", "`auto` or a mood (angry … neutral)", "happy"),
    _command("auto", "`ON` or `OFF`", "OFF"),
    _command(
        "enroll",
        "off unless `mqtt.identity_commands`; then signed JSON "
        '`{"name", "ts", "nonce", "sig"}` (`moodbox sign-command`): enrol the face in '
        "front of the camera",
        '{"name":"alice","ts":1764700000.0,"nonce":"9f…","sig":"3a…"}',
    ),
    _command(
        "forget",
        "off unless `mqtt.identity_commands`; then signed JSON as for enroll: delete that "
        "enrolled user and every trace of them",
        '{"name":"alice","ts":1764700000.0,"nonce":"9f…","sig":"3a…"}',
    ),
)

TOPIC: dict[str, Topic] = {topic.key: topic for topic in TOPICS}
COMMAND_TOPICS: tuple[Topic, ...] = tuple(t for t in TOPICS if t.kind == "command")


def command_name(prefix: str, topic: str) -> str | None:
    """The command a topic addresses (``<prefix>/volume/set`` → ``volume``), or None."""
    head = prefix + "/"
    if not topic.startswith(head) or not topic.endswith("/set"):
        return None
    name = topic[len(head) : -len("/set")]
    return name if f"{name}/set" in TOPIC else None


def markdown_table() -> str:
    """The README's topic table (a test asserts the README contains exactly this)."""
    rows = [
        "| topic | retained | QoS | payload | example |",
        "| --- | --- | --- | --- | --- |",
    ]
    for topic in TOPICS:
        rows.append(
            f"| `<prefix>/{topic.suffix}` | {'yes' if topic.retained else 'no'} | {topic.qos} "
            f"| {topic.payload} | `{topic.example}` |"
        )
    return "\n".join(rows)
