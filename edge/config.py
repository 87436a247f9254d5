"""Strict, typed configuration: config.yaml plus MOODBOX_<SECTION>_<KEY> overrides.

Every section is a frozen pydantic model that forbids unknown keys, so a typo
is an error with its key path and YAML line instead of a silently ignored
setting. Paths that are relative are resolved against the config file's folder,
so the repository's config.yaml works from any working directory.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import socket
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from yaml.constructor import ConstructorError

from edge.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_PREFIX = "MOODBOX_"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"  # the bundled demo (in a checkout of the repository)
SYSTEM_CONFIG = Path("/etc/moodbox/config.yaml")  # written by scripts/install-pi
DEVICE_ID_PATTERN = r"^[a-z0-9_-]{1,32}$"


def default_device_id() -> str:
    """This machine's host name as a device id (see ``device_id_from``).

    Two boxes in one home then get their own MQTT topics and Home Assistant
    devices without anyone editing a config.
    """
    return device_id_from(socket.gethostname())


def device_id_from(hostname: str) -> str:
    """A host name as a device id: its first label, lower case, runs of anything but
    ``[a-z0-9_-]`` as one ``-``, at most 32 characters; ``moodbox`` if nothing is left."""
    name = hostname.split(".", maxsplit=1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", name).strip("-_")[:32].strip("-_")
    return cleaned or "moodbox"


def cache_dir() -> Path:
    """moodbox's cache folder (embeddings, baselines): $XDG_CACHE_HOME/moodbox, else
    ~/.cache/moodbox. Nothing in it is needed to run; it only saves recomputing."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "moodbox"


class Section(BaseModel):
    """Base of every config section: frozen, strict about unknown keys."""

    # allow_inf_nan: an infinite timeout would overflow when a deadline is computed from it.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


class GeneralConfig(Section):
    """Identity, storage and logging of this moodbox."""

    device_id: str = Field(
        default_factory=default_device_id,
        pattern=DEVICE_ID_PATTERN,
        description="Short id: MQTT topic prefix and Home Assistant device id; "
        "unset: this machine's host name (lower case, [a-z0-9_-]).",
    )
    state_dir: Path = Field(
        Path("~/.local/state/moodbox"),
        description="Where enrolled users and preferences live (SQLite, mode 0700). "
        "systemd sets $STATE_DIRECTORY, which wins over this; unset, $XDG_STATE_HOME/moodbox "
        "where that variable is set.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the daemon."
    )


