"""Load a TFLite model with ai-edge-litert, falling back to tflite-runtime.

A fallback is only trusted once it has constructed an Interpreter on the real
model and allocated its tensors: an importable module whose native library
cannot load the model is no fallback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.errors import ModelError

logger = logging.getLogger(__name__)

_RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def load_interpreter(path: Path, *, threads: int = 1) -> Any:
    """An allocated interpreter for ``path``; ModelError says why none could be made."""
    if not path.is_file():
        raise ModelError(f"model file {path} is missing: reinstall or see models/README.md")
    failures: list[str] = []
    for module_name in _RUNTIMES:
        try:
            module = __import__(module_name, fromlist=["Interpreter"])
        except ImportError as err:
            failures.append(f"{module_name}: not installed ({err})")
            continue
        try:
            interpreter = module.Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            failures.append(f"{module_name}: {err}")
            continue
        logger.debug("loaded %s with %s", path.name, module_name)
        return interpreter
    raise ModelError(
        f"cannot load model {path}: "
        + "; ".join(failures)
        + " (a corrupt file? re-extract or retrain it, see models/README.md)"
    )


def quantize(values: Any, detail: dict[str, Any]) -> Any:
    """Float values to the integer type of a tensor, from its own scale/zero point."""
    import numpy as np

    scale, zero_point = detail["quantization"]
    if not scale:
        return np.asarray(values, dtype=detail["dtype"])
    info = np.iinfo(detail["dtype"])
    q = np.round(np.asarray(values, dtype=np.float32) / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def dequantize(values: Any, detail: dict[str, Any]) -> Any:
    """Integer tensor values to float32, from the tensor's scale/zero point."""
    import numpy as np

    scale, zero_point = detail["quantization"]
    if not scale:
        return np.asarray(values, dtype=np.float32)
    return (np.asarray(values, dtype=np.float32) - zero_point) * scale
