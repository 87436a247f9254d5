"""`moodbox bench`: what the pipeline costs on one core, measured on a fixed replay of real frames.

Everything runs pinned to one CPU with one interpreter thread per model, on
the bundled demo clip (public-domain portraits on a 640x480 canvas): the
frames with a face form the one-face set, the empty scenes the no-face set.
Frames are decoded once up front; "capture" is handing the pipeline a fresh
copy of a decoded frame, as picamera2's ``make_array`` does (JPEG decoding
is a replay artefact a camera does not have; it is reported apart).

Measured, per run:
  * per-stage latency (capture, detect, align, embed, classify, decide),
    median and p95 over the frames where the stage ran;
  * end-to-end fps with one face (the moving demo portraits; a still face with
    sensor noise; and with every shortcut off) and with none;
  * CPU use in % of one core of the daemon loop paced at ``camera.fps`` on
    no-face frames (idle) and one-face frames;
  * start-up time and peak RSS of a fresh process that loads the config,
    builds the pipeline and processes frames like ``moodbox run``;
  * the `fer` package's pipeline on the same frames, in its own environment
    (``scripts/setup-fer-baseline``), and our fps as a multiple of it;
  * a Raspberry Pi 4 projection from operation counts (edge.measure.projection).

No figure here is asserted by a test: tests only check the output's shape.
"""

from __future__ import annotations

from typing import Any

STAGES = ("capture", "detect", "align", "embed", "classify", "decide")
TARGETS = {
    "fps_one_face": (">=", 60.0),
    "speedup_vs_fer": (">=", 10.0),
    "idle_cpu_percent": ("<=", 3.0),
    "peak_rss_mb": ("<=", 200.0),
    "daemon_peak_rss_mb": ("<=", 200.0),
    "startup_s": ("<=", 3.0),
}


# --- output ---------------------------------------------------------------------------


def table(report: dict[str, Any]) -> str:
    """The human-readable summary."""
    lines = [
        f"moodbox bench: {report['frames']} frames of 640x480 per run, CPU {report['cpu']} "
        f"({report['cpu_model']}), 1 interpreter thread, detect every "
        f"{report['detect_every_n_frames']} frame(s), identity {report['identity']}",
        f"load average {report['load_average']} on {report['cpu_count']} CPUs "
        "(a loaded machine lowers wall-clock fps; frames per CPU second are immune)",
        "",
        f"{'stage':<10}{'median ms':>11}{'p95 ms':>9}{'runs':>7}   (one-face run)",
    ]
    for stage in STAGES:
        row = report["stages"].get(stage)
        if row is None:
            lines.append(f"{stage:<10}{'-':>11}{'-':>9}{0:>7}")
        else:
            lines.append(
                f"{stage:<10}{row['median_ms']:>11.3f}{row['p95_ms']:>9.3f}{row['runs']:>7}"
            )
    fer = report.get("fer")
    lines += ["", f"{'measure':<38}{'value':>10}   target"]
    cpu_fps = report["cpu_time_fps"]
    rows = [
        ("fps, one face (moving)", report["fps_one_face"], ">= 60"),
        ("fps, one face (still)", report["fps_one_face_still"], ""),
        ("fps, one face, no shortcuts", report["fps_one_face_no_shortcuts"], ""),
        ("fps, no face", report["fps_no_face"], ""),
        ("frames per CPU s, one face (moving)", cpu_fps["one_face"], ""),
        ("frames per CPU s, no face", cpu_fps["no_face"], ""),
        (
            f"idle CPU % of a core at {report['camera_fps']:g} fps",
            report["idle_cpu_percent"],
            "<= 3",
        ),
        ("one-face CPU % of a core", report["one_face_cpu_percent"], ""),
        ("peak RSS MB (pipeline probe)", report["peak_rss_mb"], "<= 200"),
        ("peak RSS MiB (moodbox run)", report.get("daemon_peak_rss_mb") or "-", "<= 200"),
        ("start-up s", report["startup_s"], "<= 3"),
    ]
    if fer is not None:
        rows += [
            ("fer (Keras) fps, one face", fer["keras"]["fps_one_face"], ""),
            ("fer (Keras) fps, no face", fer["keras"]["fps_no_face"], ""),
            ("fer (TFLite) fps, one face", fer["tflite"]["fps_one_face"], ""),
            ("speed-up vs fer (Keras)", report["speedup_vs_fer"], ">= 10"),
            ("speed-up vs fer (TFLite)", report["speedup_vs_fer_tflite"], ""),
            ("fer (Keras) frames per CPU s", fer["keras"].get("cpu_fps_one_face", "-"), ""),
            ("speed-up vs fer, per CPU s", report.get("speedup_vs_fer_cpu_time", "-"), ""),
        ]
    for name, value, target in rows:
        lines.append(f"{name:<38}{value:>10}   {target}")
    if fer is None:
        lines.append(f"fer baseline: {report.get('fer_note', '')}")
    for name, poll in report["service_poll_ms"].items():
        lines.append(
            f"{name}.poll on the frame loop: median {poll['median_ms']} ms, "
            f"p95 {poll['p95_ms']} ms, max {poll['max_ms']} ms"
        )
    if report.get("embedding"):
        emb = report["embedding"]
        lines.append(
            f"one embedding: align {emb['align_median_ms']} ms + embed {emb['embed_median_ms']} ms"
        )
    proj = report["pi4_projection"]
    lines += ["", f"Raspberry Pi 4, one core: {proj['label'].upper()}"]
    for key, model in proj["models"].items():
        lines.append(
            f"  {key:<8}{model['mmacs']:>9.1f} M MACs ({model['precision']}): "
            f"{model['pi4_ms_likely']:.1f} ms likely, "
            f"{model['pi4_ms_pessimistic']:.1f} ms pessimistic"
        )
    for scenario, entry in proj["scenarios"].items():
        lines.append(
            f"  {scenario:<22} {entry['fps_likely']:>6} fps likely, "
            f"{entry['fps_pessimistic']:>6} fps pessimistic"
        )
    rough = proj["x86_times_10"]
    lines.append(
        f"  cross-check, x86 frames per CPU s / 10: {rough['fps_one_face']} fps one face, "
        f"{rough['fps_no_face']} fps no face"
    )
    lines.append(f"  source: {proj['assumptions']['source']}")
    return "\n".join(lines)
