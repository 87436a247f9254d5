"""The Flask app: pages and the JSON control API, over a ``WebService``.

Every request but sign-in and the static files needs a signed-in session
(cookie: HttpOnly, SameSite=Strict, Secure under TLS) or the local token the
daemon wrote for `moodbox` commands. Every state-changing request from a
browser carries the session's CSRF token (header ``X-CSRF-Token`` or form
field ``csrf_token``); a token-authenticated request sends no cookie, so it
cannot be forged cross-site and needs none. Pages load only the box's own
script and style (Content-Security-Policy ``'self'``, no inline script).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from flask import Flask, Response, abort, jsonify, redirect, render_template, request, session
from werkzeug.exceptions import HTTPException

from edge import __version__
from edge.control import InvalidCommandError, parse_mood_override, parse_volume
from edge.web.auth import SignInLimiter, check_password, password_is_set, session_secret
from edge.web.commands import decode_vectors, encode_vectors, valid_name

if TYPE_CHECKING:
    from edge.web.service import WebService

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
MAX_IMAGE_SIDE = 4096
PREVIEW_WIDTH = 480
CHART_LEFT, CHART_WIDTH = 80, 405  # the history timeline's SVG, 500 units wide
CHART_STEPS_MIN = (1, 5, 10, 15, 30, 60, 120)  # tick spacings, minutes
BACKUP_FORMAT = "moodbox-people"
MOOD_COLOURS = {
    "angry": "#d9534f",
    "disgust": "#8e6c3a",
    "fear": "#7b5ea7",
    "happy": "#f0ad4e",
    "sad": "#3f7cc4",
    "surprise": "#2bb3a3",
    "neutral": "#9aa0a6",
}
PAGES = (
    ("home", "/", "Home"),
    ("signup", "/signup", "Sign up"),
    ("people", "/people", "People"),
    ("history", "/history", "History"),
    ("settings", "/settings", "Settings"),
)


def create_app(web: WebService) -> Flask:  # noqa: PLR0915 - the route table, in one place
    """The app for one running daemon (``web`` holds its state and command queue)."""
    app = Flask(__name__)
    settings = web.settings
    app.config.update(
        SECRET_KEY=session_secret(web.state_dir),
        SESSION_COOKIE_NAME="moodbox_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.tls_cert is not None,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        MAX_CONTENT_LENGTH=settings.upload_max_bytes,
        MAX_FORM_MEMORY_SIZE=settings.upload_max_bytes,
        JSON_SORT_KEYS=False,
    )
    limiter = SignInLimiter()
    photos = _PhotoEnroller(web)

    def token_ok() -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(
            header[len("Bearer ") :].encode(), web.token.encode()
        )

    def signed_in() -> bool:
        return bool(session.get("signed_in")) or token_ok()

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = session["csrf"] = secrets.token_urlsafe(32)
        return token

    def csrf_ok() -> bool:
        if token_ok():
            return True
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        expected = session.get("csrf")
        return isinstance(expected, str) and hmac.compare_digest(sent.encode(), expected.encode())

    def login_required(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not signed_in():
                if request.path.startswith("/api/"):
                    return jsonify(error="sign in first"), 401
                return redirect("/login")
            if request.method not in ("GET", "HEAD") and not csrf_ok():
                return jsonify(error="missing or wrong CSRF token"), 403
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(413)
    def too_large(_err: HTTPException) -> tuple[Response, int]:
        limit = settings.upload_max_bytes
        return jsonify(error=f"upload too large (limit {limit // 1_000_000} MB)"), 413

    def page(name: str, **context: Any) -> str:
        return render_template(
            f"{name}.html",
            page=name,
            pages=PAGES,
            csrf=csrf_token(),
            version=__version__,
            **context,
        )

    def command(name: str, payload: bytes) -> tuple[Response, int]:
        """Validate (for the reason) and queue for the loop thread, as MQTT does."""
        spec = web.dispatcher.commands.get(name)
        if spec is None:
            return jsonify(error=f"{name}: not available on this moodbox"), 404
        try:
            spec.parse(payload)
        except InvalidCommandError as err:
            return jsonify(error=str(err)), 400
        if not web.submit(name, payload):
            return jsonify(error="too many commands waiting; try again"), 503
        return jsonify(queued=name), 202

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if isinstance(data, dict):
            return data
        return dict(request.form)

    # --- sign-in --------------------------------------------------------------

    @app.get("/login")
    def login_page() -> Any:
        return page("login", has_password=password_is_set(web.state_dir), error=None)

    @app.post("/login")
    def login() -> Any:
        wants_json = request.is_json
        address = request.remote_addr or "?"
        wait = limiter.retry_after(address)
        if wait > 0:
            message = f"too many wrong passwords: wait {wait:.0f} s"
            if wants_json:
                return jsonify(error=message), 429, {"Retry-After": str(int(wait) + 1)}
            return page("login", has_password=True, error=message), 429
        if not csrf_ok():
            return (
                (jsonify(error="missing or wrong CSRF token"), 403)
                if wants_json
                else (
                    page("login", has_password=True, error="the form expired: try again"),
                    403,
                )
            )
        password = str(body().get("password", ""))
        if not password_is_set(web.state_dir) or not check_password(web.state_dir, password):
            limiter.failed(address)
            logger.warning("web sign-in refused from %s", address)
            if wants_json:
                return jsonify(error="wrong password"), 401
            return page("login", has_password=True, error="wrong password"), 401
        limiter.succeeded(address)
        session.clear()
        session.permanent = True
        session["signed_in"] = True
        session["csrf"] = secrets.token_urlsafe(32)  # a new token for the new session
        return jsonify(ok=True, csrf=session["csrf"]) if wants_json else redirect("/")

    @app.post("/logout")
    @login_required
    def logout() -> Any:
        session.clear()
        return redirect("/login")

    @app.get("/api/csrf")
    def csrf() -> Any:
        """The CSRF token of this browser's session (for scripts; same-origin only)."""
        return jsonify(csrf=csrf_token())

    # --- pages ----------------------------------------------------------------

    @app.get("/")
    @login_required
    def home() -> Any:
        return page("home")

    @app.get("/signup")
    @login_required
    def signup() -> Any:
        return page("signup", enabled=web.identity is not None)

    @app.get("/people")
    @login_required
    def people_page() -> Any:
        return page("people", people=_people(web))

    @app.get("/history")
    @login_required
    def history_page() -> Any:
        day = _day(request.args.get("day"))
        data = _history(web, day)
        return page(
            "history",
            day=day,
            chart=_chart(data, day),
            colours=MOOD_COLOURS,
            previous=day - timedelta(days=1),
            next=day + timedelta(days=1),
            today=date.today(),
        )

    @app.get("/settings")
    @login_required
    def settings_page() -> Any:
        return page("settings", config=_settings(web), checks=_doctor(web))

    # --- API: state -------------------------------------------------------------

    @app.get("/api/status")
    @login_required
    def status() -> Any:
        stats = web.stats
        return jsonify(
            version=__version__,
            fps=round(stats.fps, 2),
            uptime_s=round(stats.uptime_s(), 1),
            frames=stats.counters.get("frames", 0),
            stage_ms={k: round(v, 2) for k, v in stats.stage_ms.items()},
            web={"clients": web.hub.clients, "dropped": web.hub.dropped},
            identify=web.identity is not None,
        )

    @app.get("/api/state")
    @login_required
    def state() -> Any:
        return jsonify({**web.state, "enrolment": web.enrolment_view()})

    @app.get("/api/events")
    @login_required
    def events() -> Any:
        # Each live page holds a server thread: keep two for everything else.
        if web.hub.clients >= settings.threads - 2:
            return jsonify(error="too many live pages open; close one"), 503
        client = web.hub.subscribe()
        return Response(
            web.stream(client),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/preview.jpg")
    @login_required
    def preview() -> Any:
        web.preview_asked = time.monotonic()
        jpeg = _preview(web)
        if jpeg is None:
            return jsonify(error="no camera frame yet"), 503
        return Response(jpeg, mimetype="image/jpeg")

    @app.get("/api/history")
    @login_required
    def history() -> Any:
        day = _day(request.args.get("day"))
        return jsonify(day=day.isoformat(), **_history(web, day))

    @app.get("/api/doctor")
    @login_required
    def doctor() -> Any:
        return jsonify(checks=_doctor(web))

    @app.get("/api/settings")
    @login_required
    def settings_api() -> Any:
        return jsonify(_settings(web))

    # --- API: people -------------------------------------------------------------

    @app.get("/api/people")
    @login_required
    def people() -> Any:
        return jsonify(people=_people(web))

    @app.post("/api/people/enroll")
    @login_required
    def enroll() -> Any:
        name = body().get("name")
        return command("enroll", json.dumps({"name": name}).encode())

    @app.get("/api/enrolment")
    @login_required
    def enrolment() -> Any:
        return jsonify(web.enrolment_view())

    @app.post("/api/people/photos")
    @login_required
    def enroll_photos() -> Any:  # noqa: PLR0911 - one early answer per refusal
        if web.identity is None:
            return jsonify(error="face sign-in is off on this moodbox"), 404
        try:
            name = valid_name(request.form.get("name"))
        except InvalidCommandError as err:
            return jsonify(error=str(err)), 400
        files = request.files.getlist("photos")
        if not files:
            return jsonify(error="no photos in the upload"), 400
        images: list[tuple[str, bytes]] = []
        for upload in files:
            data = upload.read()
            problem = _image_problem(data)
            if problem:
                return jsonify(error=f"{upload.filename}: {problem}"), 400
            images.append((upload.filename or "photo", data))
        vectors, skipped = photos.embed(images)
        if not vectors:
            return jsonify(error="no usable face in the photos", skipped=skipped), 422
        payload = json.dumps({"name": name, "samples": encode_vectors(vectors)}).encode()
        response, code = command("add_samples", payload)
        if code != 202:
            return response, code
        return jsonify(queued="add_samples", samples=len(vectors), skipped=skipped), 202

    @app.post("/api/people/rename")
    @login_required
    def rename() -> Any:
        data = body()
        old, new = str(data.get("old", "")).strip(), str(data.get("new", "")).strip()
        known = {p["name"] for p in _people(web)}
        if old not in known:
            return jsonify(error=f"nobody called {old!r} is enrolled"), 404
        if new in known:
            return jsonify(error=f"{new!r} is already enrolled"), 409
        return command("rename", json.dumps({"old": old, "new": new}).encode())

    @app.post("/api/people/forget")
    @login_required
    def forget() -> Any:
        data = body()
        name = str(data.get("name", "")).strip()
        if str(data.get("confirm", "")).strip() != name:
            return jsonify(error="confirm: type the name again to forget them"), 400
        if name not in {p["name"] for p in _people(web)}:
            return jsonify(error=f"nobody called {name!r} is enrolled"), 404
        return command("forget", name.encode())

    @app.get("/api/people/export")
    @login_required
    def export() -> Any:
        if web.identity is None:
            return jsonify(error="face sign-in is off on this moodbox"), 404
        # Only vectors of the model this box runs: another model's would not compare.
        gallery = web.identity.store.embeddings(web.identity.model_id)
        backup = {
            "format": BACKUP_FORMAT,
            "version": 1,
            "people": [
                {"name": name, "samples": encode_vectors(list(vectors))}
                for name, vectors in gallery.items()
            ],
        }
        stamp = datetime.now().strftime("%Y%m%d")
        return Response(
            json.dumps(backup),
            mimetype="application/json",
            headers={"Content-Disposition": f'attachment; filename="moodbox-people-{stamp}.json"'},
        )

    @app.post("/api/people/import")
    @login_required
    def import_backup() -> Any:
        upload = request.files.get("backup")
        raw = upload.read() if upload is not None else request.get_data()
        try:
            backup = json.loads(raw)
            if not isinstance(backup, dict) or backup.get("format") != BACKUP_FORMAT:
                raise InvalidCommandError("not a moodbox backup")
            entries = [
                (valid_name(p["name"]), decode_vectors(p["samples"])) for p in backup["people"]
            ]
        except (ValueError, KeyError, TypeError, InvalidCommandError) as err:
            return jsonify(error=f"not a moodbox people backup: {err}"), 400
        for name, vectors in entries:
            payload = json.dumps({"name": name, "samples": encode_vectors(vectors)}).encode()
            response, code = command("add_samples", payload)
            if code != 202:
                return response, code
        return jsonify(queued="add_samples", people=[name for name, _ in entries]), 202

    # --- API: player ---------------------------------------------------------------

    @app.post("/api/player")
    @login_required
    def player() -> Any:
        return command("player", str(body().get("action", "")).encode())

    @app.post("/api/volume")
    @login_required
    def volume() -> Any:
        value = str(body().get("volume", ""))
        try:
            parse_volume(value.encode())
        except InvalidCommandError as err:
            return jsonify(error=str(err)), 400
        return command("volume", value.encode())

    @app.post("/api/mood_override")
    @login_required
    def mood_override() -> Any:
        value = str(body().get("mood", "auto"))
        try:
            parse_mood_override(value.encode())
        except InvalidCommandError as err:
            return jsonify(error=str(err)), 400
        return command("mood_override", value.encode())

    @app.post("/api/auto")
    @login_required
    def auto() -> Any:
        on = body().get("on")
        if not isinstance(on, bool) and on not in ("true", "false", "on", "off"):
            return jsonify(error="on: true or false"), 400
        enabled = on is True or on in ("true", "on")
        return command("auto", b"ON" if enabled else b"OFF")

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(ok=True)

    @app.errorhandler(404)
    def not_found(_err: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            return jsonify(error="no such endpoint"), 404
        return _err

    return app


# --- helpers (request threads) -------------------------------------------------------


def _people(web: WebService) -> list[dict[str, Any]]:
    if web.identity is None:
        return []
    present = set(web.household.present)
    return [
        {
            "name": user.name,
            "samples": user.samples,
            "created": user.created,
            "last_seen": user.last_seen,
            "present": user.name in present,
        }
        for user in web.identity.store.users()
    ]


def _image_problem(data: bytes) -> str | None:
    """Why ``data`` is not a photo to enrol from (JPEG or PNG that decodes), else None."""
    import cv2

    if not data.startswith(IMAGE_MAGIC):
        return "not a JPEG or PNG image"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return "the image does not decode"
    if max(image.shape[:2]) > MAX_IMAGE_SIDE:
        return f"larger than {MAX_IMAGE_SIDE} pixels a side"
    return None


class _PhotoEnroller:
    """Embeds uploaded photos on the request thread with models of its own, loaded on first
    use, so the frame loop's interpreters are never shared across threads."""

    def __init__(self, web: WebService) -> None:
        self._web = web
        self._lock = threading.Lock()
        self._models: tuple[Any, Any] | None = None

    def embed(self, images: list[tuple[str, bytes]]) -> tuple[list[np.ndarray], list[str]]:
        from edge.backends import make_detector, make_embedder
        from edge.identify.enroll import choose, embed_images

        config = self._web.config
        with self._lock:
            if self._models is None:
                self._models = (make_detector(config), make_embedder(config, threads=1))
            detector, embedder = self._models
            with tempfile.TemporaryDirectory() as folder:
                paths = []
                for i, (_filename, data) in enumerate(images):
                    path = Path(folder) / f"{i}.img"
                    path.write_bytes(data)
                    paths.append(path)
                samples, problems = embed_images(paths, detector=detector, embedder=embedder)
        names = {str(Path(folder) / f"{i}.img"): name for i, (name, _) in enumerate(images)}
        skipped = [_rename_problem(p, names) for p in problems]
        chosen = choose(samples, max(config.identify.enroll_samples, len(samples)))
        return [s.vector for s in chosen], skipped


def _rename_problem(problem: str, names: dict[str, str]) -> str:
    for path, name in names.items():
        problem = problem.replace(path, name)
    return problem


def _preview(web: WebService) -> bytes | None:
    """The latest camera frame as a JPEG with each face's box and name drawn on it."""
    import cv2

    frame = web.frame
    if frame is None:
        return None
    image = frame.image.copy()
    for (x0, y0, x1, y1), user in web.boxes:
        colour = (80, 200, 80) if user else (60, 170, 240)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
        label_at = (x0, max(12, y0 - 6))
        cv2.putText(image, user or "?", label_at, cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2)
    height, width = image.shape[:2]
    if width > PREVIEW_WIDTH:
        image = cv2.resize(image, (PREVIEW_WIDTH, round(height * PREVIEW_WIDTH / width)))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return jpeg.tobytes() if ok else None


def _day(text: str | None) -> date:
    try:
        return date.fromisoformat(text) if text else date.today()
    except ValueError:
        abort(400)


def _history(web: WebService, day: date) -> dict[str, Any]:
    if web.history is None:
        return {"moods": {}, "plays": []}
    start = datetime(day.year, day.month, day.day).timestamp()
    data = web.history.day(start, start + 86400, time.time())
    return {
        "moods": {
            person: [{"start": s.start, "end": s.end, "mood": s.mood} for s in segments]
            for person, segments in data["moods"].items()
        },
        "plays": data["plays"],
    }


def _chart(data: dict[str, Any], day: date) -> dict[str, Any]:
    """SVG rows for each person's mood segments, over the hours of the day that have any."""
    start = datetime(day.year, day.month, day.day).timestamp()
    segments = [s for person in data["moods"].values() for s in person]
    first = min((s["start"] for s in segments), default=start) - start
    last = max((s["end"] for s in segments), default=start + 3600) - start
    # The hours (or minutes) that have data, in at most six steps of a round size.
    step = next((m * 60 for m in CHART_STEPS_MIN if (last - first) / (m * 60) <= 6), 10800)
    t0 = first // step * step
    t1 = min(86400.0, max(t0 + step, -(-last // step) * step))
    scale = CHART_WIDTH / (t1 - t0)  # units per second
    rows = []
    for person, items in sorted(data["moods"].items()):
        rects = [
            {
                "x": round(CHART_LEFT + (s["start"] - start - t0) * scale, 2),
                "w": round(max((s["end"] - s["start"]) * scale, 1.5), 2),
                "colour": MOOD_COLOURS.get(s["mood"], "#999"),
                "label": f"{datetime.fromtimestamp(s['start']):%H:%M:%S} {s['mood']}",
            }
            for s in items
        ]
        rows.append({"person": person, "rects": rects})
    ticks = [
        {
            "x": round(CHART_LEFT + (t - t0) * scale, 2),
            "label": f"{int(t // 3600) % 24:02d}:{int(t % 3600 // 60):02d}",
        }
        for t in range(int(t0), int(t1) + 1, int(step))
    ]
    plays = [
        {
            "time": f"{datetime.fromtimestamp(p['time']):%H:%M}",
            "title": p["title"],
            "artist": p["artist"],
            "mood": p["mood"],
            "user": p["user"],
        }
        for p in data["plays"]
    ]
    return {"rows": rows, "ticks": ticks, "plays": plays}


_SECRET_WORDS = ("password", "secret", "token", "key")


def _settings(web: WebService) -> dict[str, Any]:
    """The effective configuration, anything secret-looking shown only as set or not."""
    data = web.config.model_dump(mode="json")
    for section in data.values():
        for key, value in list(section.items()):
            if any(word in key for word in _SECRET_WORDS):
                section[key] = "(set)" if value else None
    return data


def _doctor(web: WebService) -> list[dict[str, str]]:
    """The doctor's checks as they apply to the running daemon: the camera and the sound
    device are in use by it, so they are reported from its own state, not opened again."""
    from edge.doctor import CHECKS

    rows: list[dict[str, str]] = []
    frames = web.stats.counters.get("frames", 0)
    rows.append(
        {
            "check": "camera",
            "status": "PASS" if web.frame is not None else "FAIL",
            "detail": f"in use by the daemon: {frames} frames, {web.stats.fps:.1f} fps"
            if web.frame is not None
            else "no frame yet",
        }
    )
    player = web.state.get("player", {})
    rows.append(
        {
            "check": "audio",
            "status": "FAIL" if player.get("state") == "unavailable" else "PASS",
            "detail": f"player {player.get('state', 'off')}",
        }
    )
    for name, check in CHECKS:
        if name in ("camera", "audio"):
            continue
        try:
            results = check(web.config)
        except Exception as err:  # the report must finish whatever one check does
            rows.append({"check": name, "status": "FAIL", "detail": f"check crashed: {err}"})
            continue
        rows.extend(
            {"check": r.check, "status": str(r.status), "detail": r.detail} for r in results
        )
    return rows