class CameraConfig(Section):
    """Where frames come from; ``type`` picks the adapter."""

    type: Literal["replay", "opencv", "picamera"] = Field(
        "replay",
        description="replay: folder of images or a video file; opencv: device "
        "index, video file or URL; picamera: Raspberry Pi camera via picamera2.",
    )
    source: str = Field(
        "demo/faces",
        description="replay: folder or video file; opencv: device index ('0'), file or URL; "
        "picamera: camera number ('0').",
    )
    fps: float = Field(
        5.0,
        ge=0,
        le=120,
        description="Frames per second to deliver (paced); "
        "0: as fast as the source allows (replay benchmarks and soak runs).",
    )
    loop: bool = Field(True, description="replay: start again after the last frame.")
    width: int = Field(640, ge=64, le=4096, description="Main stream width (picamera, opencv).")
    height: int = Field(480, ge=48, le=4096, description="Main stream height.")
    lores_width: int = Field(320, ge=64, le=1920, description="picamera: detection stream width.")
    lores_height: int = Field(240, ge=48, le=1080, description="picamera: detection stream height.")
    open_timeout_s: float = Field(
        5.0,
        gt=0,
        description="A source that delivers no frame for this long raises a retryable CameraError.",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # `source: 0` (a device index) reads as a YAML integer; it means the text "0".
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class DetectConfig(Section):
    """Face detection (BlazeFace short range, int8-free float TFLite)."""

    backend: Literal["blazeface"] = Field(
        "blazeface", description="Detector implementation (edge.backends.DETECTORS)."
    )
    model: Path = Field(
        Path("models/face_detection_short_range.tflite"),
        description="BlazeFace TFLite file (see models/README.md).",
    )
    min_score: float = Field(0.6, ge=0.05, le=1.0, description="Detection score threshold.")
    nms_iou: float = Field(0.3, gt=0, lt=1, description="Overlap above which boxes merge.")
    min_face_px: int = Field(40, ge=8, description="Ignore faces narrower than this (pixels).")
    every_n_frames: int = Field(
        1,
        ge=1,
        le=30,
        description="Run the detector on every n-th frame and track faces in between.",
    )
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads.")


class EmotionConfig(Section):
    """Emotion classifier (our int8 CNN)."""

    backend: Literal["tflite"] = Field(
        "tflite", description="Classifier implementation (edge.backends.CLASSIFIERS)."
    )
    model: Path = Field(Path("models/emotion_int8.tflite"), description="Full-int8 TFLite CNN.")
    labels: Path = Field(Path("models/emotion_labels.txt"), description="One label per line.")
    metadata: Path = Field(
        Path("models/emotion_model.json"),
        description="Temperature and provenance written by training.",
    )
    crop_scale: float = Field(
        1.2,
        ge=1.0,
        le=2.0,
        description="Square crop side as a "
        "multiple of the detector box (FER-style faces include some hair).",
    )
    upright: bool = Field(
        True,
        description="Turn each face crop so the eyes are level (from the detector's eye "
        "keypoints): the model learnt from upright FER-2013 faces.",
    )
    mirror_alternate: bool = Field(
        True,
        description="Classify every other pass of a face on its mirror image, so the "
        "smoothing averages both views: the flip test at no extra cost per frame.",
    )
    flip_tta: bool = Field(
        False,
        description="Average the face and its mirror image: about +0.7 points of accuracy "
        "for a second int8 pass, which puts a face over the 1 ms budget (models/README.md).",
    )
    reuse_max_diff: float = Field(
        2.5,
        ge=0,
        le=255,
        description="Reuse a face's last probabilities while its region differs from the "
        "classified crop by at most this mean grey level (sensor noise is ~1); 0: classify "
        "every frame.",
    )
    reuse_max_s: float = Field(
        0.5, ge=0, le=10, description="... but classify each face at least this often."
    )
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads.")


class DecideConfig(Section):
    """Smoothing and hysteresis of per-face emotion probabilities."""

    smoothing_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Time constant of the exponential moving average over probability vectors.",
    )
    hold_s: float = Field(
        1.5, ge=0, le=60, description="A new mood must lead for this long before it is reported."
    )
    margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="A new mood must beat the current one "
        "by this much (smoothed probability) to count as leading.",
    )
    sustain_s: float = Field(
        15.0,
        gt=0,
        le=120,
        description="Time constant of a slower moving average that confirms a mood as "
        "sustained; only a sustained mood may cross-fade the music mid-track.",
    )
    sustain_margin: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A mood is sustained when it leads the slow average by this much.",
    )
    track_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Forget a face track after it has not been seen for this long.",
    )
    track_iou: float = Field(
        0.3, gt=0, lt=1, description="Box overlap that links a detection to an existing track."
    )


class RunConfig(Section):
    """Daemon loop settings."""

    events_stdout: bool = Field(True, description="Print events as JSON lines on stdout.")
    camera_restart_budget: int = Field(
        5,
        ge=0,
        description="Camera reopen attempts in a row before the daemon exits non-zero for systemd.",
    )
    camera_backoff_s: float = Field(1.0, gt=0, description="First reopen delay; doubles.")


class MqttConfig(Section):
    """MQTT publishing and Home Assistant discovery; off while ``host`` is unset.

    The password is never a setting: it comes from $MOODBOX_MQTT_PASSWORD or the
    systemd credential file $CREDENTIALS_DIRECTORY/mqtt_password.
    """

    host: str | None = Field(
        None,
        description="Broker host name or address; unset (the demo default) turns MQTT off.",
    )
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(None, description="Broker user name (password: see above).")
    tls: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="CA certificate file for TLS; unset: the system's trust store."
    )
    client_id: str | None = Field(
        None, max_length=64, description="MQTT client id; unset: moodbox-<general.device_id>."
    )
    topic_prefix: str | None = Field(
        None,
        pattern=r"^[^#+/\x00]+(/[^#+/\x00]+)*$",
        description="Root of every moodbox topic; unset: moodbox/<general.device_id>.",
    )
    discovery: bool = Field(True, description="Publish Home Assistant device discovery.")
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+/\x00]+(/[^#+/\x00]+)*$",
        description="Home Assistant's discovery prefix (its birth topic is <prefix>/status).",
    )
    stats_interval_s: float = Field(
        30.0, ge=1, le=3600, description="Publish <prefix>/stats this often."
    )
    queue_limit: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Events kept while the broker is away; the oldest beyond this are "
        "dropped and counted in stats.",
    )
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive (seconds).")
    reconnect_min_s: float = Field(1.0, gt=0, le=60, description="First reconnect delay.")
    reconnect_max_s: float = Field(
        60.0, gt=0, le=3600, description="Reconnect delay cap (the delay doubles up to it)."
    )
    command_max_bytes: int = Field(
        1024, ge=16, le=65536, description="Command payloads larger than this are ignored."
    )
    identity_commands: bool = Field(
        False,
        description="Accept enroll and forget over MQTT, signed with the command key "
        "($MOODBOX_COMMAND_KEY or $CREDENTIALS_DIRECTORY/command_key); off: only the CLI.",
    )
    command_window_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="A signed command's time stamp must be this close to the box's clock.",
    )
    discovery_min_interval_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="Send discovery again on Home Assistant's birth message at most this often.",
    )


