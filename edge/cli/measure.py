"""`moodbox bench`, `eval-emotion` and `eval-faces`: what the pipeline costs, what models score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.cli.common import (
    EXIT_USAGE,
    HELP_FORMAT,
    config_from_args,
    config_parent,
    config_path,
    setup_logging,
)
from edge.config import cache_dir

logger = logging.getLogger(__name__)


def cmd_bench(args: argparse.Namespace) -> int:
    from edge.measure.benchmark import BenchOptions, run_bench
    from edge.measure.report import table

    config = config_from_args(args)
    setup_logging("WARNING")  # progress logs would interleave with the table
    options = BenchOptions(
        frames=args.frames,
        idle_seconds=args.idle_seconds,
        startup_runs=args.startup_runs,
        baseline=args.baseline,
        baseline_python=args.baseline_python,
        baseline_frames=args.baseline_frames,
        cpu=args.cpu,
    )
    report = run_bench(config_path(args), config, options)
    print(json.dumps(report) if args.json else table(report))
    return 0


def cmd_eval_emotion(args: argparse.Namespace) -> int:
    from edge.backends import make_classifier
    from edge.measure.emotion_eval import dump_json, evaluate_emotion, plot_confusion

    config = config_from_args(args)
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder of class folders", file=sys.stderr)
        return EXIT_USAGE
    if args.tta is not None:
        config = config.model_copy(
            update={"emotion": config.emotion.model_copy(update={"flip_tta": args.tta})}
        )
    classifier = make_classifier(config, threads=1)
    report = evaluate_emotion(classifier, args.directory)
    if report.n == 0:
        print(f"error: no images found under {args.directory}/<emotion>/", file=sys.stderr)
        return EXIT_USAGE
    print(dump_json(report) if args.json else report.table())
    if args.plot:
        plot_confusion(report, args.plot, args.title or "")
    return 0


def cmd_eval_faces(args: argparse.Namespace) -> int:
    from edge.backends import make_detector, make_embedder
    from edge.measure import face_eval as evaluate

    config = config_from_args(args)
    if not args.images.is_dir():
        print(f"error: {args.images} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    model = config.resolve(config.identify.model)
    detector, embedder = make_detector(config), make_embedder(config, threads=1)
    cache = None if args.no_cache else (args.cache or cache_dir() / "embeddings")

    def embed(paths: Any) -> evaluate.Embedded:
        return evaluate.embed_files(
            paths,
            detector=detector,
            embedder=embedder,
            cache=cache,
            model_id=evaluate.model_id(model),
            progress=lambda i, n: logger.info("embedded %d/%d images", i, n),
        )

    report: dict[str, Any] = {"model": str(model)}
    if args.pairs:
        pairs = evaluate.parse_pairs(args.pairs, args.images)
        if not pairs:
            print(f"error: no pairs in {args.pairs}", file=sys.stderr)
            return EXIT_USAGE
        verification = evaluate.verify_pairs(pairs, embed)
        report.update(asdict(verification))
    if not args.no_household:
        people = evaluate.find_people(args.images)
        embedded = embed(sorted(p for paths in people.values() for p in paths))
        household = evaluate.simulate_household(
            people,
            embedded,
            threshold=config.identify.threshold,
            margin=config.identify.margin,
            n_people=args.people,
            shots=args.shots,
            frames=min(config.identify.min_frames, len(evaluate.VIEWS)),
            trials=args.trials,
            sweep=[round(0.30 + 0.025 * i, 3) for i in range(17)],
        )
        report["household"] = household
    report["ms_per_embedding"] = evaluate.time_embedding(embedder, repeats=args.repeats)
    if args.json:
        print(evaluate.to_json(report))
    else:
        print(_table(report))
    return 0


def _table(report: dict[str, Any]) -> str:
    lines = []
    if "accuracy" in report:
        r = report
        lines += [
            f"pairs: {r['pairs']} ({r['positives']} same, {r['negatives']} different)",
            f"accuracy (10-fold): {100 * r['accuracy']:.2f}% ± {100 * r['accuracy_std']:.2f}"
            f" at threshold {r['threshold']:.3f}",
            f"TAR at FAR 0.1%: {100 * r['tar_at_far_0_001']:.2f}%"
            f" (threshold {r['threshold_at_far_0_001']:.3f})",
            f"one pass per image, without the mirror image: accuracy "
            f"{100 * r['accuracy_single_view']:.2f}%, TAR at FAR 0.1% "
            f"{100 * r['tar_at_far_0_001_single_view']:.2f}%",
            f"detector fallbacks: {r['detector_fallbacks']}, missing images: {r['missing_images']}",
        ]
    household = report.get("household")
    if household is not None:
        lines.append(
            f"household: {household.trials} trials of {household.people} people enrolled from "
            f"{household.shots} images, tracks of {household.frames} frames; "
            f"{household.enrolled_pool} candidates, {household.stranger_pool} images"
        )
        lines.append("threshold  false sign-in  correct sign-in  wrong user  (false / strangers)")
        for p in household.sweep:
            mark = " <- config" if p.threshold == household.operating_point.threshold else ""
            lines.append(
                f"{p.threshold:9.3f}  {100 * p.false_sign_in:12.3f}%  "
                f"{100 * p.correct_sign_in:14.2f}%  {100 * p.wrong_user:9.2f}%  "
                f"({p.false_sign_ins}/{p.stranger_tracks}){mark}"
            )
    lines.append(f"embedding: {report['ms_per_embedding']:.1f} ms per face (one thread)")
    return "\n".join(lines)


def register(sub: Any) -> None:
    config = config_parent()
    bench = sub.add_parser(
        "bench",
        parents=[config],
        help="per-stage latency, fps, CPU, memory, start-up; the fer baseline",
        description="Benchmark the pipeline on the replay clip: latency per stage, fps, "
        "CPU at the paced frame rate, memory, start-up time, and the same for the fer "
        'baseline where its environment exists (README "Performance").',
        formatter_class=HELP_FORMAT,
    )
    bench.add_argument("--frames", type=int, default=300, help="frames per throughput run")
    bench.add_argument("--json", action="store_true", help="one JSON object on stdout")
    bench.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the fer baseline (default: when its environment exists)",
    )
    bench.add_argument(
        "--baseline-python", type=Path, default=None, help="python of the fer environment"
    )
    bench.add_argument("--baseline-frames", type=int, default=20, help="frames timed for fer")
    bench.add_argument(
        "--idle-seconds", type=float, default=10.0, help="length of each paced CPU run"
    )
    bench.add_argument("--startup-runs", type=int, default=3, help="fresh processes timed")
    bench.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last)")
    bench.set_defaults(func=cmd_bench)

    ev = sub.add_parser(
        "eval-emotion",
        parents=[config],
        help="accuracy of the emotion model on DIR/<class>/*",
        description="Accuracy, per-class recall and the confusion matrix of the configured "
        "emotion model on a folder of class folders (DIR/happy/*.png, DIR/sad/*, ...).",
        formatter_class=HELP_FORMAT,
    )
    ev.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="folder with one folder of face images per emotion",
    )
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.add_argument(
        "--plot", type=Path, metavar="FILE", help="write a confusion-matrix PNG (needs matplotlib)"
    )
    ev.add_argument("--title", help="title of the plot (default: none)")
    ev.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the face and its mirror image (default: emotion.flip_tta)",
    )
    ev.set_defaults(func=cmd_eval_emotion)

    faces = sub.add_parser(
        "eval-faces",
        parents=[config],
        help="face verification accuracy (LFW pairs) and household simulation",
        description="Face verification on LFW-format pairs (10-fold accuracy, TAR at FAR "
        "0.1%%) and an open-set household simulation over every identity under --images "
        "(false and correct sign-ins).",
        formatter_class=HELP_FORMAT,
    )
    faces.add_argument(
        "--pairs", type=Path, help="pairs file in LFW format (without it: no pairs test)"
    )
    faces.add_argument(
        "--images", type=Path, required=True, help="image folder (lfw/, orl/, yalefaces/)"
    )
    faces.add_argument("--json", action="store_true", help="one JSON object on stdout")
    faces.add_argument("--people", type=int, default=6, help="household: people enrolled")
    faces.add_argument("--shots", type=int, default=4, help="household: images per enrolled person")
    faces.add_argument("--trials", type=int, default=20, help="household: random households")
    faces.add_argument(
        "--no-household", action="store_true", help="pairs only: skip the household simulation"
    )
    faces.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="embedding cache folder (default: $XDG_CACHE_HOME/moodbox/embeddings)",
    )
    faces.add_argument("--no-cache", action="store_true", help="embed every image afresh")
    faces.add_argument(
        "--repeats", type=int, default=100, help="timed embeddings (median ms reported)"
    )
    faces.set_defaults(func=cmd_eval_faces)
