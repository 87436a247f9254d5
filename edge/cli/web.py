"""`moodbox web-password`: set the household password of the web app."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from edge.cli.common import EXIT_FAILED, EXIT_USAGE, HELP_FORMAT, config_from_args, config_parent


def cmd_web_password(args: argparse.Namespace) -> int:
    from edge.identify.store import make_state_dir
    from edge.web.auth import set_password

    config = config_from_args(args)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("household password: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ", file=sys.stderr)
            return EXIT_FAILED
    try:
        path = set_password(make_state_dir(config.state_dir()), password)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"web password set ({path}, a salted scrypt hash, readable by this user only)")
    return 0


def register(sub: Any) -> None:
    password = sub.add_parser(
        "web-password",
        parents=[config_parent()],
        help="set the household password of the web app (stored as a salted hash)",
        description="Set the password that signs the household in to the web app; it is "
        "stored as a salted scrypt hash in the state directory, readable by this user only.",
        formatter_class=HELP_FORMAT,
    )
    password.add_argument(
        "--stdin", action="store_true", help="read the password from one line of standard input"
    )
    password.set_defaults(func=cmd_web_password)
