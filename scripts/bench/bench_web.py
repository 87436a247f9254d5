#!/usr/bin/env python3
"""The web app's targets, measured (not asserted): frame loop, idle CPU, enrolment, page loads.

Every figure comes from the real daemon (``build`` on a thread, the replay
camera) and headless Chromium from Debian through its chromedriver:

1. fps of an unpaced loop (camera.fps 0) in alternating equal windows of one
   run: no page (about:blank), the Home page open with its live stream
   connected, …, no page; each live window is compared with the mean of its
   neighbours, so a drift of the machine's load cancels. Beside fps, which
   other jobs on the machine move, the loop thread's own CPU time per frame
   (``time.thread_time``) and the web's share of the loop thread;
2. idle CPU (% of one core, no face in view, 5 fps) with the web on and off,
   as `moodbox bench` measures it (``run_paced``);
3. enrolment from opening Sign up to "Signed in as …" on the replay camera
   (the astronaut of the demo clip, 5 fps);
4. each page's first load (bytes over the wire, cache off) and first
   contentful paint.

    .venv/bin/python scripts/bench/bench_web.py [--window-s 10] [--rounds 3] [--screenshots docs/web]

``--screenshots DIR`` also saves each page at phone (412 px) and desktop
(1280 px) width, full height, for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.app import App, build
from edge.config import REPO_ROOT, load_config
from edge.identify.store import make_state_dir
from edge.measure.benchmark import load_replay, run_paced
from edge.web.auth import read_runtime, set_password

PASSWORD = "bench password"  # noqa: S105 - a throw-away state dir's
PAGES = ("login", "home", "signup", "people", "history", "settings")
WIDTHS = {"phone": (412, 915), "desktop": (1280, 900)}


def chromium(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(
        options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    )


class LoopClock:
    """A do-nothing service: the loop thread's own CPU time after each frame, so a window's
    CPU per frame does not depend on what else the machine runs."""

    def __init__(self) -> None:
        self.cpu, self.frames = 0.0, 0

    def start(self, emit: Any) -> None:
        pass

    def poll(self, now: float) -> None:
        self.cpu, self.frames = time.thread_time(), self.frames + 1

    def stop(self) -> None:
        pass


@contextmanager
def daemon(tmp: Path, frames: Path, *services: Any, **settings: str) -> Iterator[tuple[App, str]]:
    state = make_state_dir(tmp / "state")
    set_password(state, PASSWORD)
    os.environ["STATE_DIRECTORY"] = str(state)
    os.environ["SDL_AUDIODRIVER"] = "dummy"
    environ = {
        "MOODBOX_CAMERA_SOURCE": str(frames),
        "MOODBOX_WEB_PORT": "0",
        "MOODBOX_RUN_EVENTS_STDOUT": "false",
        **settings,
    }
    app = build(load_config(REPO_ROOT / "config.yaml", environ=environ), sinks=[])
    app.services.extend(services)
    thread = threading.Thread(target=app.run, name="bench-daemon")
    thread.start()
    try:
        while (runtime := read_runtime(state)) is None:
            if not thread.is_alive():
                raise SystemExit("the daemon stopped before its web app started")
            time.sleep(0.05)
        yield app, str(runtime["url"])
    finally:
        app.stop()
        thread.join(timeout=30)


def sign_in(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    deadline = time.monotonic() + 30
    while not driver.find_elements(By.ID, "household-mood"):
        if time.monotonic() > deadline:
            raise SystemExit("sign-in did not reach Home")
        time.sleep(0.05)


def frames_in(app: App, seconds: float, clock: LoopClock | None = None) -> float:
    """fps over ``seconds``; with ``clock``, also notes the loop's CPU ms per frame."""
    start_frames, start = app.stats.counters.get("frames", 0), time.monotonic()
    cpu0, n0 = (clock.cpu, clock.frames) if clock else (0.0, 0)
    time.sleep(seconds)
    if clock is not None and clock.frames > n0:
        clock_windows.append(1000 * (clock.cpu - cpu0) / (clock.frames - n0))
    return (app.stats.counters.get("frames", 0) - start_frames) / (time.monotonic() - start)


clock_windows: list[float] = []  # loop CPU ms per frame of each window, in order


