#!/usr/bin/env python3
"""The web app's targets, measured (not asserted): frame loop, idle CPU, enrolment, page loads.

Every figure comes from the real daemon (``build`` on a thread, the replay
camera) and headless Chromium from Debian through its chromedriver:

1. fps of an unpaced loop (camera.fps 0) in alternating equal windows of one
   run: no page (about:blank), the Home page open with its live stream
   connected, …, no page; each live window is compared with the mean of its
   neighbours, so a drift of the machine's load cancels, and the median of
   those ratios is reported with its interquartile range and a bootstrap 95 %
   interval. Beside fps, which other jobs on the machine move, the loop
   thread's own CPU time per frame (``time.thread_time``), the frames per CPU
   second of the whole daemon process (its web threads counted, other jobs
   not), what other processes took of the daemon's cores (/proc/stat) and the
   web's share of the loop thread;
2. idle CPU (% of one core, no face in view, 5 fps) with the web on and off,
   as `moodbox bench` measures it (``run_paced``);
3. enrolment from opening Sign up to "Signed in as …" on the replay camera
   (the astronaut of the demo clip, 5 fps);
4. each page's first load (bytes over the wire, cache off) and first
   contentful paint.

    .venv/bin/python scripts/bench/bench_web.py [--window-s 10] [--rounds 3] [--screenshots docs/web]
    .venv/bin/python scripts/bench/bench_web.py --only stream --rounds 20 --window-s 4 \
        --daemon-cpus 1 --client-cpus 1

``--daemon-cpus`` pins the daemon (every thread of this process) and
``--client-cpus`` / ``--client-nice`` place curl or Chromium, so that on a
shared machine the loop runs on a core chosen away from a pinned job.
``--screenshots DIR`` also saves each page at phone (412 px) and desktop
(1280 px) width, full height, for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
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


def chromium(width: int, height: int, setup: Any = None) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    service = Service(
        shutil.which("chromedriver") or "/usr/bin/chromedriver",
        popen_kw={"preexec_fn": setup} if setup is not None else {},
    )
    return webdriver.Chrome(options=options, service=service)


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


def core_times(cpus: set[int]) -> tuple[float, float]:
    """Seconds the ``cpus`` were busy and stolen by the hypervisor, from /proc/stat."""
    hz = os.sysconf("SC_CLK_TCK")
    busy = stolen = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(v) for v in fields]
            # user nice system idle iowait irq softirq steal …: idle, iowait and steal are not busy
            busy += (sum(ticks[:8]) - ticks[3] - ticks[4] - ticks[7]) / hz
            stolen += ticks[7] / hz
    return busy, stolen


class Window:
    """One measured window: frames, wall time, the loop thread's and the whole daemon
    process's CPU time, the web's clocked time on the loop, and the daemon cores' busy time
    (what the rest of the machine took of them follows)."""

    def __init__(self, app: App, clock: LoopClock, spent: list[float], cpus: set[int]) -> None:
        self.app, self.clock, self.spent, self.cpus = app, clock, spent, cpus

    def __enter__(self) -> Window:
        self.frames0 = self.app.stats.counters.get("frames", 0)
        self.loop0, self.ticks0 = self.clock.cpu, self.clock.frames
        self.web0, self.process0 = self.spent[0], time.process_time()
        self.busy0, self.stolen0 = core_times(self.cpus)
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.start
        frames = self.app.stats.counters.get("frames", 0) - self.frames0
        process = time.process_time() - self.process0
        busy, stolen = core_times(self.cpus)
        ticks = self.clock.frames - self.ticks0
        self.record = {
            "frames": frames,
            "wall_s": wall,
            "fps": frames / wall,
            "loop_cpu_ms_per_frame": 1000 * (self.clock.cpu - self.loop0) / ticks if ticks else 0.0,
            # The frames per second of CPU the whole daemon process got: the fps it would
            # run at on cores of its own, the web's threads counted, other jobs left out.
            "fps_per_cpu_s": frames / process if process > 0 else 0.0,
            "process_cpu_share": process / wall,
            # The daemon's threads other than the loop: the web's request threads among them.
            "other_threads_share": max(0.0, process - (self.clock.cpu - self.loop0)) / wall,
            "web_share_of_wall": (self.spent[0] - self.web0) / wall,
            # The daemon cores' time that went to other processes (other jobs, the client
            # when it shares the core), as a share of one core.
            "others_share": max(0.0, busy - self.busy0 - process) / wall,
            "stolen_share": (stolen - self.stolen0) / wall,
        }


def summary(ratios: list[float], seed: int = 18) -> dict[str, Any]:
    """Median, interquartile range and a bootstrap 95 % interval of the median: the median
    because a test run starting on the daemon's core moves one window, not the rest."""
    if not ratios:
        return {}
    ordered = sorted(ratios)
    q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else (ordered[0],) * 3
    draw = random.Random(seed)
    medians = sorted(statistics.median(draw.choices(ordered, k=len(ordered))) for _ in range(5000))
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 4),
        "iqr": [round(q1, 4), round(q3, 4)],
        "bootstrap95_median": [round(medians[124], 4), round(medians[4874], 4)],
        "mean": round(statistics.fmean(ordered), 4),
        "min_max": [round(ordered[0], 4), round(ordered[-1], 4)],
    }


