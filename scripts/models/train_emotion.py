#!/usr/bin/env python3
"""Train the 48x48 emotion CNN on FER-2013 and FER+ and export a full-integer int8 TFLite model.

Training runs in PyTorch (measured here: about twice as fast per epoch on a
2-core CPU as the same network in TensorFlow 2.21); the trained weights are
copied into an identical Keras graph and quantized with TFLiteConverter and a
representative data set. Dependencies: requirements-train.txt (not runtime).

    python scripts/models/prepare_emotion_data.py
    python scripts/models/train_emotion.py --run-name w24 --epochs 120 --max-minutes 90
    python scripts/models/train_emotion.py --run-name w24 --epochs 120 --max-minutes 90  # resumes
    python scripts/models/train_emotion.py --run-name w24 --plot docs/training_curve_w24.png
    python scripts/models/train_emotion.py --run-name w24 --export-only --export-head mix:0.5

Stints: a full checkpoint (weights, optimizer, schedule, every RNG state, the
epoch, the best validation score and the log) is written atomically after
every epoch to ``$XDG_CACHE_HOME/moodbox/train/<run-name>/`` (``--workdir``
overrides): ``last.pt``, and ``best.pt`` for the best validation score.
``--max-minutes N`` stops cleanly (exit 0) before an epoch that the last
measured epoch time says would overrun; the same command started again
resumes exactly where it stopped. ``epochs.csv`` in the workdir has one row
per epoch; ``--plot PATH`` draws it.

Two heads on one backbone: the last layer has 14 outputs, the FER-2013 head
(outputs 0-6, hard labels with label smoothing) and the FER+ head (7-13, the
annotators' vote distribution over the 7 classes, soft cross-entropy; faces
without FER+ votes are masked out of that loss). Validation (PublicTest =
FER+ Valid) scores both heads against both label sets: the FER-2013 label,
the FER+ majority and the FERPlus reference protocol's majority. The
validation score that picks ``best.pt`` is FER-2013-head accuracy on FER-2013
labels + FER+-head accuracy on FER+ majorities.

Export: ``--export-head fer2013|ferplus|mix:W``. Both heads are linear layers
on the same features, so a mix of their logits, (1 - W) x FER-2013 + W x FER+,
is one linear layer too: the exported graph has a single 7-logit output
whatever the choice, the runtime contract of edge/classify.py.

Soft labels: ``--ferplus-mix M`` also mixes the FER+ votes into the FER-2013
head's target. Distillation: ``--teacher CKPT --kd-weight K`` mixes a trained
network's probabilities (face and mirror image averaged, computed once) into
each head's target with weight K. With ``--init`` a wider trained network is
pruned to ``--width`` first (the channels with the largest batch-norm
scales), so a student can start from the teacher instead of from scratch; a
one-head (7-output) network initialises both heads.

GPU path: ``--device cuda`` (``auto``, the default, picks CUDA when torch sees
one); the augmentation runs on the same device, the export on the CPU. The
CPU path (``--threads 1`` by default) is the reference. ``--limit N`` trains
on the first N training faces (a smoke test).

The exported model takes a (1, 48, 48, 1) int8 grey face (pixel value minus
128; the runtime reads scale and zero point from the tensor details) and
returns int8 logits; the runtime applies softmax(logits / temperature), with
the temperature fitted on the validation split and stored in
emotion_model.json beside the exported file.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moodbox"
STAGES = (1, 2, 4, 8)  # channel multipliers of the four stages (48, 24, 12, 6 px)
DEPTHS = (1, 2, 2, 2)  # convs per stage: one at full resolution, where a channel costs 4x
CLASSES = 7
HEADS = ("fer2013", "ferplus")
# FER+ vote columns (prepare_emotion_data.FERPLUS_COLUMNS) in our label order:
# angry, disgust, fear, happy, sad, surprise, neutral.
FERPLUS_TO_LABELS = [4, 5, 6, 1, 3, 2, 0]
LOG_FIELDS = [
    "epoch",
    "lr",
    "train_loss",
    "train_loss_fer2013",
    "train_loss_ferplus",
    *(
        f"val_{head}_head_{labels}"
        for head in HEADS
        for labels in ("fer2013", "ferplus", "ferplus_ref")
    ),
    "val_score",
    "seconds",
]


def build_torch_net(
    width: int, depths: tuple[int, ...] = DEPTHS, outputs: int = 14, dropout: float = 0.4
):  # type: ignore[no-untyped-def]
    """Plain 3x3 VGG stages, global pooling, a dense layer, ``outputs`` logits (7 per head)."""
    from torch import nn

    layers: list[nn.Module] = []
    channels = 1
    for stage, (factor, depth) in enumerate(zip(STAGES, depths, strict=True)):
        for _ in range(depth):
            layers += [
                nn.Conv2d(channels, width * factor, 3, padding=1, bias=False),
                nn.BatchNorm2d(width * factor),
                nn.ReLU(inplace=True),
            ]
            channels = width * factor
        if stage < len(STAGES) - 1:
            layers.append(nn.MaxPool2d(2))
        if stage > 0:
            layers.append(nn.Dropout2d(0.05 * stage))
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels, channels, bias=False),
        nn.BatchNorm1d(channels),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(channels, outputs),
    ]
    return nn.Sequential(*layers)


def build_keras_net(width: int, depths: tuple[int, ...] = DEPTHS):  # type: ignore[no-untyped-def]
    """The same graph in Keras with one 7-logit output, for TFLite conversion (inference only)."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, 1), name="face")
    # Raw 0..255 pixels in: the int8 input then quantizes as pixel-128 exactly.
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for stage, (factor, depth) in enumerate(zip(STAGES, depths, strict=True)):
        for _ in range(depth):
            x = layers.Conv2D(width * factor, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(epsilon=1e-5)(x)
            x = layers.ReLU()(x)
        if stage < len(STAGES) - 1:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(width * STAGES[-1], use_bias=False)(x)
    x = layers.BatchNormalization(epsilon=1e-5)(x)
    x = layers.ReLU()(x)
    logits = layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="moodbox_emotion")


