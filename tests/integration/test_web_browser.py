"""The web app in a real browser: headless Chromium from Debian, driven by Selenium.

One flow, as a person would use it: a wrong password refused, sign in,
sign up by face on the replay camera (the astronaut of the demo clip), see
her listed and recognised on Home, skip a track, a request without the CSRF
token and a too-big upload refused, forget her. `.ci/run` installs
``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_client import PASSWORD, Running, running_daemon

UPLOAD_LIMIT = 200_000
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chrome(width: int = 412, height: int = 915) -> Any:
    """Headless Chromium through the system chromedriver (skipped where neither is installed)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "chromium not found: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_daemon(
        tmp_path_factory.mktemp("web-browser"), MOODBOX_WEB_UPLOAD_MAX_BYTES=str(UPLOAD_LIMIT)
    ) as running:
        yield running


def test_sign_up_by_face_see_them_skip_and_forget(daemon: Running, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chrome()
    wait = WebDriverWait(driver, 45)

    def text(element_id: str) -> str:
        return str(driver.find_element(By.ID, element_id).text)

    try:
        driver.get(daemon.url + "/")
        assert driver.current_url.endswith("/login")
        driver.find_element(By.ID, "password").send_keys("not the password")
        driver.find_element(By.ID, "sign-in").click()
        error = wait.until(ec.presence_of_element_located((By.ID, "login-error")))
        assert "wrong password" in error.text
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "sign-in").click()
        wait.until(ec.presence_of_element_located((By.ID, "household-mood")))

        opened = time.monotonic()
        driver.get(daemon.url + "/signup")
        assert "personalisation, not a lock" in driver.page_source
        driver.find_element(By.ID, "name").send_keys("Eileen")
        driver.find_element(By.ID, "enroll").click()
        status = driver.find_element(By.ID, "enrol-status")
        wait.until(lambda d: status.get_attribute("data-signed-in") == "Eileen")
        print(f"sign up to signed in: {time.monotonic() - opened:.1f} s")  # the figure, in -s runs
        assert "Signed in as Eileen" in text("enrol-status")
        assert driver.execute_script("return document.getElementById('preview').naturalWidth") > 0

        driver.get(daemon.url + "/people")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="Eileen"]')))

        driver.get(daemon.url + "/")
        wait.until(lambda d: "Eileen" in text("present"))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '.face[data-user="Eileen"]')))
        wait.until(lambda d: text("track-title") not in ("", "–", "nothing"))
        before = text("track-title")
        driver.find_element(By.ID, "next").click()
        wait.until(lambda d: text("track-title") != before)

        refused = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('/api/player', {method: 'POST', headers: {'Content-Type': 'application/json'},"
            " body: JSON.stringify({action: 'PAUSE'})}).then(r => done(r.status));"
        )
        assert refused == 403  # no CSRF token

        big = tmp_path / "big.jpg"
        big.write_bytes(b"\xff\xd8\xff" + bytes(UPLOAD_LIMIT))
        driver.get(daemon.url + "/signup")
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        driver.find_element(By.ID, "photo-name").send_keys("Big")
        driver.find_element(By.ID, "photos").send_keys(str(big))
        driver.find_element(By.ID, "upload").click()
        wait.until(lambda d: "too large" in text("photo-status"))

        driver.get(daemon.url + "/people")
        driver.find_element(By.CSS_SELECTOR, 'button.forget[data-name="Eileen"]').click()
        wait.until(ec.alert_is_present()).accept()
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-name="Eileen"]'))
        assert daemon.app.pipeline.identity is not None
        assert daemon.app.pipeline.identity.store.users() == []
    finally:
        driver.quit()
