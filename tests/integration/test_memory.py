"""`moodbox run` on the demo stays within 200 MB of peak RSS, measured in its own process.

Issue 16, finding 8: the daemon held 209–222 MiB while the benchmark's
pipeline-only probe met the target. The two costs found: the face embedder's
19 MB model file stays mapped and resident after XNNPACK has copied its
weights, and pygame imports pkg_resources (5 MB) for fonts it never loads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
from daemon_harness import ROOT, daemon_env

from edge.tflite import load_interpreter, release_model_pages

EMBEDDER = ROOT / "models" / "face_embedding.tflite"


def resident_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.rstrip().endswith(str(path.resolve()))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def drop_cached_libraries() -> int:
    """Evict the venv's shared libraries from the page cache; the number of files advised.

    RSS counts the file pages a process maps, and the kernel maps pages that
    are already cached around each fault. Right after `pip install` every
    library file is cached whole, so a daemon started then maps far more of
    them than it uses: measured on a fresh clone, 189–191 MiB peak (cv2 alone
    33 MB resident), against 164 MiB once the files had been read back from
    disk. A box runs days after its install, so measure it that way: clean
    pages only, nothing of the process's own memory is touched.
    """
    advised = 0
    for path in Path(sysconfig.get_paths()["platlib"]).rglob("*.so*"):
        if not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # only pages written back to disk can be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            advised += 1
        finally:
            os.close(fd)
    return advised


def test_moodbox_run_on_the_demo_peaks_below_200_mb(tmp_path: Path) -> None:
    assert drop_cached_libraries() > 0
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--max-frames", "60"],
        cwd=tmp_path,
        # The web app is on (the default): its server listens, Flask loads on a first
        # request, which this run never makes.
        env=daemon_env(tmp_path, MOODBOX_CAMERA_FPS="20"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"peak RSS ([0-9.]+) MiB", result.stderr)
    assert match is not None, result.stderr[-2000:]
    # Before: 208.7 MiB on this demo; 200 MB is 190.7 MiB.
    assert float(match.group(1)) < 200e6 / 2**20


def test_the_embedder_gives_its_file_pages_back_and_embeds_the_same() -> None:
    from ai_edge_litert.interpreter import Interpreter

    kept = Interpreter(model_path=str(EMBEDDER), num_threads=1)  # pages left resident
    kept.allocate_tensors()
    assert resident_kib(EMBEDDER) > 10_000
    released = load_interpreter(EMBEDDER)  # a model over 4 MB: released once loaded
    assert resident_kib(EMBEDDER) < 1024  # every mapping of the file gives its pages back
    face = np.random.default_rng(1).uniform(0, 255, (1, 112, 112, 3)).astype(np.float32)
    outputs = []
    for interpreter in (released, kept):
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], face)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    assert np.array_equal(outputs[0], outputs[1])
    assert np.linalg.norm(outputs[0]) > 0
    assert release_model_pages(ROOT / "models" / "no-such-model.tflite") == 0


def test_pygame_is_imported_without_pkg_resources() -> None:
    code = (
        "import sys\n"
        "from edge.music.player import _import_pygame\n"
        "pygame = _import_pygame()\n"
        "assert 'pkg_resources' not in sys.modules, 'pkg_resources imported'\n"
        "assert hasattr(pygame, 'mixer')\n"
        "import pkg_resources  # still importable afterwards\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
