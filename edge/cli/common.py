"""What every `moodbox` command shares: exit codes, the --config option, logging set-up."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from edge.config import DEFAULT_CONFIG, MoodboxConfig, load_config

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed (no broker, no usable face, a fatal error)
EXIT_USAGE = 2  # bad arguments or an invalid config: fix the input and run again

CONFIG_HELP = f"config file (default: $MOODBOX_CONFIG, else {DEFAULT_CONFIG})"


def config_parent() -> argparse.ArgumentParser:
    """The --config option, added to a subcommand as ``parents=[config_parent()]``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", type=Path, default=None, metavar="FILE", help=CONFIG_HELP)
    return parent


def config_path(args: argparse.Namespace) -> Path:
    """The file --config names, else $MOODBOX_CONFIG, else the default."""
    explicit: Path | None = getattr(args, "config", None)
    if explicit is not None:
        return explicit
    from_env = os.environ.get("MOODBOX_CONFIG")
    return Path(from_env) if from_env else DEFAULT_CONFIG


def config_from_args(args: argparse.Namespace) -> MoodboxConfig:
    """Load and validate the config the command was given (ConfigError if invalid)."""
    return load_config(config_path(args))


def setup_logging(level: str = "INFO") -> None:
    # Logs go to stderr so stdout carries only JSON events; journald adds timestamps.
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )
