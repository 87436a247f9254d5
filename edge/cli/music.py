"""`moodbox music …`: scan the library, record likes, skips and replays, show preferences."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from edge.cli.common import config_from_args, config_parent
from edge.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add the `music` command and its subcommands."""
    config = config_parent()
    music = subparsers.add_parser("music", help="music library and listening preferences")
    sub = music.add_subparsers(dest="music_command", required=True)

    scan = sub.add_parser(
        "scan", parents=[config], help="scan the music folders (incremental) and list the moods"
    )
    scan.add_argument("--tracks", action="store_true", help="one line per track")
    scan.set_defaults(func=cmd_scan)

    for kind, text in (
        ("like", "the listener likes this track in this mood"),
        ("skip", "the listener skipped this track in this mood"),
        ("replay", "the listener played this track again"),
    ):
        feedback = sub.add_parser(kind, parents=[config], help=f"record: {text}")
        feedback.add_argument("--user", default=None, help="who (default: the household)")
        feedback.add_argument(
            "--track", default=None, help="track id or path (default: what is playing now)"
        )
        feedback.add_argument("--mood", default=None, help="mood (default: the current one)")
        feedback.set_defaults(func=cmd_feedback, kind=kind)

    prefs = sub.add_parser(
        "prefs", parents=[config], help="show a listener's preference weights in a mood"
    )
    prefs.add_argument("--user", default=None)
    prefs.add_argument("--mood", default="neutral")
    prefs.set_defaults(func=cmd_prefs)


def cmd_scan(args: argparse.Namespace) -> int:
    from edge.music.controller import LIBRARY_CACHE
    from edge.music.library import scan_library

    config = config_from_args(args)
    library = scan_library(
        [config.resolve(folder) for folder in config.music.folders],
        cache_path=config.state_dir() / LIBRARY_CACHE,
    )
    if args.tracks:
        for track in library.tracks:
            print(
                f"{track.id}\t{track.mood}\t{track.point.valence:+.2f},{track.point.arousal:+.2f}"
                f"\t{track.placed_by}\t{track.artist} – {track.title}"
            )
    moods = Counter(track.mood for track in library.tracks)
    print(f"{len(library)} tracks: " + ", ".join(f"{m} {n}" for m, n in sorted(moods.items())))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from edge.music.controller import LIBRARY_CACHE
    from edge.music.library import scan_library
    from edge.music.preferences import NOW_PLAYING, PREFERENCES_DB, PreferenceStore

    config = config_from_args(args)
    state = config.state_dir()
    if args.kind in ("like", "skip") and not (args.track or args.user or args.mood):
        from edge.web.client import DaemonClient, DaemonError

        client = DaemonClient.find(state)
        if client is not None:  # the running player records it, and a skip skips
            action = "LIKE" if args.kind == "like" else "NEXT"
            try:
                client.post("/api/player", {"action": action})
            except (OSError, DaemonError) as err:
                raise ConfigError(f"the running moodbox refused {args.kind}: {err}") from err
            print(f"{args.kind}: sent to the running moodbox")
            return 0
    now: dict[str, Any] = {}
    now_file = state / NOW_PLAYING
    if now_file.is_file():
        try:
            now = json.loads(now_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            now = {}
    key = args.track or now.get("track_id")
    if not key:
        raise ConfigError("no track given and nothing is playing: pass --track ID_OR_PATH")
    library = scan_library(
        [config.resolve(folder) for folder in config.music.folders],
        cache_path=state / LIBRARY_CACHE,
    )
    track = library.find(str(key))
    if track is None:
        raise ConfigError(f"{key}: no such track in {[str(f) for f in config.music.folders]}")
    mood = (args.mood or now.get("mood") or track.mood).lower()
    with PreferenceStore(state / PREFERENCES_DB) as store:
        store.record(args.user, mood, track.id, args.kind, genre=track.genre, artist=track.artist)
    who = args.user or "household"
    print(f"{args.kind}: {track.id} for {who} in mood {mood}")
    return 0


def cmd_prefs(args: argparse.Namespace) -> int:
    from edge.music.preferences import PREFERENCES_DB, PreferenceStore

    config = config_from_args(args)
    path: Path = config.state_dir() / PREFERENCES_DB
    with PreferenceStore(path) as store:
        weights = store.weights(args.user, args.mood)
    for feature, weight in sorted(weights.items(), key=lambda kv: kv[1]):
        print(f"{weight:+.2f}\t{feature}")
    if not weights:
        print(f"no preferences yet for {args.user or 'the household'} in mood {args.mood}")
    return 0