def bench_stream(tmp: Path, window_s: float, rounds: int, mode: str) -> dict[str, Any]:
    """fps unpaced, alternating windows in one run: nothing connected, then the live stream
    connected: ``home``, the Home page in headless Chromium (which renders every update on
    this machine's cores, as a phone would on its own), or ``stream``, the bare event
    stream read by curl."""
    clock = LoopClock()
    clock_windows.clear()
    with daemon(tmp, REPO_ROOT / "demo" / "faces", clock, MOODBOX_CAMERA_FPS="0") as (app, url):
        web = next(s for s in app.services if type(s).__name__ == "WebService")
        spent = [0.0]  # seconds the loop thread spent in the web's poll and emit
        for method in ("poll", "emit"):
            setattr(web, method, _clocked(getattr(web, method), spent))
        runtime = read_runtime(Path(os.environ["STATE_DIRECTORY"]))
        assert runtime is not None
        driver = chromium(412, 915) if mode == "home" else None
        curl: subprocess.Popen[bytes] | None = None
        without: list[float] = []
        live: list[float] = []
        loop_share: list[float] = []
        try:
            if driver is not None:
                sign_in(driver, url)
            time.sleep(3)  # models warm, music library scanned
            for _ in range(rounds):
                without.append(frames_in(app, window_s, clock))
                if driver is not None:
                    driver.get(url + "/")
                else:
                    curl = subprocess.Popen(
                        ["curl", "-sN", "-o", "/dev/null", "-H",
                         f"Authorization: Bearer {runtime['token']}", url + "/api/events"],
                    )  # fmt: skip
                time.sleep(1)
                assert web.hub.clients >= 1, "the live stream is not connected"  # type: ignore[attr-defined]
                spent_before = spent[0]
                live.append(frames_in(app, window_s, clock))
                loop_share.append((spent[0] - spent_before) / window_s)
                if driver is not None:
                    driver.get("about:blank")
                elif curl is not None:
                    curl.terminate()
                    curl.wait()
                time.sleep(1)
            without.append(frames_in(app, window_s, clock))
        finally:
            if driver is not None:
                driver.quit()
            if curl is not None and curl.poll() is None:
                curl.terminate()
    # Each live window against the mean of the windows either side of it: drift cancels.
    ratios = [v / ((without[i] + without[i + 1]) / 2) for i, v in enumerate(live)]
    cpu_off, cpu_live = clock_windows[0::2], clock_windows[1::2]  # windows alternate
    cpu_ratios = [v / ((cpu_off[i] + cpu_off[i + 1]) / 2) for i, v in enumerate(cpu_live)]
    return {
        "fps_without": [round(v, 2) for v in without],
        "fps_live": [round(v, 2) for v in live],
        "fps_ratios": [round(r, 4) for r in ratios],
        "fps_ratio_mean": round(sum(ratios) / len(ratios), 4),
        "web_share_of_loop_thread_live": [round(v, 5) for v in loop_share],
        "loop_cpu_ms_per_frame_without": [round(v, 3) for v in cpu_off],
        "loop_cpu_ms_per_frame_live": [round(v, 3) for v in cpu_live],
        # > 1: the loop needs more CPU per frame while the stream is live
        "loop_cpu_ratios": [round(r, 4) for r in cpu_ratios],
        "stream_dropped": web.hub.dropped,  # type: ignore[attr-defined]
    }


def _clocked(method: Any, spent: list[float]) -> Any:
    def clocked(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            spent[0] += time.perf_counter() - start

    return clocked


def bench_idle(window_s: float) -> dict[str, Any]:
    replay = load_replay(REPO_ROOT / "demo" / "faces")
    out = {}
    for label, enabled in (("web_on", "true"), ("web_off", "false")):
        with tempfile.TemporaryDirectory() as folder:
            os.environ["STATE_DIRECTORY"] = folder
            config = load_config(
                REPO_ROOT / "config.yaml",
                environ={"MOODBOX_CAMERA_FPS": "5", "MOODBOX_WEB_ENABLED": enabled,
                         "MOODBOX_WEB_PORT": "0", "MOODBOX_RUN_EVENTS_STDOUT": "false"},
            )  # fmt: skip
            run = run_paced(config, replay.no_face, window_s)
        out[label] = {
            "cpu_percent": run["cpu_percent"],
            "web_poll_ms": run["service_poll_ms"].get("WebService"),
        }
    return out


def page_load(driver: Any, url: str) -> dict[str, float]:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.get(url)
    time.sleep(0.5)  # the paint entries land after load
    return dict(
        driver.execute_script(
            "const nav = performance.getEntriesByType('navigation')[0];"
            "const all = performance.getEntriesByType('resource')"
            "  .filter(r => !r.name.includes('/api/events'));"
            "const previews = all.filter(r => r.name.includes('/api/preview'));"
            "const res = all.filter(r => !r.name.includes('/api/preview')).concat(previews.slice(0, 1));"
            "const paint = performance.getEntriesByName('first-contentful-paint')[0];"
            "return {bytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),"
            " resources: res.length, first_paint_ms: paint ? paint.startTime : -1,"
            " load_ms: nav.loadEventEnd};"
        )
    )


def full_screenshot(driver: Any, path: Path, width: int, height: int) -> None:
    tall = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, int(tall) + 140))
    time.sleep(0.4)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)


