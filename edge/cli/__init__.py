"""The `moodbox` command line: the one place where commands are registered.

Each module here adds its commands with ``register(subparsers)``; COMMANDS
lists them in help order. The modules import nothing heavy at the top, so
`moodbox check-config` never loads TFLite or pygame. Stage packages hold no
command code: they are used from here, never the other way round.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edge import __version__
from edge.cli import daemon, measure, mqtt, music, people, player, web
from edge.cli.common import EXIT_FAILED, EXIT_USAGE, config_from_args, setup_logging
from edge.errors import ConfigError, FatalError

__all__ = ["COMMANDS", "build_parser", "config_from_args", "main"]

COMMANDS: tuple[Callable[[Any], None], ...] = (
    daemon.register,  # run, check-config, doctor
    people.register,  # enroll, users, forget
    music.register,  # music scan|like|skip|replay|prefs
    player.register,  # player play|pause|next|volume (the running daemon)
    web.register,  # web-password
    mqtt.register,  # ha-remove, mqtt-check
    measure.register,  # bench, eval-emotion, eval-faces
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moodbox",
        description="A mood-aware speaker: face sign-in, emotion from a camera, fitting music.",
    )
    parser.add_argument("--version", action="version", version=f"moodbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging()
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        if err.problems != [str(err)]:  # a single problem is the message itself
            for problem in err.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except FatalError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
