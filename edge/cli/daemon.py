"""`moodbox run`, `check-config` and `doctor`: the daemon and the checks before it."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from edge.cli.common import (
    EXIT_FAILED,
    HELP_FORMAT,
    config_from_args,
    config_parent,
    setup_logging,
)
from edge.config import find_config, load_config
from edge.errors import ConfigError

logger = logging.getLogger("edge")


def cmd_run(args: argparse.Namespace) -> int:
    from edge.app import RunLimits, build, default_sinks
    from edge.supervise import arm_stop_deadline, install_debug_handlers

    config = config_from_args(args)
    setup_logging(config.general.log_level)
    install_debug_handlers()
    app = build(config, sinks=default_sinks(config, json_lines=args.json))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        app.stop()
        # A read stuck longer than a camera stall cannot be waited for.
        arm_stop_deadline(2 * config.camera.open_timeout_s + 1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return app.run(RunLimits(max_frames=args.max_frames, max_seconds=args.max_seconds))


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.doctor import file_problems

    path, reason = find_config(args.file)
    if args.file is None:
        print(f"reading {path} ({reason})")
    problems = file_problems(load_config(path))
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    print(f"{path}: OK")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from edge.doctor import Result, Status, format_report, run_checks

    try:
        config = config_from_args(args)
    except ConfigError as err:
        results = [Result("config", Status.FAIL, str(err))]
        print(format_report(results))
        for problem in err.problems:
            print(f"        {problem}")
        return EXIT_FAILED
    path, reason = find_config(args.config)
    results = [Result("config", Status.PASS, f"{path} ({reason}) is valid"), *run_checks(config)]
    print(f"moodbox doctor (python {sys.version.split()[0]}, {sys.prefix})")
    print(format_report(results))
    return EXIT_FAILED if any(r.status is Status.FAIL for r in results) else 0


def register(sub: Any) -> None:
    config = config_parent()
    run = sub.add_parser(
        "run",
        parents=[config],
        help="run the daemon (without a config anywhere: the bundled demo)",
        description="Run the daemon: camera, faces, moods, music and MQTT until stopped "
        "(Ctrl-C or SIGTERM). Events go to stdout: readable lines on a terminal, JSON "
        "lines when piped or with --json; logs go to stderr.",
        formatter_class=HELP_FORMAT,
    )
    run.add_argument(
        "--max-frames", type=int, default=None, metavar="N", help="stop after N frames"
    )
    run.add_argument(
        "--max-seconds", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="events as JSON lines on stdout even on a terminal (always when piped)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check-config",
        help="validate a config file, its paths and models (exit 2 if not)",
        description="Validate a config file with the MOODBOX_* overrides of the environment, "
        "and that the files it names exist and the models load: OK, or every problem with "
        "its key path and YAML line (exit 2). Without FILE it checks the file every other "
        "command would read and says which one that is.",
        formatter_class=HELP_FORMAT,
    )
    check.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=None,
        metavar="FILE",
        help="the config file (default: the lookup order of --config elsewhere: "
        "$MOODBOX_CONFIG, /etc/moodbox/config.yaml, $XDG_CONFIG_HOME/moodbox/config.yaml, "
        "the bundled demo)",
    )
    check.set_defaults(func=cmd_check_config)

    doctor = sub.add_parser(
        "doctor",
        parents=[config],
        help="check camera, audio, models, music, broker, disk and permissions",
        description="Check what `moodbox run` needs, one line each (PASS, WARN, FAIL, SKIP), "
        "with what to do about a failure; exits 1 if anything failed.",
        formatter_class=HELP_FORMAT,
    )
    doctor.set_defaults(func=cmd_doctor)