class IdentifyConfig(Section):
    """Face sign-in: embedding model, recognition thresholds, presence, the user store."""

    enabled: bool = Field(
        True, description="Recognise enrolled users (with nobody enrolled every face is unknown)."
    )
    backend: Literal["sface"] = Field(
        "sface", description="Face embedder implementation (edge.backends.EMBEDDERS)."
    )
    model: Path = Field(
        Path("models/face_embedding.tflite"),
        description="SFace 128-D embedding TFLite file (see models/README.md).",
    )
    threshold: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="Cosine similarity of a track's mean embedding to a person's average "
        "needed to sign them in (higher: fewer strangers let in, more misses).",
    )
    margin: float = Field(
        0.05, ge=0, le=2, description="The best person must beat the runner-up by this much."
    )
    min_frames: int = Field(
        3, ge=1, le=30, description="Embeddings of a track that must agree before it is named."
    )
    max_frames: int = Field(8, ge=1, le=100, description="Newest embeddings kept per track.")
    sample_gap_s: float = Field(
        0.2, ge=0, le=10, description="Spacing of a new track's first embeddings."
    )
    refresh_s: float = Field(
        10.0, gt=0, le=3600, description="Once decided, re-embed a track this often."
    )
    sign_out_after_s: float = Field(
        60.0, gt=0, le=86400, description="Sign a user out after not seeing them this long."
    )
    enroll_samples: int = Field(
        5, ge=1, le=20, description="Diverse good samples stored per enrolment."
    )
    enroll_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Give up a camera enrolment after this long."
    )
    store_images_debug: bool = Field(
        False,
        description="Debug only: also store the aligned enrolment face images (biometric "
        "photos!) in the user store; off by default.",
    )
    debug_retention_days: float = Field(
        7.0, gt=0, le=365, description="Debug face images older than this are deleted."
    )
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads.")
    background: bool = Field(
        True,
        description="Embed faces on a worker thread, so a new face never stalls the frame "
        "loop (its name arrives a frame or two later); off: embed inline on the loop.",
    )


class PlayerConfig(Section):
    """Where the music plays; ``type`` picks the adapter (edge.music.players.PLAYERS).

    The MPD password is never a setting: it comes from $MOODBOX_MPD_PASSWORD or the
    systemd credential file $CREDENTIALS_DIRECTORY/mpd_password.
    """

    type: Literal["pygame", "mpd"] = Field(
        "pygame",
        description="pygame: this machine's sound card through pygame.mixer; mpd: a Music "
        "Player Daemon (or Mopidy) over the MPD protocol, which may feed Snapcast.",
    )
    mpd_host: str = Field("localhost", description="mpd: server host name or address.")
    mpd_port: int = Field(6600, ge=1, le=65535, description="mpd: server port.")
    mpd_music_root: Path | None = Field(
        None,
        description="mpd: the folder that is MPD's music_directory, as this machine sees it; "
        "a track plays as its path relative to it. Unset: the first of music.folders.",
    )
    mpd_uri_prefix: str = Field(
        "",
        max_length=1000,
        description="mpd: empty for MPD, which takes the plain path under mpd_music_root; "
        "Mopidy takes URIs: 'local:track:' (Mopidy-Local) or 'file:///srv/music/' (its file "
        "backend), followed by the URL-quoted path under mpd_music_root.",
    )
    mpd_timeout_s: float = Field(
        0.5,
        gt=0,
        le=10,
        description="mpd: limit of one network call; a server that takes longer counts as lost.",
    )

    @model_validator(mode="after")
    def _mpd_keys_need_mpd(self) -> PlayerConfig:
        stray = sorted(key for key in self.model_fields_set if key.startswith("mpd_"))
        if stray and self.type != "mpd":
            raise ValueError(f"{', '.join(stray)} only apply with type: mpd")
        return self


