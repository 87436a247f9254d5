"""Without a sound card, libasound's own `ALSA lib …` lines reach stderr for the first
attempt to open the mixer only; the player's retries add none (real pygame, real ALSA)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
from edge.music.player import PygamePlayer
player = PygamePlayer(retry_s=0.01, retry_max_s=0.01)
for attempt in range(int(sys.argv[1])):
    player.poll(float(attempt))
print("ready" if player.available else "failures", player._failures)
"""


def alsa_lines(attempts: int) -> tuple[int, str]:
    env = {**os.environ, "SDL_AUDIODRIVER": "alsa", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(attempts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sum(line.startswith("ALSA lib") for line in result.stderr.splitlines()), result.stdout


def test_alsa_noise_only_once() -> None:
    first, out = alsa_lines(1)
    if "ready" in out or first == 0:
        pytest.skip("the mixer opened or libasound printed nothing: no noise to silence here")
    many, out = alsa_lines(5)
    assert out.splitlines()[-1] == "failures 5"
    assert out.count("audio device unavailable") == 1  # moodbox's own report, once
    assert many == first, f"{many} ALSA lines for 5 attempts, {first} for one"
