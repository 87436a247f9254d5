"""`moodbox run`, `check-config` and `doctor`: the daemon and the checks before it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from edge.cli.common import EXIT_FAILED, config_from_args, config_parent, setup_logging
from edge.config import load_config
from edge.errors import ConfigError

logger = logging.getLogger("edge")


def cmd_run(args: argparse.Namespace) -> int:
    from edge.app import RunLimits, build
    from edge.supervise import arm_stop_deadline, install_debug_handlers

    config = config_from_args(args)
    setup_logging(config.general.log_level)
    install_debug_handlers()
    app = build(config)

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

    problems = file_problems(load_config(args.file))
    if problems:
        raise ConfigError(f"{args.file}: {len(problems)} problem(s)", problems)
    print(f"{args.file}: OK")
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
    where = args.config or os.environ.get("MOODBOX_CONFIG") or "the default config"
    results = [Result("config", Status.PASS, f"{where} is valid"), *run_checks(config)]
    print(f"moodbox doctor (python {sys.version.split()[0]}, {sys.prefix})")
    print(format_report(results))
    return EXIT_FAILED if any(r.status is Status.FAIL for r in results) else 0


def register(sub: Any) -> None:
    config = config_parent()
    run = sub.add_parser(
        "run", parents=[config], help="run the daemon (default config: the bundled demo)"
    )
    run.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    run.add_argument("--max-seconds", type=float, default=None, help="stop after S seconds")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check-config", help="validate a config file, its paths and models (exit 2 if not)"
    )
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    doctor = sub.add_parser(
        "doctor",
        parents=[config],
        help="check camera, audio, models, broker, disk and permissions",
    )
    doctor.set_defaults(func=cmd_doctor)