class MusicConfig(Section):
    """Music: library folders, recommendation strategy, when to switch, the player."""

    enabled: bool = Field(True, description="Play music that follows the mood.")
    folders: tuple[Path, ...] = Field(
        (Path("music"),),
        description="Folders scanned for mp3, ogg, wav and flac (a first-level folder "
        "named after a mood, e.g. music/happy/, places its tracks).",
    )
    strategy: Literal["match", "lift"] = Field(
        "match",
        description="match: meet the listener's mood; lift: start near it, then move "
        "step by step towards calm and positive (the iso principle).",
    )
    lift_tracks: int = Field(
        4, ge=1, le=20, description="lift: tracks to go from the listener's mood to the goal."
    )
    recency_window: int = Field(
        20, ge=0, le=500, description="No track repeats within this many picks."
    )
    closeness: float = Field(
        0.35,
        gt=0,
        le=2,
        description="Width (valence–arousal units) of the closeness weight around the target.",
    )
    crossfade_ms: int = Field(
        1500, ge=0, le=10000, description="Fade-out plus fade-in length of a switch mid-track."
    )
    fade_in_ms: int = Field(800, ge=0, le=10000, description="Fade-in of a track started cold.")
    volume: int = Field(70, ge=0, le=100, description="Start volume, percent.")
    switch_distance: float = Field(
        0.8,
        ge=0,
        le=3,
        description="A mood this far (valence–arousal) from the playing track is a strong "
        "change that switches mid-track instead of at the track boundary.",
    )
    switch_hold_s: float = Field(
        0.5, ge=0, le=60, description="A strong change must last this long before switching."
    )
    min_switch_interval_s: float = Field(
        30.0, ge=0, le=3600, description="At most one mid-track switch per this many seconds."
    )
    audio_retry_s: float = Field(
        2.0,
        gt=0,
        le=600,
        description="First retry delay when the audio device (or the MPD server) is missing.",
    )
    audio_retry_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest retry delay (the delay doubles up to this)."
    )
    player: PlayerConfig = Field(
        PlayerConfig(), description="Where the music plays (pygame here, or an MPD server)."
    )


class WebConfig(Section):
    """The local web app and control API (README "Web app")."""

    enabled: bool = Field(
        True, description="Serve the web app and the control API that the CLI uses."
    )
    host: str | None = Field(
        None,
        description="Address to listen on; null: 127.0.0.1 only (off the network). "
        "0.0.0.0 serves every network the box is on.",
    )
    port: int = Field(8420, ge=0, le=65535, description="TCP port (0: any free port, for tests).")
    tls_cert: Path | None = Field(
        None, description="PEM certificate: serve HTTPS (with tls_key); null: plain HTTP."
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    threads: int = Field(
        8, ge=2, le=64, description="Server threads; each open page's live stream holds one."
    )
    history_days: float = Field(
        30.0, gt=0, le=3650, description="Mood and play history older than this is deleted."
    )
    upload_max_bytes: int = Field(
        8_000_000,
        ge=100_000,
        le=100_000_000,
        description="Largest enrolment upload (all photos of one request); larger is refused.",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 90, description="A signed-in browser stays signed in this long."
    )


class RoomsConfig(Section):
    """Several boxes in one household (README "Several rooms").

    The household key that encrypts what is shared is never a setting: it comes
    from $MOODBOX_HOUSEHOLD_KEY or the systemd credential
    $CREDENTIALS_DIRECTORY/household_key.
    """

    sync: bool = Field(
        False,
        description="Share enrolled people with every box of the household through the "
        "MQTT broker, encrypted with the household key (needs mqtt.host).",
    )
    household_topic: str = Field(
        "moodbox/household",
        pattern=r"^[^#+/\x00]+(/[^#+/\x00]+)*$",
        description="Root of the household's shared topics; the same on every box.",
    )
    room: str = Field(
        "",
        max_length=64,
        pattern=r"^[^\x00-\x1f]*$",
        description="This box's room, as people and Home Assistant read it (empty: the device id).",
    )
    presence: bool = Field(
        False,
        description="Publish who this box sees, and the household's presence (who is in "
        "which room, a Home Assistant sensor per person), on the broker (needs mqtt.host).",
    )
    handover: bool = Field(
        False,
        description="Take part in music handover: continue the music of a person who "
        "comes in from another room, and fade out when they take it elsewhere (needs "
        "mqtt.host, music and the household key).",
    )
    handover_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="A person seen here at most this long after leaving a room where "
        "their music played takes it with them.",
    )
    handover_fade_ms: int = Field(
        3000, ge=0, le=30000, description="Fade-out of the room the music left."
    )

    def room_name(self, device_id: str) -> str:
        return self.room.strip() or device_id