def head_weights(spec: str) -> tuple[float, float]:
    """``fer2013``, ``ferplus`` or ``mix:W`` -> (weight of the FER-2013 head, of the FER+ head)."""
    if spec == "fer2013":
        return 1.0, 0.0
    if spec == "ferplus":
        return 0.0, 1.0
    if spec.startswith("mix:"):
        w = float(spec[4:])
        if 0.0 <= w <= 1.0:
            return 1.0 - w, w
    raise argparse.ArgumentTypeError(
        f"--export-head {spec!r}: fer2013, ferplus or mix:W, 0 <= W <= 1"
    )


def mixed_logits(logits: np.ndarray, weights: tuple[float, float]) -> np.ndarray:
    """(N, 7) logits of the exported head from a net's (N, 7) or (N, 14) outputs."""
    if logits.shape[1] == CLASSES:
        return logits
    return weights[0] * logits[:, :CLASSES] + weights[1] * logits[:, CLASSES:]


def copy_weights(torch_net, keras_net, weights: tuple[float, float]) -> None:  # type: ignore[no-untyped-def]
    from torch import nn

    sources = [
        m
        for m in torch_net
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Linear))
    ]
    targets = [layer for layer in keras_net.layers if layer.weights]
    assert len(sources) == len(targets), (len(sources), len(targets))
    for src, dst in zip(sources, targets, strict=True):
        if isinstance(src, nn.Conv2d):
            dst.set_weights([src.weight.detach().numpy().transpose(2, 3, 1, 0)])
        elif isinstance(src, nn.Linear):
            kernel = src.weight.detach().numpy()
            bias = None if src.bias is None else src.bias.detach().numpy()
            if src is sources[-1]:  # the heads: one linear layer for the chosen mix
                kernel = mixed_logits(kernel.T, weights).T
                assert bias is not None
                bias = mixed_logits(bias[None, :], weights)[0]
            dst.set_weights([kernel.T] + ([] if bias is None else [bias]))
        else:
            dst.set_weights(
                [
                    t.detach().numpy()
                    for t in (src.weight, src.bias, src.running_mean, src.running_var)
                ]
            )


