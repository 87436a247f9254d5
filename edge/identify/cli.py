"""Commands of face sign-in: `moodbox enroll`, `users`, `forget` and `eval-faces`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import MoodboxConfig

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _config(args: argparse.Namespace) -> MoodboxConfig:
    from edge.cli import config_from_args

    return config_from_args(args)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="config file")


def _detector(config: MoodboxConfig) -> Any:
    from edge.detect import BlazeFaceDetector

    return BlazeFaceDetector(
        config.resolve(config.detect.model),
        min_score=config.detect.min_score,
        nms_iou=config.detect.nms_iou,
        min_face_px=config.detect.min_face_px,
        threads=config.detect.threads,
    )


def _embedder(config: MoodboxConfig) -> Any:
    from edge.identify.embed import TFLiteFaceEmbedder

    return TFLiteFaceEmbedder(config.resolve(config.identify.model), threads=1)


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge.identify.enroll import choose, embed_images
    from edge.identify.store import UserStore, check_name

    config = _config(args)
    try:
        name = check_name(args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.images:
        samples, problems = embed_images(
            args.images, detector=_detector(config), embedder=_embedder(config)
        )
        for problem in problems:
            print(f"skipped {problem}", file=sys.stderr)
        chosen = choose(samples, max(config.identify.enroll_samples, args.samples or 0))
        if not chosen:
            print(f"error: no usable face in the {len(args.images)} image(s)", file=sys.stderr)
            return EXIT_FAILED
        with UserStore.in_state_dir(config.state_dir()) as store:
            total = store.add_embeddings(name, [s.vector for s in chosen])
        print(f"enrolled {name}: {len(chosen)} new sample(s), {total} in all")
        return 0
    return _enroll_from_camera(config, name)


def _enroll_from_camera(config: MoodboxConfig, name: str) -> int:
    from edge.camera import open_source
    from edge.errors import CameraError, EndOfStream
    from edge.identify.stage import IdentityStage
    from edge.track import Tracker

    detector = _detector(config)
    stage = IdentityStage.from_config(config)
    tracker = Tracker(
        iou_threshold=config.decide.track_iou, timeout_s=config.decide.track_timeout_s
    )
    stage.enroll_from_camera(name)
    print(f"enrolling {name}: look at the camera for a few seconds", file=sys.stderr)
    started = time.monotonic()
    try:
        with open_source(config) as source:
            while (
                stage.enrolling
                and time.monotonic() - started < config.identify.enroll_timeout_s + 5
            ):
                frame = source.read()
                seen, expired = tracker.update(detector.detect(frame.image), frame.timestamp)
                stage.process(frame, seen, expired, frame.timestamp)
    except (CameraError, EndOfStream) as err:
        print(f"error: camera: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        stage.close()
        stage.store.close()
    outcome = stage.last_enrolment
    if outcome is None or outcome[1] is not None:
        reason = outcome[1] if outcome else "the camera delivered too few frames"
        print(f"error: enrolling {name} failed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    print(f"enrolled {name} in {time.monotonic() - started:.1f} s")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from edge.identify.store import UserStore

    config = _config(args)
    with UserStore.in_state_dir(config.state_dir()) as store:
        users = store.users()
    if args.json:
        print(json.dumps([u.__dict__ if hasattr(u, "__dict__") else _user(u) for u in users]))
        return 0
    if not users:
        print("nobody enrolled (moodbox enroll NAME)")
    for user in users:
        seen = _when(user.last_seen) if user.last_seen else "never"
        print(
            f"{user.name}\t{user.samples} samples\tenrolled {_when(user.created)}\tlast seen {seen}"
        )
    return 0


def _user(user: Any) -> dict[str, Any]:
    return {
        "name": user.name,
        "created": user.created,
        "last_seen": user.last_seen,
        "samples": user.samples,
    }


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def cmd_forget(args: argparse.Namespace) -> int:
    from edge.identify.forget import forget_user
    from edge.identify.store import UserStore

    config = _config(args)
    with UserStore.in_state_dir(config.state_dir()) as store:
        removed = forget_user(store, args.name)
    if removed is None:
        print(f"error: nobody called {args.name!r} is enrolled", file=sys.stderr)
        return EXIT_FAILED
    print(f"forgot {removed}: every embedding, image and music preference of them is deleted")
    return 0


def cmd_eval_faces(args: argparse.Namespace) -> int:
    from edge.identify import evaluate

    config = _config(args)
    if not args.images.is_dir():
        print(f"error: {args.images} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    model = config.resolve(config.identify.model)
    detector, embedder = _detector(config), _embedder(config)
    cache = None if args.no_cache else args.cache

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
        report.update(asdict_plain(verification))
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


def asdict_plain(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


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


def register(subparsers: Any) -> None:
    """Add the face sign-in commands to the `moodbox` parser."""
    enroll = subparsers.add_parser(
        "enroll", help="enrol a person by their face (camera, or --images FILE...)"
    )
    enroll.add_argument("name")
    enroll.add_argument("--images", type=Path, nargs="+", help="image files instead of the camera")
    enroll.add_argument(
        "--samples", type=int, default=None, help="samples to keep (default: config)"
    )
    _add_config(enroll)
    enroll.set_defaults(func=cmd_enroll)

    users = subparsers.add_parser("users", help="list enrolled people")
    users.add_argument("--json", action="store_true")
    _add_config(users)
    users.set_defaults(func=cmd_users)

    forget = subparsers.add_parser("forget", help="delete a person and every trace of them")
    forget.add_argument("name")
    _add_config(forget)
    forget.set_defaults(func=cmd_forget)

    ev = subparsers.add_parser(
        "eval-faces", help="face verification accuracy (LFW pairs) and household simulation"
    )
    ev.add_argument("--pairs", type=Path, help="pairs file in LFW format")
    ev.add_argument(
        "--images", type=Path, required=True, help="image folder (lfw/, orl/, yalefaces/)"
    )
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.add_argument("--people", type=int, default=6, help="household: people enrolled")
    ev.add_argument("--shots", type=int, default=4, help="household: images per enrolled person")
    ev.add_argument("--trials", type=int, default=20, help="household: random households")
    ev.add_argument("--no-household", action="store_true", help="pairs only")
    ev.add_argument("--cache", type=Path, default=Path(".cache"), help="embedding cache folder")
    ev.add_argument("--no-cache", action="store_true")
    ev.add_argument(
        "--repeats", type=int, default=100, help="timed embeddings (median ms reported)"
    )
    _add_config(ev)
    ev.set_defaults(func=cmd_eval_faces)
