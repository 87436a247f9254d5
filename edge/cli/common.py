"""What every `moodbox` command shares: exit codes, the --config option, logging set-up."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge.config import MoodboxConfig, find_config, load_config

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed (no broker, no usable face, a fatal error)
EXIT_USAGE = 2  # bad arguments or an invalid config: fix the input and run again

CONFIG_HELP = (
    "config file (default: $MOODBOX_CONFIG, else /etc/moodbox/config.yaml, else "
    "$XDG_CONFIG_HOME/moodbox/config.yaml, else the bundled demo config; "
    "`moodbox check-config` says which one it reads)"
)


class HelpFormat(argparse.HelpFormatter):
    """Help that shows each argument's default, where it has one the text does not name."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return text
        return f"{text} (default: %(default)s)"


HELP_FORMAT = HelpFormat


def config_parent() -> argparse.ArgumentParser:
    """The --config option, added to a subcommand as ``parents=[config_parent()]``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", type=Path, default=None, metavar="FILE", help=CONFIG_HELP)
    return parent


def config_path(args: argparse.Namespace) -> Path:
    """The file --config names, else the first of the lookup order (``find_config``)."""
    return find_config(getattr(args, "config", None))[0]


def config_from_args(args: argparse.Namespace) -> MoodboxConfig:
    """Load and validate the config the command was given (ConfigError if invalid)."""
    return load_config(config_path(args))


def setup_logging(level: str = "INFO") -> None:
    """Log lines on stderr (stdout carries the events), each with its time of day.

    Under systemd the journal stamps every line itself, so a second time would
    only be noise there: $JOURNAL_STREAM says that stderr goes to the journal.
    """
    in_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=fmt if in_journal else "%(asctime)s " + fmt,
        datefmt="%H:%M:%S",
        force=True,
    )
