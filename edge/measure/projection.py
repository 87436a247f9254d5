"""A Raspberry Pi 4 projection of the pipeline from operation counts: not a measurement.

Multiply-accumulates (MACs) are counted per model from its TFLite graph
(convolutions, depthwise convolutions, fully connected layers: the ops that
hold >95% of the arithmetic in these networks). They are turned into
milliseconds on one Cortex-A72 core of a Pi 4 (BCM2711, 1.5 GHz) with the
published per-operation speed below; everything that is not a network (resizing,
crops, Python, tracking) is scaled from its x86 measurement by the issue's
"a Pi 4 core is roughly a tenth of a desktop core". Both are assumptions,
stated with their sources, and the result is labelled a projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.tflite import load_interpreter

LABEL = "projection, not a measurement"

# Published per-operation speed: XNNPACK's README ("Performance / Raspberry Pi",
# benchmarked 2020-02-12, end2end-bench, fp32, 4 threads) gives RPi 4 (BCM2711)
# MobileNet v1 1.0X 75 ms (569 M MACs) and v2 1.0X 44 ms (300 M MACs): 7.6 and
# 6.8 GMAC/s over 4 cores, i.e. at least 1.7 GMAC/s per Cortex-A72 core (as if
# threads scaled perfectly, which only makes one core look slower). The
# Cortex-A72 has no SDOT, so int8 kernels are taken as no faster per MAC than
# fp32 (conservative). Small 48x48 and 128x128 networks use the vector units
# less well than ImageNet-sized ones: "pessimistic" halves the figure.
GMAC_PER_S = {"likely": 1.7, "pessimistic": 0.85}
SOURCE = (
    "google/XNNPACK README, Performance: Raspberry Pi 4 MobileNet v1 1.0X 75 ms, "
    "v2 1.0X 44 ms (fp32, 4 threads)"
)
# The issue: "a Pi 4 core is roughly a tenth of a desktop core".
NON_NETWORK_SLOWDOWN = 10.0


@dataclass(frozen=True)
class ModelCost:
    """Arithmetic of one TFLite model."""

    name: str
    precision: str  # "int8" or "float32": the type its convolutions compute in
    macs: int
    ops: dict[str, int]

    def pi4_ms(self, gmac_per_s: float) -> float:
        return self.macs / (gmac_per_s * 1e9) * 1000


def count_macs(path: Path) -> ModelCost:
    """MACs of the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops in a TFLite model."""
    interpreter = load_interpreter(path, threads=1)
    details = interpreter.get_tensor_details()
    shapes = {d["index"]: tuple(int(v) for v in d["shape"]) for d in details}
    macs = 0
    ops: dict[str, int] = {}
    int8 = False
    for op in interpreter._get_ops_details():  # the only public-ish op listing
        name = op["op_name"]
        ops[name] = ops.get(name, 0) + 1
        inputs: Any = op["inputs"]
        if name not in {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} or len(inputs) < 2:
            continue
        out = shapes.get(int(op["outputs"][0]), ())
        weights = shapes.get(int(inputs[1]), ())
        if not out or not weights:
            continue
        out_elements = 1
        for v in out:
            out_elements *= v
        if name == "CONV_2D":  # weights (Cout, kh, kw, Cin)
            macs += out_elements * weights[1] * weights[2] * weights[3]
        elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, C)
            macs += out_elements * weights[1] * weights[2]
        else:  # weights (units, inputs)
            macs += out_elements * weights[1]
        int8 = int8 or "int8" in str(op.get("operand_types", ""))
    return ModelCost(path.name, "int8" if int8 else "float32", macs, ops)


def project(
    models: dict[str, ModelCost],
    invokes_per_frame: dict[str, float],
    other_ms_per_frame_x86: dict[str, float],
) -> dict[str, Any]:
    """Projected Pi 4 milliseconds per frame and fps, per scenario and efficiency.

    ``invokes_per_frame``: model name -> interpreter runs per frame (e.g. the
    emotion model runs twice per classified face with mirror TTA);
    ``other_ms_per_frame_x86``: scenario -> measured x86 ms per frame spent
    outside the networks.
    """
    result: dict[str, Any] = {
        "label": LABEL,
        "assumptions": {
            "gmac_per_s_per_core": GMAC_PER_S,
            "source": SOURCE,
            "non_network_slowdown": NON_NETWORK_SLOWDOWN,
        },
        "models": {
            key: {
                "file": cost.name,
                "precision": cost.precision,
                "mmacs": round(cost.macs / 1e6, 3),
                "pi4_ms_likely": round(cost.pi4_ms(GMAC_PER_S["likely"]), 3),
                "pi4_ms_pessimistic": round(cost.pi4_ms(GMAC_PER_S["pessimistic"]), 3),
            }
            for key, cost in models.items()
        },
        "scenarios": {},
    }
    for scenario, other_ms in other_ms_per_frame_x86.items():
        entry: dict[str, float] = {}
        for case, speed in GMAC_PER_S.items():
            network_ms = sum(
                models[key].pi4_ms(speed) * invokes_per_frame.get(f"{scenario}:{key}", 0.0)
                for key in models
            )
            total_ms = network_ms + other_ms * NON_NETWORK_SLOWDOWN
            entry[f"ms_per_frame_{case}"] = round(total_ms, 3)
            entry[f"fps_{case}"] = round(1000 / total_ms, 1) if total_ms > 0 else 0.0
        result["scenarios"][scenario] = entry
    return result
