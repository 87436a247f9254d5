"""`moodbox player play|pause|next|volume N`: drive the running daemon's player."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edge.cli.common import EXIT_FAILED, EXIT_USAGE, HELP_FORMAT, config_from_args, config_parent


def cmd_player(args: argparse.Namespace) -> int:
    from edge.web.client import DaemonClient, DaemonError

    config = config_from_args(args)
    client = DaemonClient.find(config.state_dir())
    if client is None:
        print(
            "error: no running moodbox to control (the player lives in `moodbox run`, "
            "with web.enabled: true)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        if args.action == "volume":
            client.post("/api/volume", {"volume": args.value})
        else:
            client.post("/api/player", {"action": args.action.upper()})
    except (OSError, DaemonError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    what = f"volume {args.value}" if args.action == "volume" else args.action
    print(f"{what}: sent to the running moodbox")
    return 0


def register(sub: Any) -> None:
    config = config_parent()
    player = sub.add_parser(
        "player",
        help="play, pause, skip or set the volume of the daemon",
        description="Drive the running daemon's player (through its web app's local API).",
        formatter_class=HELP_FORMAT,
    )
    # Without a subcommand: this command's help, not argparse's "required" error.
    player.set_defaults(func=lambda _args: _usage(player))
    actions = player.add_subparsers(dest="action", metavar="ACTION")
    for action, text in (
        ("play", "play (or resume)"),
        ("pause", "pause"),
        ("next", "skip to another track (remembered as a skip)"),
    ):
        actions.add_parser(
            action,
            parents=[config],
            help=text,
            description=f"The running daemon's player: {text}.",
            formatter_class=HELP_FORMAT,
        ).set_defaults(func=cmd_player)
    volume = actions.add_parser(
        "volume",
        parents=[config],
        help="set the volume, 0–100",
        description="Set the running daemon's volume, in percent.",
        formatter_class=HELP_FORMAT,
    )
    volume.add_argument(
        "value", type=int, choices=range(101), metavar="N", help="the volume, 0 to 100"
    )
    volume.set_defaults(func=cmd_player)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE
