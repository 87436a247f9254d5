"""`moodbox bench` runs and its output is well-formed. No timing is asserted here: speed
targets are read from the benchmark's own output (README "Performance")."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.measure.projection import LABEL, count_macs
from edge.measure.report import STAGES, table

REQUIRED_NUMBERS = (
    "fps_one_face",
    "fps_no_face",
    "fps_one_face_still",
    "fps_one_face_no_shortcuts",
    "idle_cpu_percent",
    "one_face_cpu_percent",
    "peak_rss_mb",
    "startup_s",
)


BENCH = (sys.executable, "-m", "edge", "bench", "--no-baseline")


def bench_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOODBOX_")}
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    return env


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [*BENCH, "--frames", "6", "--idle-seconds", "0.4", "--startup-runs", "1", "--json"],
        capture_output=True,
        text=True,
        env=bench_env(tmp),
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line"
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_json_has_every_required_figure_as_a_positive_number(report: dict[str, Any]) -> None:
    for key in REQUIRED_NUMBERS:
        value = report[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)
    assert report["frames"] == 6
    assert report["interpreter_threads"] == 1
    assert report["frame_size"] == [640, 480]


def test_stages_have_median_and_p95(report: dict[str, Any]) -> None:
    stages = report["stages"]
    # Every frame is captured, searched for faces and decided on.
    assert {"capture", "detect", "classify", "decide"} <= set(stages)
    assert set(stages) <= set(STAGES)
    for name, row in stages.items():
        assert set(row) == {"median_ms", "p95_ms", "runs"}, name
        assert 0 < row["median_ms"] <= row["p95_ms"], name
        assert 1 <= row["runs"] <= report["frames"], name
    # No face: nothing to classify.
    assert "classify" not in report["stages_no_face"]


def test_reuse_fractions_and_targets(report: dict[str, Any]) -> None:
    reused = report["classify_reused_fraction"]
    assert 0 <= reused["moving"] <= 1 and 0 <= reused["still"] <= 1
    # A still face's region does not change, so its result is reused.
    assert reused["still"] > reused["moving"]
    targets = report["targets"]
    assert set(targets) == {
        "fps_one_face",
        "speedup_vs_fer",
        "idle_cpu_percent",
        "peak_rss_mb",
        "daemon_peak_rss_mb",
        "startup_s",
    }
    for row in targets.values():
        assert row["met"] in (True, False, None)
    assert report["fer"] is None and "no-baseline" in report["fer_note"]
    assert targets["speedup_vs_fer"]["met"] is None  # not measured, not claimed


def test_pi4_projection_is_labelled_and_complete(report: dict[str, Any]) -> None:
    projection = report["pi4_projection"]
    assert projection["label"] == LABEL == "projection, not a measurement"
    assert "XNNPACK" in projection["assumptions"]["source"]
    assert {"detect", "emotion"} <= set(projection["models"])
    for model in projection["models"].values():
        assert model["mmacs"] > 0
        assert 0 < model["pi4_ms_likely"] < model["pi4_ms_pessimistic"]
    for entry in projection["scenarios"].values():
        assert 0 < entry["fps_pessimistic"] < entry["fps_likely"]


def test_service_polls_are_timed(report: dict[str, Any]) -> None:
    # The daemon's own services ran beside the paced loop, each poll timed.
    assert "SystemdNotifyService" in report["cpu_run_services"]
    for name, poll in report["service_poll_ms"].items():
        assert name in report["cpu_run_services"]
        assert 0 <= poll["median_ms"] <= poll["p95_ms"] <= poll["max_ms"]


def test_table_names_every_stage_and_the_projection(report: dict[str, Any]) -> None:
    text = table(report)
    for stage in STAGES:
        assert stage in text
    assert "PROJECTION, NOT A MEASUREMENT" in text
    assert "fer baseline:" in text


def test_macs_of_the_detector_follow_from_its_graph(repo_root: Path) -> None:
    cost = count_macs(repo_root / "models" / "face_detection_short_range.tflite")
    assert cost.precision == "float32"
    assert cost.ops["CONV_2D"] > 0 and cost.ops["DEPTHWISE_CONV_2D"] > 0
    # The first layer alone: 64x64 outputs x 24 channels x 5x5x3 = 7.4 M MACs.
    assert cost.macs > 64 * 64 * 24 * 5 * 5 * 3
    emotion = count_macs(repo_root / "models" / "emotion_int8.tflite")
    assert emotion.precision == "int8" and emotion.macs > 0


def test_a_missing_baseline_environment_fails_before_measuring(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "bench", "--baseline-python", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=bench_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "--baseline-python" in result.stderr and "no such file" in result.stderr
