"""`moodbox music …`: scan the library, record likes, skips and replays, show preferences."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from edge.cli.common import EXIT_USAGE, HELP_FORMAT, config_from_args, config_parent
from edge.errors import ConfigError
from edge.music.moods import EMOTION_POINTS

# The moods preferences are kept for: the emotion model's labels.
MOODS: tuple[str, ...] = tuple(EMOTION_POINTS)


def register(subparsers: Any) -> None:
    """Add the `music` command and its subcommands."""
    config = config_parent()
    music = subparsers.add_parser(
        "music",
        help="music library and listening preferences",
        description="The music library and what each listener likes in each mood.",
        formatter_class=HELP_FORMAT,
    )
    # Without a subcommand: this command's help, not argparse's "required" error.
    music.set_defaults(func=lambda _args: _usage(music))
    sub = music.add_subparsers(dest="music_command", metavar="SUBCOMMAND")

    scan = sub.add_parser(
        "scan",
        parents=[config],
        help="scan the music folders (incremental) and list the moods",
        description="Scan music.folders for mp3, ogg, wav and flac (only new or changed "
        "files are read; the rest comes from the cache in the state directory) and count "
        "the tracks per mood.",
        formatter_class=HELP_FORMAT,
    )
    scan.add_argument(
        "--tracks",
        action="store_true",
        help="one line per track: id, mood, valence,arousal, what placed it, artist – title",
    )
    scan.set_defaults(func=cmd_scan)

    for kind, text in (
        ("like", "the listener likes this track in this mood"),
        ("skip", "the listener skipped this track in this mood"),
        ("replay", "the listener played this track again"),
    ):
        feedback = sub.add_parser(
            kind,
            parents=[config],
            help=f"record: {text}",
            description=f"Record that {text}; the next picks for this listener in this mood "
            "weigh the track, its genre and its artist accordingly.",
            formatter_class=HELP_FORMAT,
        )
        _listener_options(feedback, mood_default=None)
        feedback.add_argument(
            "--track",
            default=None,
            metavar="ID",
            help="track id or path (default: what is playing now)",
        )
        feedback.set_defaults(func=cmd_feedback, kind=kind)

    prefs = sub.add_parser(
        "prefs",
        parents=[config],
        help="show a listener's preference weights in a mood",
        description="The learned weights (track, genre, artist) of a listener in a mood, "
        "lowest first.",
        formatter_class=HELP_FORMAT,
    )
    _listener_options(prefs, mood_default="neutral")
    prefs.set_defaults(func=cmd_prefs)


def _listener_options(parser: argparse.ArgumentParser, *, mood_default: str | None) -> None:
    parser.add_argument(
        "--user",
        default=None,
        metavar="NAME",
        help="an enrolled person (default: the household, everyone's shared profile)",
    )
    parser.add_argument(
        "--mood",
        default=mood_default,
        choices=MOODS,
        type=str.lower,
        help="the mood"
        + (" (default: the mood of what is playing now)" if mood_default is None else ""),
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _check_user(args: argparse.Namespace, config: Any) -> str | None:
    """None if ``--user`` is unset or enrolled; else the error line with the valid names."""
    if args.user is None:
        return None
    from edge.identify.store import UserStore, fold_name

    with UserStore.in_state_dir(config.state_dir()) as store:
        names = [user.name for user in store.users()]
    # Names match as the user store matches them: any case, any Unicode form.
    if fold_name(args.user) in {fold_name(name) for name in names}:
        return None
    known = ", ".join(names) if names else "nobody yet (moodbox enroll NAME)"
    return f"--user {args.user!r} is not enrolled; enrolled: {known}"


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
    problem = _check_user(args, config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
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
    problem = _check_user(args, config)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    path: Path = config.state_dir() / PREFERENCES_DB
    with PreferenceStore(path) as store:
        weights = store.weights(args.user, args.mood)
    for feature, weight in sorted(weights.items(), key=lambda kv: kv[1]):
        print(f"{weight:+.2f}\t{feature}")
    if not weights:
        print(f"no preferences yet for {args.user or 'the household'} in mood {args.mood}")
    return 0