def bench_pages(tmp: Path, screenshots: Path | None) -> dict[str, Any]:
    """Enrolment from Sign up to signed in, then each page's load (the live stream left out,
    Sign up's preview counted once); screenshots if asked."""
    from selenium.webdriver.common.by import By

    frames = tmp / "astronaut"
    frames.mkdir()
    for i in range(10):  # frames 0–9: one person in view, Eileen Collins
        shutil.copy(REPO_ROOT / "demo" / "faces" / f"frame_{i:03d}.jpg", frames)
    out: dict[str, Any] = {"pages": {}}
    with daemon(tmp, frames, MOODBOX_CAMERA_FPS="5") as (_app, url):
        driver = chromium(*WIDTHS["phone"])
        try:
            if screenshots:
                driver.get(url + "/login")
                for label, (w, h) in WIDTHS.items():
                    driver.set_window_size(w, h)
                    full_screenshot(driver, screenshots / f"login-{label}.png", w, h)
                driver.set_window_size(*WIDTHS["phone"])
            sign_in(driver, url)
            opened = time.monotonic()
            driver.get(url + "/signup")
            driver.find_element(By.ID, "name").send_keys("Eileen")
            driver.find_element(By.ID, "enroll").click()
            status = driver.find_element(By.ID, "enrol-status")
            progress_shot = screenshots / "signup-progress-phone.png" if screenshots else None
            while status.get_attribute("data-signed-in") != "Eileen":
                if progress_shot and "samples" in status.text:
                    driver.save_screenshot(str(progress_shot))  # mid-enrolment
                    progress_shot = None
                if time.monotonic() - opened > 60:
                    raise SystemExit(f"no sign-in after 60 s: {status.text}")
                time.sleep(0.05)
            out["signup_to_signed_in_s"] = round(time.monotonic() - opened, 2)
            if screenshots:
                for label, (w, h) in WIDTHS.items():
                    driver.set_window_size(w, h)
                    time.sleep(0.8)  # a fresh preview frame at this size
                    full_screenshot(driver, screenshots / f"signup-{label}.png", w, h)
            time.sleep(4)  # a few moods and a track in the history
            for name in PAGES[1:]:
                path = "/" if name == "home" else f"/{name}"
                out["pages"][name] = page_load(driver, url + path)
                if screenshots and name != "signup":
                    time.sleep(1.0)  # Home: its live stream has filled in
                    for label, (w, h) in WIDTHS.items():
                        driver.set_window_size(w, h)
                        time.sleep(0.3)
                        full_screenshot(driver, screenshots / f"{name}-{label}.png", w, h)
                    driver.set_window_size(*WIDTHS["phone"])
            driver.delete_all_cookies()
            out["pages"]["login"] = page_load(driver, url + "/login")
        finally:
            driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=10.0, help="each measured window")
    parser.add_argument("--rounds", type=int, default=3, help="page / no-page alternations")
    parser.add_argument("--screenshots", type=Path, default=None, help="save page screenshots")
    parser.add_argument("--skip", nargs="*", default=[], choices=["stream", "idle", "pages"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "pages" not in args.skip:
            (tmp / "pages").mkdir()
            report.update(bench_pages(tmp / "pages", args.screenshots))
        if "stream" not in args.skip:
            for mode in ("stream", "home"):
                (tmp / mode).mkdir()
                report[mode] = bench_stream(tmp / mode, args.window_s, args.rounds, mode)
        if "idle" not in args.skip:
            report["idle"] = bench_idle(args.window_s)
    print(json.dumps(report, indent=2 if args.json else None))


if __name__ == "__main__":
    main()