class MoodboxConfig(Section):
    """The whole configuration file."""

    general: GeneralConfig = GeneralConfig()
    camera: CameraConfig = CameraConfig()
    detect: DetectConfig = DetectConfig()
    emotion: EmotionConfig = EmotionConfig()
    decide: DecideConfig = DecideConfig()
    run: RunConfig = RunConfig()
    identify: IdentifyConfig = IdentifyConfig()
    mqtt: MqttConfig = MqttConfig()
    music: MusicConfig = MusicConfig()
    web: WebConfig = WebConfig()
    rooms: RoomsConfig = RoomsConfig()

    def resolve(self, path: Path | str) -> Path:
        """A config path, absolute: relative ones are relative to the config file."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self._base_dir / path).resolve()

    def state_dir(self) -> Path:
        """The state directory (see ``resolve_state_dir`` for the order)."""
        return resolve_state_dir(self, os.environ)

    _base_dir: Path = PrivateAttr(default=REPO_ROOT)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases, duplicate keys and .inf/.nan.

    Aliases let a few hundred bytes expand into gigabytes (an "alias bomb"), a
    duplicate key silently drops the first value, and an infinite number only
    fails later, deep inside a deadline computation; a config file needs none.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ConstructorError(
                None, None, "anchors and aliases (& and *) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(
                None,
                None,
                f"{node.value!r}: infinite and NaN numbers are not allowed",
                node.start_mark,
            )
        return value


StrictLoader.add_constructor(
    "tag:yaml.org,2002:float",
    StrictLoader.construct_yaml_float,
)


def parse_yaml(text: str) -> Any:
    """YAML text through ``StrictLoader``; yaml.YAMLError with a mark on refusal."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in the YAML text to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                lines[child] = key.start_mark.line + 1
                walk(value, child)

    try:
        root = yaml.compose(text, Loader=StrictLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Settings from MOODBOX_<SECTION>_<KEY> variables, each read as its field's type.

    A variable under a section's prefix that names no setting of it is a typo and
    an error; any other MOODBOX_* variable that is no setting (a script's own, say)
    is warned about once and ignored.
    """
    overrides: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    sections = _section_fields()
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_SETTINGS:
            continue
        rest = name[len(ENV_PREFIX) :]
        section = next((s for s in sections if rest.startswith(f"{s.upper()}_")), None)
        key = rest[len(section) + 1 :].lower() if section else ""
        if section is None:
            _warn_once(name)
            continue
        if key not in sections[section]:
            problems.append(f"{name}: unknown setting{_did_you_mean(section, key, sections)}")
            continue
        overrides.setdefault(section, {})[key] = env_value(sections[section][key], raw)
    return overrides, problems


def _section_fields() -> dict[str, dict[str, Any]]:
    """Section name → {key: the field's declared type}."""
    out: dict[str, dict[str, Any]] = {}
    for section, field in MoodboxConfig.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out[section] = {key: info.annotation for key, info in model.model_fields.items()}
    return out


def _did_you_mean(section: str, key: str, sections: Mapping[str, Mapping[str, Any]]) -> str:
    keys = list(sections[section])
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if close:
        return f" (did you mean {ENV_PREFIX}{section.upper()}_{close[0].upper()}?)"
    return f" (settings of {section}: {', '.join(keys)})"


def env_value(annotation: Any, raw: str) -> Any:
    """An environment variable's text as the value for a field of type ``annotation``.

    Scalars stay text and the field's own type converts them (so ``0`` for a
    string setting is the text "0", and "12.5" for a number is 12.5); an empty
    value or ``null`` unsets an optional setting; a list setting takes a YAML
    list (``[a, b]``) or one item, a nested block a YAML mapping (``{a: 1}``).
    """
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional and raw.strip() in ("", "null", "~"):
        return None
    if optional:
        annotation = next(a for a in args if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        try:
            value = parse_yaml(raw) if raw.strip() else []
        except yaml.YAMLError:
            value = raw
        return value if isinstance(value, list) else [raw]
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        try:  # a nested block: a YAML mapping such as {type: mpd, mpd_host: kitchen.local}
            return parse_yaml(raw)
        except yaml.YAMLError:
            return raw
    return raw


_warned: set[str] = set()


def _warn_once(name: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning(
            "%s is not a moodbox setting (those are %s<SECTION>_<KEY>, sections: %s); ignoring it",
            name,
            ENV_PREFIX,
            ", ".join(MoodboxConfig.model_fields),
        )


# Variables with the prefix that are not settings: secrets (read where used), the
# config file's name, and the project's scripts' own variables.
_NOT_SETTINGS = frozenset(
    {
        "MOODBOX_MQTT_PASSWORD",
        "MOODBOX_MPD_PASSWORD",
        "MOODBOX_CONFIG",
        "MOODBOX_COMMAND_KEY",
        "MOODBOX_HOUSEHOLD_KEY",
        "MOODBOX_INSTALL_ROOT",
        "MOODBOX_AARCH64_DIR",
    }
)


def resolve_state_dir(config: MoodboxConfig, environ: Mapping[str, str]) -> Path:
    """Where state lives: systemd's $STATE_DIRECTORY; else ``general.state_dir`` when the
    config (or its environment variable) sets it; else $XDG_STATE_HOME/moodbox; else
    the default ``~/.local/state/moodbox``."""
    override = environ.get("STATE_DIRECTORY")
    if override:
        return Path(override.split(":")[0])
    xdg = environ.get("XDG_STATE_HOME")
    if "state_dir" not in config.general.model_fields_set and xdg and Path(xdg).is_absolute():
        return Path(xdg) / "moodbox"
    return config.resolve(config.general.state_dir)


def xdg_config(environ: Mapping[str, str]) -> Path:
    """$XDG_CONFIG_HOME/moodbox/config.yaml (XDG_CONFIG_HOME defaults to ~/.config)."""
    base = environ.get("XDG_CONFIG_HOME")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "moodbox" / "config.yaml"


def find_config(
    explicit: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    system_config: Path | None = None,
) -> tuple[Path, str]:
    """The config file to read and why: ``--config``, else $MOODBOX_CONFIG, else
    /etc/moodbox/config.yaml, else $XDG_CONFIG_HOME/moodbox/config.yaml, else the
    bundled demo. The first two are taken as given (an error names them if they
    cannot be read); the others only where the file exists."""
    environ = os.environ if environ is None else environ
    if explicit is not None:
        return Path(explicit), "--config"
    if environ.get("MOODBOX_CONFIG"):
        return Path(environ["MOODBOX_CONFIG"]), "$MOODBOX_CONFIG"
    candidates = (
        (SYSTEM_CONFIG if system_config is None else system_config, "the system config"),
        (xdg_config(environ), "the user config ($XDG_CONFIG_HOME)"),
        (DEFAULT_CONFIG, "the bundled demo config"),
    )
    for path, reason in candidates:
        if path.exists():
            return path, reason
    looked = ", ".join(str(path) for path, _ in candidates)
    raise ConfigError(
        f"no config file: pass --config FILE or set $MOODBOX_CONFIG (looked in {looked})"
    )


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> MoodboxConfig:
    """Load, merge environment overrides, validate; raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path is not None else find_config(environ=environ)[0]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from err
    except UnicodeDecodeError as err:
        bad_line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} (line {bad_line}): not UTF-8 text (byte 0x{err.object[err.start]:02x})"
        ) from err
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    overrides, problems = _env_overrides(environ)
    for section, values in overrides.items():
        current = data.get(section)
        data[section] = {**(current if isinstance(current, dict) else {}), **values}
    lines = _line_index(text)
    try:
        config = MoodboxConfig.model_validate(data)
    except ValidationError as err:
        for error in err.errors():
            loc = tuple(str(part) for part in error["loc"])
            line = lines.get(loc) or lines.get(loc[:1])
            env_name = f"{ENV_PREFIX}{'_'.join(loc).upper()}"
            source = (
                f"line {line}"
                if line and env_name not in environ
                else f"env {env_name}"
                if env_name in environ
                else "default"
            )
            problems.append(f"{'.'.join(loc)} ({source}): {error['msg']}")
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from err
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    config._base_dir = path.resolve().parent
    return config