def client_setup(cpus: set[int] | None, nice: int) -> Any:
    """For Popen: the client (curl, chromedriver and the Chromium it starts) on ``cpus``
    at ``nice``, so where it runs is chosen rather than left to the scheduler."""
    if cpus is None and not nice:
        return None

    def setup() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        if nice:
            os.nice(nice)

    return setup


def bench_stream(
    tmp: Path,
    window_s: float,
    rounds: int,
    mode: str,
    *,
    settle_s: float = 1.0,
    client_cpus: set[int] | None = None,
    client_nice: int = 0,
) -> dict[str, Any]:
    """fps unpaced, alternating windows in one run: nothing connected, then the live stream
    connected: ``home``, the Home page in headless Chromium (which renders every update on
    this machine's cores, as a phone would on its own), or ``stream``, the bare event
    stream read by curl. Each live window is compared with the mean of the windows either
    side of it, so a drift of the machine's load cancels; the median of those ratios, so a
    burst of another job in one window does not carry the result."""
    clock = LoopClock()
    cpus = os.sched_getaffinity(0)
    setup = client_setup(client_cpus, client_nice)
    with daemon(tmp, REPO_ROOT / "demo" / "faces", clock, MOODBOX_CAMERA_FPS="0") as (app, url):
        web = next(s for s in app.services if type(s).__name__ == "WebService")
        spent = [0.0]  # seconds the loop thread spent in the web's poll and emit
        for method in ("poll", "emit"):
            setattr(web, method, _clocked(getattr(web, method), spent))
        runtime = read_runtime(Path(os.environ["STATE_DIRECTORY"]))
        assert runtime is not None
        driver = chromium(412, 915, setup) if mode == "home" else None
        curl: subprocess.Popen[bytes] | None = None
        without: list[dict[str, float]] = []
        live: list[dict[str, float]] = []
        load = [os.getloadavg()[0]]
        try:
            if driver is not None:
                sign_in(driver, url)
                driver.get("about:blank")
            time.sleep(3)  # models warm, music library scanned
            for _ in range(rounds):
                with Window(app, clock, spent, cpus) as off:
                    time.sleep(window_s)
                without.append(off.record)
                if driver is not None:
                    driver.get(url + "/")
                else:
                    curl = subprocess.Popen(
                        ["curl", "-sN", "-o", "/dev/null", "-H",
                         f"Authorization: Bearer {runtime['token']}", url + "/api/events"],
                        preexec_fn=setup,  # noqa: PLW1509 - two syscalls before exec
                    )  # fmt: skip
                time.sleep(settle_s)
                assert web.hub.clients >= 1, "the live stream is not connected"  # type: ignore[attr-defined]
                with Window(app, clock, spent, cpus) as on:
                    time.sleep(window_s)
                live.append(on.record)
                if driver is not None:
                    driver.get("about:blank")
                elif curl is not None:
                    curl.terminate()
                    curl.wait()
                time.sleep(settle_s)
                load.append(os.getloadavg()[0])
            with Window(app, clock, spent, cpus) as off:
                time.sleep(window_s)
            without.append(off.record)
        finally:
            if driver is not None:
                driver.quit()
            if curl is not None and curl.poll() is None:
                curl.terminate()

    def ratios(key: str) -> list[float]:
        # Each live window against the mean of the windows either side of it: drift cancels.
        return [
            v[key] / mean
            for i, v in enumerate(live)
            if (mean := (without[i][key] + without[i + 1][key]) / 2) > 0
        ]

    def column(rows: list[dict[str, float]], key: str, digits: int = 2) -> list[float]:
        return [round(r[key], digits) for r in rows]

    fps_ratios, cpu_ratios, own_ratios = (
        ratios(k) for k in ("fps", "loop_cpu_ms_per_frame", "fps_per_cpu_s")
    )
    return {
        "window_s": window_s,
        "rounds": rounds,
        "daemon_cpus": sorted(cpus),
        "client_cpus": sorted(client_cpus) if client_cpus is not None else "any",
        "client_nice": client_nice,
        "load_average_1min": [round(v, 2) for v in load],
        "fps_without": column(without, "fps"),
        "fps_live": column(live, "fps"),
        "fps_ratios": [round(r, 4) for r in fps_ratios],
        "fps_ratio": summary(fps_ratios),
        # > 1: the loop needs more CPU per frame while the stream is live
        "loop_cpu_ms_per_frame_without": column(without, "loop_cpu_ms_per_frame", 3),
        "loop_cpu_ms_per_frame_live": column(live, "loop_cpu_ms_per_frame", 3),
        "loop_cpu_ratios": [round(r, 4) for r in cpu_ratios],
        "loop_cpu_ratio": summary(cpu_ratios),
        "fps_per_cpu_s_without": column(without, "fps_per_cpu_s"),
        "fps_per_cpu_s_live": column(live, "fps_per_cpu_s"),
        "fps_per_cpu_s_ratio": summary(own_ratios),
        "web_share_of_loop_thread_without": column(without, "web_share_of_wall", 5),
        "web_share_of_loop_thread_live": column(live, "web_share_of_wall", 5),
        "daemon_process_cpu_share_without": column(without, "process_cpu_share", 3),
        "daemon_process_cpu_share_live": column(live, "process_cpu_share", 3),
        "daemon_other_threads_share_without": column(without, "other_threads_share", 4),
        "daemon_other_threads_share_live": column(live, "other_threads_share", 4),
        "others_share_of_daemon_cores_without": column(without, "others_share", 3),
        "others_share_of_daemon_cores_live": column(live, "others_share", 3),
        "stolen_share_without": column(without, "stolen_share", 3),
        "stolen_share_live": column(live, "stolen_share", 3),
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


def cpu_list(text: str) -> set[int]:
    """``1`` or ``0,1`` or ``0-1``, as taskset -c takes them."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=10.0, help="each measured window")
    parser.add_argument("--rounds", type=int, default=3, help="page / no-page alternations")
    parser.add_argument("--settle-s", type=float, default=1.0,
                        help="pause after connecting or closing the stream, not measured")  # fmt: skip
    parser.add_argument("--screenshots", type=Path, default=None, help="save page screenshots")
    parser.add_argument("--skip", nargs="*", default=[], choices=["stream", "idle", "pages"])
    parser.add_argument("--only", nargs="*", default=None, choices=["stream", "idle", "pages"],
                        help="run only these parts (stream: the frame loop's fps, part 1)")  # fmt: skip
    parser.add_argument("--modes", nargs="*", default=["stream", "home"], choices=["stream", "home"],
                        help="part 1's clients: curl on the bare stream, Home in Chromium")  # fmt: skip
    parser.add_argument("--daemon-cpus", type=cpu_list, default=None,
                        help="pin the daemon (this process, all its threads) to these cores")  # fmt: skip
    parser.add_argument("--client-cpus", type=cpu_list, default=None,
                        help="pin curl / chromedriver and its Chromium to these cores")  # fmt: skip
    parser.add_argument("--client-nice", type=int, default=0, help="the client's nice increment")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = set(args.only) if args.only is not None else {"stream", "idle", "pages"}
    parts -= set(args.skip)
    if args.daemon_cpus is not None:
        # Before the daemon starts: its threads inherit the main thread's affinity.
        os.sched_setaffinity(0, args.daemon_cpus)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "pages" in parts:
            (tmp / "pages").mkdir()
            report.update(bench_pages(tmp / "pages", args.screenshots))
        if "stream" in parts:
            for mode in args.modes:
                (tmp / mode).mkdir()
                report[mode] = bench_stream(
                    tmp / mode, args.window_s, args.rounds, mode, settle_s=args.settle_s,
                    client_cpus=args.client_cpus, client_nice=args.client_nice,
                )  # fmt: skip
        if "idle" in parts:
            report["idle"] = bench_idle(args.window_s)
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2 if args.json else None))


if __name__ == "__main__":
    main()
