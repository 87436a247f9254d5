"""`moodbox enroll`, `users` and `forget`: who face sign-in knows."""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    HELP_FORMAT,
    config_from_args,
    config_parent,
)
from edge.config import MoodboxConfig


def _confirm_for(force: bool) -> Callable[[str, list[str]], bool]:
    """Whether to store a face that already signs in as someone else: yes with --force,
    else ask on a terminal, else (a script, no one to ask) no, with the way out."""

    def confirm(name: str, others: list[str]) -> bool:
        who = ", ".join(others)
        print(f"warning: this face already signs in as {who}", file=sys.stderr)
        if force:
            return True
        if sys.stdin.isatty():
            answer = input(f"store it as {name} as well? [y/N] ")
            return answer.strip().lower() in ("y", "yes")
        print(
            f"error: not enrolling {name}: pass --force to store it anyway, or "
            f"`moodbox forget {others[0]}` first if that was the same person",
            file=sys.stderr,
        )
        return False

    return confirm


def cmd_enroll(args: argparse.Namespace) -> int:
    import numpy as np

    from edge.backends import make_detector, make_embedder
    from edge.identify.embed import embedder_model_id
    from edge.identify.enroll import choose, embed_images
    from edge.identify.recognize import Gallery, resembling
    from edge.identify.store import UserStore, check_name, fold_name

    config = config_from_args(args)
    try:
        name = check_name(args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    confirm = _confirm_for(args.force)
    if not args.images:
        from edge.web.client import DaemonClient

        client = DaemonClient.find(config.state_dir())
        if client is not None:  # the running daemon holds the camera: it enrols
            return _enroll_through_daemon(client, name, config.identify.enroll_timeout_s)
        return _enroll_from_camera(config, name, confirm)
    embedder = make_embedder(config, threads=1)
    model = embedder_model_id(embedder)
    samples, problems = embed_images(args.images, detector=make_detector(config), embedder=embedder)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    chosen = choose(samples, max(config.identify.enroll_samples, args.samples or 0))
    if not chosen:
        print(f"error: no usable face in the {len(args.images)} image(s)", file=sys.stderr)
        return EXIT_FAILED
    vectors = [s.vector for s in chosen]
    with UserStore.in_state_dir(config.state_dir()) as store:
        gallery = Gallery.from_embeddings(store.embeddings(model))
        others = [
            other  # the same person under another spelling is not someone else
            for other in resembling(
                np.stack(vectors), gallery, threshold=config.identify.threshold, besides=name
            )
            if fold_name(other) != fold_name(name)
        ]
        if others and not confirm(name, others):
            return EXIT_FAILED
        total = store.add_embeddings(name, vectors, model=model)
    print(f"enrolled {name}: {len(chosen)} new sample(s), {total} in all")
    return 0


def _enroll_through_daemon(client: Any, name: str, timeout_s: float) -> int:
    """Ask the running daemon to enrol from its camera; wait for the outcome."""
    from edge.web.client import DaemonError

    try:
        before = client.get("/api/enrolment").get("last")
        client.post("/api/people/enroll", {"name": name})
        print(f"enrolling {name} (running moodbox): look at the camera", file=sys.stderr)
        started = time.monotonic()
        while time.monotonic() - started < timeout_s + 10:
            time.sleep(0.3)
            view = client.get("/api/enrolment")
            last = view.get("last")
            if view.get("active") is None and last and last != before and last.get("user") == name:
                if not last.get("ok"):
                    print(f"error: enrolling {name} failed: {last.get('detail')}", file=sys.stderr)
                    return EXIT_FAILED
                for other in last.get("also_matches") or []:
                    print(f"warning: this face already signs in as {other}", file=sys.stderr)
                print(f"enrolled {name} in {time.monotonic() - started:.1f} s")
                return 0
    except (OSError, DaemonError) as err:
        print(f"error: the running moodbox: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"error: enrolling {name}: no outcome from the running moodbox", file=sys.stderr)
    return EXIT_FAILED


def _enroll_from_camera(
    config: MoodboxConfig, name: str, confirm: Callable[[str, list[str]], bool]
) -> int:
    """Enrol through the same pipeline `moodbox run` drives (lores stream, tracker, stage)."""
    from edge.camera import open_source
    from edge.errors import CameraError, EndOfStream
    from edge.pipeline import Pipeline
    from edge.stats import Stats

    if not config.identify.enabled:
        print("error: face sign-in is off (identify.enabled: false)", file=sys.stderr)
        return EXIT_USAGE
    pipeline = Pipeline.from_config(config, Stats())
    stage = pipeline.identity
    assert stage is not None  # identify.enabled was checked above
    stage.enroll_from_camera(name, confirm=confirm)
    print(f"enrolling {name}: look at the camera for a few seconds", file=sys.stderr)
    started = time.monotonic()
    try:
        with open_source(config) as source:
            while (
                stage.enrolling
                and time.monotonic() - started < config.identify.enroll_timeout_s + 5
            ):
                pipeline.process(source.read())
    except (CameraError, EndOfStream) as err:
        print(f"error: camera: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        pipeline.close()
    outcome = stage.last_enrolment
    if outcome is None or outcome[1] is not None:
        reason = outcome[1] if outcome else "the camera delivered too few frames"
        print(f"error: enrolling {name} failed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    print(f"enrolled {name} in {time.monotonic() - started:.1f} s")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from edge.identify.embed import REENROL_HINT, model_id
    from edge.identify.store import UserStore

    config = config_from_args(args)
    model = config.resolve(config.identify.model)
    with UserStore.in_state_dir(config.state_dir()) as store:
        users = store.users()
        # People whose samples another face model made are not recognised by this one.
        stale = store.other_models(model_id(model)) if model.is_file() else {}
    if args.json:
        print(json.dumps([_user(u, u.name in stale) for u in users]))
        return 0
    if not users:
        print("nobody enrolled (moodbox enroll NAME)")
    for user in users:
        seen = _when(user.last_seen) if user.last_seen else "never"
        note = f"\tenrolled with another face model: {REENROL_HINT}" if user.name in stale else ""
        print(
            f"{user.name}\t{user.samples} samples\tenrolled {_when(user.created)}"
            f"\tlast seen {seen}{note.format(name=user.name)}"
        )
    return 0


def _user(user: Any, other_model: bool) -> dict[str, Any]:
    return {
        "name": user.name,
        "created": _when(user.created),
        "last_seen": _when(user.last_seen) if user.last_seen else None,
        "samples": user.samples,
        "other_model": other_model,
    }


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def cmd_forget(args: argparse.Namespace) -> int:
    from edge.history import HistoryStore
    from edge.identify.forget import forget_user
    from edge.identify.store import UserStore
    from edge.web.client import DaemonClient, DaemonError

    config = config_from_args(args)
    client = DaemonClient.find(config.state_dir())
    if client is not None:  # the daemon forgets: its gallery, presence and history at once
        try:
            client.post("/api/people/forget", {"name": args.name, "confirm": args.name})
        except (OSError, DaemonError) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_FAILED
        print(f"forgot {args.name}: every embedding, image and history row of them is deleted")
        return 0
    with UserStore.in_state_dir(config.state_dir()) as store:
        removed = forget_user(store, args.name)
    with HistoryStore.in_state_dir(config.state_dir()) as history:
        # The history names people as the store does (NFC): a second forget cleans up too.
        history.forget(removed or unicodedata.normalize("NFC", args.name).strip())
    if removed is None:
        print(f"error: nobody called {args.name!r} is enrolled", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"forgot {removed}: every embedding, image, music preference and history row "
        "of them is deleted"
    )
    if config.rooms.sync:
        print("the household's other boxes forget them too once this box's daemon shares it")
    return 0


def register(sub: Any) -> None:
    config = config_parent()
    enroll = sub.add_parser(
        "enroll",
        parents=[config],
        help="enrol a person by their face (camera, or --images FILE...)",
        description="Enrol a person for face sign-in: from the camera (look at it for a few "
        "seconds; with the daemon stopped, as it holds the camera) or from photos. Enrolling "
        "again adds samples. A face that already signs in as someone else is asked about on "
        "a terminal and refused elsewhere unless --force.",
        formatter_class=HELP_FORMAT,
    )
    enroll.add_argument("name", metavar="NAME", help="the person's name (1 to 64 characters)")
    enroll.add_argument(
        "--images",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="photos of the person instead of the camera (the largest face of each)",
    )
    enroll.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="samples to keep (default: identify.enroll_samples)",
    )
    enroll.add_argument(
        "--force",
        action="store_true",
        help="store the face even if it already signs in as someone else",
    )
    enroll.set_defaults(func=cmd_enroll)

    users = sub.add_parser(
        "users",
        parents=[config],
        help="list enrolled people",
        description="List enrolled people: samples, when enrolled, when last seen (UTC).",
        formatter_class=HELP_FORMAT,
    )
    users.add_argument(
        "--json", action="store_true", help="one JSON array on stdout (ISO-8601 times)"
    )
    users.set_defaults(func=cmd_users)

    forget = sub.add_parser(
        "forget",
        parents=[config],
        help="delete a person and every trace of them",
        description="Delete an enrolled person: their name, every embedding and any debug "
        "image; the store is rewritten so nothing lingers in free pages.",
        formatter_class=HELP_FORMAT,
    )
    forget.add_argument("name", metavar="NAME", help="the enrolled name (see moodbox users)")
    forget.set_defaults(func=cmd_forget)