def augment(x, generator, shift: float = 0.15, rotate: float = 15.0, scale: float = 0.15):  # type: ignore[no-untyped-def]
    """Whole-batch augmentation in tensor ops (no per-image Python loop).

    One affine warp per face (mirror, rotation up to ``rotate`` degrees, scale
    jitter, shift up to ``shift`` of the side in each direction), then
    brightness/contrast, then random erasing of a rectangle (2-20% of the face)
    on half the batch. Random numbers come from ``generator`` (on the CPU) so a
    resumed run draws the same ones.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape

    def rand(*shape: int):  # type: ignore[no-untyped-def]
        return torch.rand(*shape, generator=generator).to(x.device)

    angle = (rand(n) * 2 - 1) * math.radians(rotate)
    zoom = 1 + (rand(n) * 2 - 1) * scale
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    offset = (rand(n, 2) * 2 - 1) * shift * 2  # grid coordinates span 2 per side
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, offset[:, 0]], 1),
            torch.stack([sin * flip, cos, offset[:, 1]], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    contrast = 1 + (rand(n, 1, 1, 1) * 2 - 1) * 0.2
    brightness = (rand(n, 1, 1, 1) * 2 - 1) * 0.15
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + brightness).clamp(0, 1)
    # Random erasing (hands, glasses, hair): area 2-20%, aspect 0.3-3.3.
    area = (0.02 + rand(n) * 0.18) * h * w
    aspect = torch.exp((rand(n) * 2 - 1) * math.log(3.3))
    eh = (area * aspect).sqrt().clamp(4, h)
    ew = (area / aspect).sqrt().clamp(4, w)
    top, left = rand(n) * (h - eh), rand(n) * (w - ew)
    on = rand(n) < 0.5
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    box = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
        & on.view(n, 1, 1)
    )
    return torch.where(box.unsqueeze(1), rand(n, 1, 1, 1), x)


def count_macs(net, device) -> int:  # type: ignore[no-untyped-def]
    """Multiply-adds of one 48x48 face through the convs and dense layers."""
    import torch
    from torch import nn

    total = 0

    def hook(module, inputs, output) -> None:  # type: ignore[no-untyped-def]
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            total += output[0].numel() * per_output
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 48, 48, device=device))
    net.train(was_training)
    for handle in handles:
        handle.remove()
    return total


def arch_of(saved: dict[str, Any]) -> dict[str, Any]:
    """Width, depths and outputs of a checkpoint (older ones hold a bare state dict)."""
    if "arch" in saved:
        return dict(saved["arch"])
    state = saved.get("net", saved)
    return {
        "width": int(state["0.weight"].shape[0]),
        "depths": list(DEPTHS),
        "outputs": int(list(state.values())[-1].shape[0]),
    }


def load_state(net, state: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Load ``state``; a one-head (7-output) last layer initialises both heads."""
    import torch

    last_w, last_b = list(state)[-2:]
    wanted = net.state_dict()[last_b].shape[0]
    have = state[last_b].shape[0]
    if have != wanted:
        state = dict(state)
        state[last_w] = state[last_w].repeat(wanted // have, 1)
        state[last_b] = state[last_b].repeat(wanted // have)
    net.load_state_dict(
        {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    )


def load_net(path: Path, device):  # type: ignore[no-untyped-def]
    """The network of a checkpoint (last.pt, best.pt or a float16 weights file), in eval mode."""
    import torch

    saved = torch.load(path, weights_only=False, map_location=device)
    arch = arch_of(saved)
    net = build_torch_net(arch["width"], tuple(arch["depths"]), arch["outputs"]).to(device)
    load_state(net, saved.get("net", saved))
    return net.eval(), arch


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename: never a half-written file."""
    import torch

    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    tmp = Path(name)
    try:
        torch.save(obj, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def rng_states(generator) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    import torch

    return {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_states(generator, states: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    import torch

    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up from 0.1, then cosine decay to 0 at ``total`` steps."""
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def log_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_curve(log_path: Path, out: Path, title: str) -> None:
    """Training loss and learning rate, and validation accuracy of both heads, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{log_path}: no epochs logged yet")
    epoch = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("train_loss_fer2013", "FER-2013 head (smoothed CE)"),
        ("train_loss_ferplus", "FER+ head (soft CE on votes)"),
    ):
        ax_loss.plot(epoch, [float(r[key]) for r in rows], label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (augmented faces)")
    ax_lr = ax_loss.twinx()
    ax_lr.plot(
        epoch, [float(r["lr"]) for r in rows], color="grey", linestyle=":", label="learning rate"
    )
    ax_lr.set_ylabel("learning rate")
    lines = ax_loss.get_legend_handles_labels()
    lr_lines = ax_lr.get_legend_handles_labels()
    ax_loss.legend(lines[0] + lr_lines[0], lines[1] + lr_lines[1], fontsize=8)
    for key, label, style in (
        ("val_fer2013_head_fer2013", "FER-2013 head vs FER-2013 labels", "-"),
        ("val_ferplus_head_ferplus", "FER+ head vs FER+ majority", "-"),
        ("val_ferplus_head_ferplus_ref", "FER+ head vs FER+ reference protocol", "--"),
        ("val_fer2013_head_ferplus", "FER-2013 head vs FER+ majority", ":"),
        ("val_ferplus_head_fer2013", "FER+ head vs FER-2013 labels", ":"),
    ):
        ax_acc.plot(epoch, [100 * float(r[key]) for r in rows], style, label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy, % (float model)")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run_title(ckpt_path: Path) -> str:
    """The run's name, network and progress, from its last.pt, for the curve's title."""
    import torch

    saved = torch.load(ckpt_path, weights_only=False, map_location="cpu")
    arch, used = saved["arch"], saved["args"]
    return (
        f"{ckpt_path.parent.name}: width {arch['width']}, depths {arch['depths']}, "
        f"{used['optimizer']}, epoch {saved['epoch']} of {used['epochs']}, "
        f"{saved['wall_s'] / 3600:.1f} h; validation = PublicTest (FER+ Valid)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CACHE / "fer2013.npz")
    parser.add_argument("--run-name", default="emotion", help="names the default --workdir")
    parser.add_argument(
        "--workdir", type=Path, help="default: $XDG_CACHE_HOME/moodbox/train/<run-name>"
    )
    parser.add_argument(
        "--out", type=Path, help="exported model; default: <workdir>/emotion_int8.tflite"
    )
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    parser.add_argument(
        "--lr", type=float, help="peak learning rate (default: sgd 0.05, adamw 3e-3)"
    )
    parser.add_argument("--weight-decay", type=float, help="default: sgd 5e-4, adamw 5e-2")
    parser.add_argument("--warmup-epochs", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=24)
    parser.add_argument(
        "--depths", default=",".join(map(str, DEPTHS)), help="convs per stage, e.g. 1,2,3,3"
    )
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument(
        "--ferplus-weight", type=float, default=1.0, help="weight of the FER+ head's loss"
    )
    parser.add_argument(
        "--shift", type=float, default=0.15, help="augmentation: max shift, fraction of the side"
    )
    parser.add_argument("--seed", type=int, default=2013)
    parser.add_argument("--threads", type=int, default=1, help="torch intra- and inter-op threads")
    parser.add_argument(
        "--max-minutes", type=float, help="stop cleanly before an epoch that would overrun"
    )
    parser.add_argument(
        "--ferplus-mix",
        type=float,
        default=0.0,
        help="weight of the FER+ vote distribution in the FER-2013 head's target (0: FER-2013 only)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N faces only")
    parser.add_argument(
        "--init",
        type=Path,
        help="start from these weights (a last.pt, best.pt or weights file of an earlier run): "
        "fine-tuning; weights of a wider network are pruned to --width first (see narrow_from)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="distil: a checkpoint whose mirror-averaged predictions on the training faces join "
        "each head's target with weight --kd-weight",
    )
    parser.add_argument("--kd-weight", type=float, default=0.5)
    parser.add_argument(
        "--export-only", action="store_true", help="export --checkpoint (untrained if none)"
    )
    parser.add_argument(
        "--export-head", type=head_weights, default=head_weights("fer2013"), metavar="HEAD"
    )
    parser.add_argument(
        "--checkpoint",
        choices=["last", "best"],
        default="last",
        help="weights to export: the final epoch (default) or the best validation score",
    )
    parser.add_argument(
        "--plot", type=Path, help="write the training curve of the workdir's log here and exit"
    )
    parser.add_argument(
        "--save-weights", type=Path, help="write --checkpoint's weights as float16 here and exit"
    )
    args = parser.parse_args(argv)
    argv_used = argv if argv is not None else sys.argv[1:]
    depths = tuple(int(d) for d in args.depths.split(","))
    workdir: Path = args.workdir or CACHE / "train" / args.run_name
    out: Path = args.out or workdir / "emotion_int8.tflite"
    ckpt_path, best_path = workdir / "last.pt", workdir / "best.pt"
    log_path = workdir / "epochs.csv"
    if args.plot is not None:
        plot_curve(log_path, args.plot, run_title(ckpt_path))
        print(f"wrote {args.plot}")
        return 0
    started = time.monotonic()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    # Fixed for good once torch has run parallel work in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(args.threads)
    if args.save_weights is not None:
        source = best_path if args.checkpoint == "best" else ckpt_path
        saved = torch.load(source, weights_only=False, map_location="cpu")
        half = {k: v.half() if v.is_floating_point() else v for k, v in saved["net"].items()}
        meta = {key: saved.get(key) for key in ("epoch", "val", "best_score", "best_epoch")}
        args.save_weights.parent.mkdir(parents=True, exist_ok=True)
        save_atomic({"net": half, "arch": arch_of(saved), **meta}, args.save_weights)
        print(f"wrote {args.save_weights} ({source}, epoch {saved['epoch']})")
        return 0

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    device = torch.device(
        "cuda"
        if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    print(
        f"device: {device}, threads {torch.get_num_threads()}/{torch.get_num_interop_threads()}",
        flush=True,
    )
    data = np.load(args.data)
    limit = args.limit or len(data["y_train"])
    x_train = torch.from_numpy(data["x_train"][:limit]).float().div_(255).unsqueeze(1)
    x_val = torch.from_numpy(data["x_public"]).float().div_(255).unsqueeze(1)
    y_val = data["y_public"].astype(np.int64)
    target13 = soft_targets(data, "train", args.ferplus_mix, args.label_smoothing)[:limit]
    plus_votes, plus_known = ferplus_distribution(data, "train")
    plus_votes, plus_known = plus_votes[:limit], plus_known[:limit]
    if args.teacher is not None and not args.export_only:  # targets are for training only
        target13, plus_votes = distil_targets(args, x_train, target13, plus_votes, device)
    target13_t = torch.from_numpy(target13)
    plus_t, plus_mask_t = (
        torch.from_numpy(plus_votes),
        torch.from_numpy(plus_known.astype(np.float32)),
    )
    val_labels = {
        "fer2013": y_val,
        "ferplus": ferplus_majority(data, "public"),
        "ferplus_ref": ferplus_reference(data, "public"),
    }

    workdir.mkdir(parents=True, exist_ok=True)
    arch = {"width": args.width, "depths": list(depths), "outputs": CLASSES * len(HEADS)}
    net = build_torch_net(args.width, depths).to(device=device, memory_format=torch.channels_last)
    macs = count_macs(net, device)
    params = sum(p.numel() for p in net.parameters())
    print(
        f"width {args.width}, depths {depths}: {params:,} parameters, {macs / 1e6:.1f} M MACs",
        flush=True,
    )
    steps_per_epoch = math.ceil(len(x_train) / args.batch)
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    if args.optimizer == "sgd":
        lr, wd = args.lr or 0.05, 5e-4 if args.weight_decay is None else args.weight_decay
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
            momentum=0.9,
            nesterov=True,
        )
    else:
        lr, wd = args.lr or 3e-3, 5e-2 if args.weight_decay is None else args.weight_decay
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
        )
    total_steps = steps_per_epoch * args.epochs
    warmup = int(args.warmup_epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup)
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "best_score": -1.0,
        "best_epoch": 0,
        "wall_s": 0.0,
        "log": [],
    }
    if ckpt_path.exists():
        saved = torch.load(ckpt_path, weights_only=False, map_location=device)
        if saved["arch"] != arch:
            raise SystemExit(
                f"{ckpt_path} holds {saved['arch']}, not {arch}: another --workdir or --run-name"
            )
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        set_rng_states(generator, saved["rng"])
        state = {key: saved[key] for key in state}
        print(
            f"resumed after epoch {state['epoch']} (best val score {state['best_score']:.4f})",
            flush=True,
        )
    elif args.init is not None:
        wide, init_arch = load_net(args.init, device)
        if init_arch["width"] == args.width and tuple(init_arch["depths"]) == depths:
            load_state(net, wide.state_dict())
        else:
            narrow_from(wide, net)
        print(f"initialised from {args.init} ({init_arch})", flush=True)
    write_text_atomic(log_path, log_csv(state["log"]))

    def predict(x):  # type: ignore[no-untyped-def]
        net.eval()
        with torch.no_grad():
            return (
                torch.cat([net(x[i : i + 512].to(device)) for i in range(0, len(x), 512)])
                .cpu()
                .numpy()
            )

    progress = sys.stdout.isatty()
    while not args.export_only and state["epoch"] < args.epochs:
        epoch = state["epoch"] + 1
        if args.max_minutes is not None and state["log"]:
            # The last epoch's time (10% margin) says whether one more fits.
            needed = 1.1 * float(state["log"][-1]["seconds"])
            left = args.max_minutes * 60 - (time.monotonic() - started)
            if needed > left:
                print(
                    f"stopping before epoch {epoch}/{args.epochs}: it takes about {needed:.0f} s and "
                    f"{max(0.0, left):.0f} s of --max-minutes {args.max_minutes:g} are left. "
                    f"Checkpoint: {ckpt_path}. To resume, run the same command again:\n"
                    f"  python scripts/models/train_emotion.py {' '.join(argv_used)}",
                    flush=True,
                )
                return 0
        start = time.monotonic()
        net.train()
        order = torch.randperm(len(x_train), generator=generator)
        sums = {"loss": 0.0, "fer2013": 0.0, "ferplus": 0.0}
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            xb = augment(x_train[idx].to(device), generator, shift=args.shift)
            logits = net(xb.contiguous(memory_format=torch.channels_last))
            loss13 = F.cross_entropy(logits[:, :CLASSES], target13_t[idx].to(device))
            mask = plus_mask_t[idx].to(device)
            plus_ce = -(plus_t[idx].to(device) * F.log_softmax(logits[:, CLASSES:], 1)).sum(1)
            loss_plus = (plus_ce * mask).sum() / mask.sum().clamp(min=1.0)
            loss = loss13 + args.ferplus_weight * loss_plus
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            for key, value in (("loss", loss), ("fer2013", loss13), ("ferplus", loss_plus)):
                sums[key] += float(value.detach()) * len(idx)
            if progress and (step % 20 == 0 or step == steps_per_epoch - 1):
                done = (step + 1) / steps_per_epoch
                seen = step * args.batch + len(idx)
                sys.stdout.write(
                    f"\repoch {epoch}/{args.epochs} [{'#' * int(done * 30):<30}] {done:4.0%} "
                    f"loss {sums['loss'] / seen:.4f}"
                )
                sys.stdout.flush()
        val_logits = predict(x_val)
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": f"{optimizer.param_groups[0]['lr']:.6g}",
            "train_loss": round(sums["loss"] / len(x_train), 4),
            "train_loss_fer2013": round(sums["fer2013"] / len(x_train), 4),
            "train_loss_ferplus": round(sums["ferplus"] / len(x_train), 4),
        }
        for h, head in enumerate(HEADS):
            pred = val_logits[:, h * CLASSES : (h + 1) * CLASSES].argmax(1)
            for name, labels in val_labels.items():
                ok = labels >= 0
                row[f"val_{head}_head_{name}"] = round(float((pred[ok] == labels[ok]).mean()), 4)
        score = row["val_fer2013_head_fer2013"] + row["val_ferplus_head_ferplus"]
        row["val_score"] = round(score, 4)
        elapsed = time.monotonic() - start
        row["seconds"] = round(elapsed, 1)
        state["wall_s"] += elapsed
        state["epoch"] = epoch
        state["log"].append(row)
        if progress:
            sys.stdout.write("\n")
        print(json.dumps(row), flush=True)
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch
            save_atomic(
                {"net": net.state_dict(), "arch": arch, "epoch": epoch, "val": row}, best_path
            )
        save_atomic(
            {
                "net": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": rng_states(generator),
                "arch": arch,
                "args": {k: str(v) for k, v in vars(args).items()},
                **state,
            },
            ckpt_path,
        )
        write_text_atomic(log_path, log_csv(state["log"]))

    source = best_path if args.checkpoint == "best" else ckpt_path
    exported_from = args.checkpoint
    if source.exists():
        saved = torch.load(source, weights_only=False, map_location=device)
        net.load_state_dict(saved["net"])
        exported_epoch = saved["epoch"] if "epoch" in saved else state["epoch"]
    elif args.export_only and args.init is not None:
        # A committed weights file, when the run's cache is gone: --init loaded
        # it above; its own metadata says which epoch it is.
        saved = torch.load(args.init, weights_only=False, map_location="cpu")
        exported_epoch = int(saved.get("epoch") or 0)
        if args.checkpoint == "best" and isinstance(saved.get("val"), dict):
            state["best_epoch"], state["best_score"] = exported_epoch, saved["val"]["val_score"]
        exported_from = args.init.as_posix()
    else:
        print(f"no {source}: exporting the untrained network (for timing only)", flush=True)
        exported_epoch = 0
    val_logits = mixed_logits(predict(x_val), args.export_head)
    temperature = fit_temperature(val_logits, y_val)
    print(
        f"float model, exported head: val acc {(val_logits.argmax(1) == y_val).mean():.4f}, T={temperature:.2f}"
    )
    export_int8(
        net.to(device="cpu", memory_format=torch.contiguous_format),
        width=args.width,
        depths=depths,
        weights=args.export_head,
        x_train=data["x_train"],
        out=out,
        seed=args.seed,
        threads=args.threads,
    )
    int8_logits = int8_predict(out, data["x_public"], args.threads)
    for name, labels in val_labels.items():
        ok = labels >= 0
        print(
            f"int8 model: val acc vs {name} {(int8_logits.argmax(1)[ok] == labels[ok]).mean():.4f}"
        )
    meta = {
        "labels": [str(s) for s in data["labels"]],
        "temperature": round(temperature, 3),
        "input": "(1,48,48,1) grey face, int8 quantized from 0..255 pixels with the input tensor's scale/zero point",
        "output": "(1,7) int8 logits; probabilities = softmax(dequantized logits / temperature)",
        "train": {
            "framework": f"pytorch ({device.type}), weights copied to keras, TFLiteConverter full int8",
            "arch": arch,
            "macs": macs,
            "parameters": params,
            "export_head": {"fer2013": args.export_head[0], "ferplus": args.export_head[1]},
            "ferplus_mix": args.ferplus_mix,
            "teacher": None
            if args.teacher is None
            else {"checkpoint": str(args.teacher), "kd_weight": args.kd_weight},
            # None: exported from a weights file, whose run length is in its provenance.
            "epochs": state["epoch"] or None,
            "exported": f"{exported_from} (epoch {exported_epoch})",
            "best_epoch": state["best_epoch"],
            "best_val_score_float": round(state["best_score"], 4),
            "wall_s": round(state["wall_s"], 1),
            "seed": args.seed,
            "command": "python scripts/models/train_emotion.py " + " ".join(argv_used),
            "data_sha256": str(data["source_sha256"]),
        },
    }
    (out.parent / "emotion_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


def narrow_from(wide, narrow) -> None:  # type: ignore[no-untyped-def]
    """Copy a wider trained network into a narrower one of the same depths, channel by channel.

    Each conv (and the hidden dense layer) keeps the channels whose batch-norm
    scale |gamma| is largest ("network slimming"): a channel that batch norm
    scales towards zero contributes little after the ReLU. Inputs follow the
    channels the layer before kept. A pruned start keeps much of what the
    wide network learnt: measured here, a width-16 student reached 58% on
    validation after one epoch from step 2's channels, against 32% from
    scratch (models/README.md). A one-head last layer is copied to both heads.
    """
    import torch
    from torch import nn

    def of(net, kind):  # type: ignore[no-untyped-def]
        return [m for m in net if isinstance(m, kind)]

    kept = torch.arange(1)  # the grey input channel
    with torch.no_grad():
        pairs = zip(
            of(wide, nn.Conv2d),
            of(wide, nn.BatchNorm2d),
            of(narrow, nn.Conv2d),
            of(narrow, nn.BatchNorm2d),
            strict=True,
        )
        for conv_w, bn_w, conv_n, bn_n in pairs:
            keep = bn_w.weight.abs().topk(conv_n.out_channels).indices.sort().values
            conv_n.weight.copy_(conv_w.weight[keep][:, kept])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn_n, name).copy_(getattr(bn_w, name)[keep])
            kept = keep
        (hidden_w, out_w), (hidden_n, out_n) = of(wide, nn.Linear), of(narrow, nn.Linear)
        (bn1_w,), (bn1_n,) = of(wide, nn.BatchNorm1d), of(narrow, nn.BatchNorm1d)
        keep = bn1_w.weight.abs().topk(hidden_n.out_features).indices.sort().values
        hidden_n.weight.copy_(hidden_w.weight[keep][:, kept])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn1_n, name).copy_(getattr(bn1_w, name)[keep])
        repeat = out_n.out_features // out_w.out_features
        out_n.weight.copy_(out_w.weight[:, keep].repeat(repeat, 1))
        out_n.bias.copy_(out_w.bias.repeat(repeat))


def soft_targets(data, split: str, mix: float, smoothing: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(N, 7) float32 FER-2013 head targets: smoothed one-hot, mixed with FER+ votes where known."""
    labels = data[f"y_{split}"].astype(np.int64)
    targets = np.full((len(labels), 7), smoothing / 7, dtype=np.float32)
    targets[np.arange(len(labels)), labels] += 1 - smoothing
    if mix <= 0:
        return targets
    distribution, known = ferplus_distribution(data, split)
    targets[known] = (1 - mix) * targets[known] + mix * distribution[known]
    return targets


def ferplus_distribution(data, split: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(N, 7) FER+ vote distribution over our 7 classes, and (N,) whether a face has any such vote."""
    if f"v_{split}" not in data:
        raise SystemExit("no FER+ votes in the data: rerun scripts/models/prepare_emotion_data.py")
    votes = np.nan_to_num(data[f"v_{split}"][:, FERPLUS_TO_LABELS], nan=0.0)
    total = votes.sum(1, keepdims=True)
    return (votes / np.maximum(total, 1e-9)).astype(np.float32), total[:, 0] > 0


def distil_targets(
    args, x_train, target13: np.ndarray, plus: np.ndarray, device
) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Each head's target: (1 - kd) x its own + kd x the teacher's probabilities (face and mirror averaged).

    Computed once on the un-augmented faces. A two-head teacher teaches each
    head with its own head; a one-head teacher teaches both.
    """
    import torch

    teacher, _ = load_net(args.teacher, device)
    chunks = []
    with torch.no_grad():
        for i in range(0, len(x_train), 512):
            xb = x_train[i : i + 512].to(device)
            chunks.append(((teacher(xb) + teacher(xb.flip(3))) / 2).cpu().numpy())
    logits = np.concatenate(chunks)
    if logits.shape[1] == CLASSES:
        logits = np.concatenate([logits, logits], 1)
    probs13, probs_plus = (softmax(logits[:, :CLASSES]), softmax(logits[:, CLASSES:]))
    print(
        f"teacher {args.teacher}: train acc {(probs13.argmax(1) == target13.argmax(1)).mean():.4f} "
        f"against the FER-2013 head's targets' argmax",
        flush=True,
    )
    kd = args.kd_weight
    return (
        ((1 - kd) * target13 + kd * probs13).astype(np.float32),
        ((1 - kd) * plus + kd * probs_plus).astype(np.float32),
    )


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)  # type: ignore[no-any-return]


def ferplus_majority(data, split: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """FER+ majority class per face in our label order (-1: no votes)."""
    votes = np.nan_to_num(data[f"v_{split}"][:, FERPLUS_TO_LABELS])
    return np.where(votes.sum(1) > 0, votes.argmax(1), -1)


def ferplus_reference(data, split: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The FERPlus reference protocol's label per face in our order (-1: left out).

    Votes of one are dropped as outliers; a face counts only where one emotion
    holds more than half of the remaining votes, and not where that is
    contempt, unknown or not-a-face.
    """
    votes = np.nan_to_num(data[f"v_{split}"])
    votes = np.where(votes <= 1, 0.0, votes)
    total = votes.sum(1)
    top = votes.argmax(1)
    strict = votes.max(1) > total / 2
    ours = {column: label for label, column in enumerate(FERPLUS_TO_LABELS)}
    labels = np.array([ours.get(int(t), -1) for t in top])
    return np.where(strict & (total > 0), labels, -1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature minimising validation NLL (grid search over one parameter)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.arange(0.5, 3.001, 0.05):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        nll = -float(logp[np.arange(len(labels)), labels].mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def export_int8(  # type: ignore[no-untyped-def]
    torch_net,
    *,
    width: int,
    depths: tuple[int, ...],
    weights: tuple[float, float],
    x_train: np.ndarray,
    out: Path,
    seed: int,
    threads: int,
) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras_net = build_keras_net(width, depths)
    copy_weights(torch_net.eval(), keras_net, weights)

    # Keras 3 graphs keep resource variables that the calibrator cannot read
    # from a concrete function; a SavedModel export freezes them.
    saved = Path(tempfile.mkdtemp(prefix="emotion_savedmodel_"))
    keras_net.export(str(saved), format="tf_saved_model", verbose=False)

    rng = np.random.default_rng(seed)
    calib = x_train[rng.choice(len(x_train), 1000, replace=False)].astype(np.float32)

    def representative():  # type: ignore[no-untyped-def]
        for image in calib:
            yield [image[None, :, :, None]]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(converter.convert())
    shutil.rmtree(saved, ignore_errors=True)


def int8_predict(path: Path, faces: np.ndarray, threads: int) -> np.ndarray:
    """Dequantized int8 logits of the exported file on (N, 48, 48) uint8 faces, as the runtime feeds them."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = outp["quantization"]
    result = np.empty((len(faces), CLASSES), dtype=np.float32)
    for i, face in enumerate(faces):
        q = np.clip(np.round(face.astype(np.float32) / in_scale + in_zero), -128, 127).astype(
            np.int8
        )
        interpreter.set_tensor(inp["index"], q[None, :, :, None])
        interpreter.invoke()
        result[i] = (
            interpreter.get_tensor(outp["index"])[0].astype(np.float32) - out_zero
        ) * out_scale
    return result


if __name__ == "__main__":
    raise SystemExit(main())
