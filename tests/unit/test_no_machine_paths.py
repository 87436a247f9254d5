"""No tracked file names a folder of one build machine: a checkout must work anywhere.

System paths that the project documents (/etc/moodbox, /opt/moodbox, /var/lib/moodbox,
/usr/sbin, /sys/class/thermal, ...) are fine; a home, a build user's folder or a work
tree is not (use ~, $XDG_CACHE_HOME, a path relative to the repository, or an option).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Built from parts so that this file does not match itself.
MACHINE_ROOTS = ("work", "root", "home/[a-z][a-z0-9_-]*", "Users/[A-Za-z][^/]*", "mnt/[a-z]")
PATTERN = re.compile(r"(?<![A-Za-z0-9_.$}/-])/(?:" + "|".join(MACHINE_ROOTS) + r")(?:/|\b)")
# Paths a reader may meet in text that are no machine's: examples of the pattern itself.
ALLOWED = ("/home/<user>",)


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name.decode()
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def test_no_machine_specific_absolute_paths() -> None:
    found = []
    for path in tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in PATTERN.finditer(line):
                if not any(line[match.start() :].startswith(a) for a in ALLOWED):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "machine-specific paths:\n" + "\n".join(found)


def test_the_check_finds_what_it_is_for() -> None:
    bad = ["/" + "work/cache/x.npy", "'/" + "root/.cache'", " /" + "home/alice/music"]
    good = ["/etc/moodbox/config.yaml", "$root/etc", "~/.cache/moodbox", "/opt/moodbox/venv"]
    assert all(PATTERN.search(text) for text in bad)
    assert not any(PATTERN.search(text) for text in good)
