"""The `moodbox` command line: run the daemon, check config, evaluate models, and more.

Core commands live here; each feature module that adds commands exposes
``register(subparsers)`` and is listed in COMMAND_MODULES (one explicit list,
imported lazily so `moodbox check-config` never loads TFLite or pygame).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from edge import __version__
from edge.config import DEFAULT_CONFIG, MoodboxConfig, load_config
from edge.errors import ConfigError, FatalError

logger = logging.getLogger("edge")

EXIT_CONFIG = 2
EXIT_FATAL = 1

# Feature modules with a ``register(subparsers)`` function.
COMMAND_MODULES: tuple[str, ...] = (
    "edge.doctor",
    "edge.publish.cli",
    "edge.music.cli",
    "edge.identify.cli",
    "edge.bench",
)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: $MOODBOX_CONFIG or {DEFAULT_CONFIG})",
    )


def config_from_args(args: argparse.Namespace) -> MoodboxConfig:
    """Load the config named by --config, $MOODBOX_CONFIG, or the repository default."""
    import os

    path = args.config or (
        Path(os.environ["MOODBOX_CONFIG"]) if os.environ.get("MOODBOX_CONFIG") else DEFAULT_CONFIG
    )
    return load_config(path)


def setup_logging(level: str = "INFO") -> None:
    # Logs go to stderr so stdout carries only JSON events; journald adds timestamps.
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )


def cmd_run(args: argparse.Namespace) -> int:
    from edge.app import App, Pipeline, RunLimits, build_services
    from edge.stats import Stats
    from edge.supervise import arm_stop_deadline, install_debug_handlers

    config = config_from_args(args)
    setup_logging(config.general.log_level)
    install_debug_handlers()
    stats = Stats()  # shared with the MQTT stats topic
    pipeline = Pipeline.from_config(config, stats)
    services = build_services(config, stats=stats, parts=[pipeline.identity])
    app = App(config, stats=stats, pipeline=pipeline, services=services)

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


def cmd_eval_emotion(args: argparse.Namespace) -> int:
    from edge.classify import TFLiteEmotionClassifier
    from edge.evaluate import dump_json, evaluate_emotion, plot_confusion

    config = config_from_args(args)
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder of class folders", file=sys.stderr)
        return EXIT_CONFIG
    classifier = TFLiteEmotionClassifier(
        config.resolve(config.emotion.model),
        config.resolve(config.emotion.labels),
        config.resolve(config.emotion.metadata),
        flip_tta=config.emotion.flip_tta and not args.no_tta,
        threads=1,
    )
    report = evaluate_emotion(classifier, args.directory)
    if report.n == 0:
        print(f"error: no images found under {args.directory}/<emotion>/", file=sys.stderr)
        return EXIT_CONFIG
    print(dump_json(report) if args.json else report.table())
    if args.plot:
        plot_confusion(report, args.plot, args.title or "")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodbox", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"moodbox {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon (default config: the bundled demo)")
    _config_arg(run)
    run.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    run.add_argument("--max-seconds", type=float, default=None, help="stop after S seconds")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check-config", help="validate a config file, its paths and models (exit 2 if not)"
    )
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    ev = sub.add_parser("eval-emotion", help="accuracy of the emotion model on DIR/<class>/*")
    ev.add_argument("directory", type=Path)
    _config_arg(ev)
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.add_argument("--plot", type=Path, help="write a confusion-matrix PNG")
    ev.add_argument("--title", help="title of the plot")
    ev.add_argument("--no-tta", action="store_true", help="single pass, no mirror image")
    ev.set_defaults(func=cmd_eval_emotion)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging()
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except FatalError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
