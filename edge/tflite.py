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

# Models above this size give their file pages back once loaded (release_model_pages).
RELEASE_PAGES_MIN_BYTES = 4 * 1024 * 1024
_MADV_DONTNEED = 4  # <sys/mman.h> on Linux

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
        if path.stat().st_size >= RELEASE_PAGES_MIN_BYTES:
            release_model_pages(path)
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


def release_model_pages(path: Path) -> int:
    """Drop the resident pages of ``path``'s read-only mappings; bytes released (0 if none).

    The interpreter maps the model file, and the XNNPACK delegate copies the
    weights into its own packed buffers while the tensors are allocated; the
    mapping's pages then just sit in the process's RSS (19 MB for the face
    embedder). MADV_DONTNEED on a read-only file mapping only unmaps them: a
    later read faults the same bytes back in from the file, so nothing can
    change but memory use. Linux only; elsewhere, or on any failure, nothing
    happens.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return 0
    target = str(path.resolve())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with Path("/proc/self/maps").open(encoding="utf-8") as maps:
            regions = [line.split() for line in maps if line.rstrip().endswith(target)]
        released = 0
        for fields in regions:
            # Only read-only mappings: a writable private one may hold changed pages.
            if len(fields) < 6 or "w" in fields[1]:
                continue
            start, end = (int(value, 16) for value in fields[0].split("-"))
            if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED):
                continue
            released += end - start
    except (OSError, ValueError, AttributeError) as err:
        logger.debug("cannot release the pages of %s: %s", path, err)
        return 0
    return released
