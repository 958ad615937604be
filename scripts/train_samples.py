"""Train and export the workbench's sample models on scikit-learn's handwritten digits.

Dev-time only. The workbench needs real, trained models to demonstrate precision
variants, pruning, layer timing and accuracy drift; random weights would make every
accuracy number meaningless. The digits data set (1797 8x8 images) ships inside
scikit-learn, so the models can be regenerated offline in a few minutes on a laptop CPU.

PyTorch is used ONLY here and must never become a runtime dependency of the workbench,
so install it into a separate virtual environment::

    python3 -m venv /tmp/train-venv
    /tmp/train-venv/bin/pip install torch==2.13.0 onnx numpy scikit-learn
    /tmp/train-venv/bin/python scripts/train_samples.py            # all three models
    /tmp/train-venv/bin/python scripts/train_samples.py --only digits_cnn
    /tmp/train-venv/bin/python scripts/train_samples.py --only digits_outlier   # workshop 4's sample

For each model it writes ``sample_models/<name>/``:

* ``model.onnx`` - opset 17, input ``input`` float32 ``[batch, 1, H, W]`` (dynamic
  ``batch``), output ``logits`` ``[batch, 10]``.
* ``calib.npz`` - ``{"input": float32 [N, 1, H, W]}``, N calibration images drawn from the
  TRAINING split (so quantization calibration never sees the evaluation images).
* ``eval.npz`` - ``{"input": float32 [M, 1, H, W], "labels": int64 [M]}``, the held-out,
  stratified 20% split that is never used for training or calibration.

The npz arrays are already preprocessed: ``pixels / 16`` -> bilinear upsample from 8x8 to
H x W -> ``(x - MEAN) / STD`` (constants below, also recorded in sample_models/README.md).
``digits_cnn`` additionally gets a small PNG folder for exercising an image loader.

Everything is seeded, so reruns on the same machine give the same weights (different
CPU thread counts can change float summation order, hence tiny weight differences).
"""

from __future__ import annotations

import argparse
import math
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
# Normalization applied after scaling raw digit pixels (0..16) to 0..1. Fixed constants
# (the mean/std of the training-split pixels, rounded) rather than recomputed per run, so
# the documented preprocessing never drifts from what the models were trained with.
MEAN = 0.3054
STD = 0.3761
EVAL_FRACTION = 0.2
N_CALIB = 128
#: How much larger ``digits_outlier``'s one hidden unit runs than it did in training (see ``plant_outlier``).
OUTLIER_SCALE = 500.0
PNGS_PER_DIGIT = 3
OPSET = 17

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO_ROOT / "sample_models"


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    """Raw digit images (float32 0..16, shape [n, 8, 8]) and their labels."""

    images: np.ndarray
    labels: np.ndarray


def load_splits() -> tuple[Split, Split]:
    """Stratified train / held-out eval split; the eval split is never trained or calibrated on."""
    digits = load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    tr_x, ev_x, tr_y, ev_y = train_test_split(
        images, labels, test_size=EVAL_FRACTION, stratify=labels, random_state=SEED
    )
    return Split(tr_x, tr_y), Split(ev_x, ev_y)


def upsample(raw: torch.Tensor, size: int) -> torch.Tensor:
    """[n, 8, 8] raw pixels (0..16) -> [n, 1, size, size] in 0..1, bilinear."""
    x = (raw / 16.0).unsqueeze(1)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def preprocess(raw: torch.Tensor, size: int) -> torch.Tensor:
    """The full model-input preprocessing: scale, upsample, normalize."""
    return (upsample(raw, size) - MEAN) / STD


def augment(raw: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random +-1 pixel shifts on the 8x8 grid; cheap and enough to curb overfitting on 1.4k images."""
    n = raw.shape[0]
    padded = F.pad(raw, (1, 1, 1, 1))
    dx = torch.randint(0, 3, (n,), generator=gen)
    dy = torch.randint(0, 3, (n,), generator=gen)
    out = torch.empty_like(raw)
    for i in range(n):
        out[i] = padded[i, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8]
    return out


# --------------------------------------------------------------------------- models


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DigitsCNN(nn.Module):
    """Plain VGG-ish CNN: the quick-to-run baseline model."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 16),
            nn.MaxPool2d(2),  # 16x16
            conv_bn_relu(16, 32),
            nn.MaxPool2d(2),  # 8x8
            conv_bn_relu(32, 64),
            nn.MaxPool2d(2),  # 4x4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 conv+BN projection shortcut when shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class DigitsResNet(nn.Module):
    """ResNet-style CNN sized so convs dominate (the INT8 and pruning showcase model)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), blocks: tuple[int, ...] = (1, 1, 1)) -> None:
        super().__init__()
        self.stem = conv_bn_relu(1, widths[0])
        layers: list[nn.Module] = []
        cin = widths[0]
        for stage, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(cin, width, stride))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class Attention(nn.Module):
    """Multi-head self-attention spelled out with Linear q/k/v + MatMul + Softmax.

    Written by hand (not nn.MultiheadAttention / scaled_dot_product_attention) so the ONNX
    graph holds plain MatMul and Softmax nodes the workbench can time and quantize.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class EncoderBlock(nn.Module):
    """Pre-norm transformer encoder block: LN-MHSA-residual, LN-MLP(GELU)-residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DigitsViT(nn.Module):
    """Small ViT: conv patch embedding, learned positions, mean-pooled tokens, linear head."""

    def __init__(
        self,
        size: int = 32,
        patch: int = 4,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 128,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, (size // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


# --------------------------------------------------------------------------- accounting


def count_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates per image for Conv2d, Linear and attention MatMuls (via hooks)."""
    macs = 0

    def conv_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(m, nn.Conv2d)
        kh, kw = m.kernel_size
        macs += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(m, nn.Linear)
        macs += out[0].numel() * m.in_features

    def attn_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        _, n, d = inp[0].shape
        macs += 2 * n * n * d  # q @ k^T and attn @ v

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, Attention):
            handles.append(m.register_forward_hook(attn_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    for h in handles:
        h.remove()
    return macs


# --------------------------------------------------------------------------- training


@dataclass
class Spec:
    """How one sample model is built and trained."""

    name: str
    size: int
    build: Callable[[], nn.Module]
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int = 64
    write_pngs: bool = False
    outlier: bool = False


SPECS = [
    Spec("digits_cnn", 32, DigitsCNN, epochs=20, lr=3e-3, weight_decay=1e-4, write_pngs=True),
    Spec("digits_resnet", 64, DigitsResNet, epochs=8, lr=3e-3, weight_decay=1e-4),
    Spec("digits_vit", 32, DigitsViT, epochs=60, lr=2e-3, weight_decay=5e-2),
    Spec("digits_outlier", 32, DigitsCNN, epochs=20, lr=3e-3, weight_decay=1e-4, outlier=True),
]


def plant_outlier(model: DigitsCNN, calib_x: torch.Tensor, scale: float = OUTLIER_SCALE) -> int:
    """Give the trained CNN one hidden unit that runs ``scale`` times larger, without changing what it computes.

    Large language models grow such outlier channels on their own; this small model gets one by
    construction so workshop 4 has a layer that really breaks under INT8. The first classifier
    layer's most active unit is multiplied by ``scale`` (weights and bias; ReLU commutes with a
    positive scale) and the next layer reads it divided by ``scale``, so FP32 outputs are the same
    to rounding. INT8 quantizes each activation tensor with one scale: the outlier stretches the grid
    of its tensor, the other 63 units fall between its steps, and the next layer gets mostly zeros.
    Returns the unit's index.
    """
    hidden, head = model.classifier[1], model.classifier[3]
    with torch.no_grad():
        activity = model.classifier[:3](model.features(calib_x)).mean(dim=0)
        unit = int(activity.argmax())
        hidden.weight[unit] *= scale
        hidden.bias[unit] *= scale
        head.weight[:, unit] /= scale
    return unit


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean()) * 100.0


def train(spec: Spec, train_split: Split) -> nn.Module:
    """AdamW + one-cycle cosine schedule with shift augmentation; eval data is never touched here."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = spec.build()
    raw = torch.from_numpy(train_split.images)
    labels = torch.from_numpy(train_split.labels)
    steps_per_epoch = math.ceil(len(raw) / spec.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch, pct_start=0.15
    )
    for epoch in range(spec.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(raw), generator=gen)
        total_loss = 0.0
        for i in range(0, len(raw), spec.batch_size):
            idx = perm[i : i + spec.batch_size]
            x = preprocess(augment(raw[idx], gen), spec.size)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
        print(
            f"  [{spec.name}] epoch {epoch + 1:3d}/{spec.epochs} loss {total_loss / len(raw):.4f} "
            f"({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    model.eval()
    return model


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, size: int, path: Path) -> None:
    """Legacy (TorchScript) exporter with TrainingMode.PRESERVE.

    PRESERVE skips the eval-mode peephole pass that folds BatchNorm into the preceding Conv;
    the model itself is in eval mode, so BN is exported as an inference BatchNormalization
    node. The workbench's pruning ranks channels by BN scale and re-estimates BN statistics,
    so the BN nodes must survive. The legacy exporter also yields a clean single-file graph.
    """
    model.eval()
    dummy = torch.zeros(2, 1, size, size)
    with warnings.catch_warnings():
        # The constant-folding warning targets models in training mode; ours is in eval mode.
        warnings.filterwarnings("ignore", message=".*constant folding.*", category=UserWarning)
        # The legacy exporter is chosen deliberately (see above); its deprecation notice is noise.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based.*", category=DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=True,
        )
    proto = untie_identity_initializers(onnx.load(str(path)))
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def untie_identity_initializers(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace ``Identity(initializer)`` nodes with their own copy of the initializer.

    The exporter deduplicates bit-identical parameters (e.g. two BN layers whose scales are
    still all ones) and re-creates them with Identity nodes. That ties layers together, which
    would make per-layer edits such as pruning one BN silently affect another.
    """
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return proto


def ort_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float | None:
    """Cross-check the exported file in ONNX Runtime when it is installed (optional here)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": x[i : i + 64]})[0] for i in range(0, len(x), 64)])
    return float((logits.argmax(1) == y).mean()) * 100.0


# --------------------------------------------------------------------------- PNG folder


def write_png_gray(path: Path, pixels: np.ndarray) -> None:
    """Minimal 8-bit grayscale PNG writer so the script needs no imaging library."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].astype(np.uint8).tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)


def write_pngs(out_dir: Path, eval_split: Split, size: int) -> None:
    """First PNGS_PER_DIGIT eval images of each digit, upsampled to size, 0..1 scaled to 0..255."""
    root = out_dir / "images"
    up = upsample(torch.from_numpy(eval_split.images), size).squeeze(1).numpy()
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(eval_split.labels == digit)[:PNGS_PER_DIGIT]):
            write_png_gray(root / str(digit) / f"{i}.png", np.clip(np.round(up[idx] * 255.0), 0, 255))


# --------------------------------------------------------------------------- main


def build_sample(spec: Spec, train_split: Split, eval_split: Split) -> dict[str, float | int | str]:
    out_dir = OUT_ROOT / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = train(spec, train_split)
    train_s = time.perf_counter() - t0

    eval_x = preprocess(torch.from_numpy(eval_split.images), spec.size)
    eval_y = torch.from_numpy(eval_split.labels)
    torch_acc = evaluate(model, eval_x, eval_y)

    # Calibration images: a fixed, class-mixed subset of the TRAINING split (unaugmented).
    rng = np.random.default_rng(SEED)
    calib_idx = np.sort(rng.choice(len(train_split.images), size=N_CALIB, replace=False))
    calib_x = preprocess(torch.from_numpy(train_split.images[calib_idx]), spec.size)

    np.savez_compressed(out_dir / "calib.npz", input=calib_x.numpy().astype(np.float32))
    np.savez_compressed(
        out_dir / "eval.npz",
        input=eval_x.numpy().astype(np.float32),
        labels=eval_split.labels.astype(np.int64),
    )
    if spec.outlier:
        assert isinstance(model, DigitsCNN)
        unit = plant_outlier(model, calib_x)
        planted_acc = evaluate(model, eval_x, eval_y)
        print(f"  [{spec.name}] hidden unit {unit} now runs {OUTLIER_SCALE:g}x larger; "
              f"eval accuracy {torch_acc:.2f}% before, {planted_acc:.2f}% after (same function)", flush=True)
    model_path = out_dir / "model.onnx"
    export_onnx(model, spec.size, model_path)
    ort_acc = ort_accuracy(model_path, eval_x.numpy(), eval_split.labels)
    if spec.write_pngs:
        write_pngs(out_dir, eval_split, spec.size)

    bn_nodes = sum(n.op_type == "BatchNormalization" for n in onnx.load(str(model_path)).graph.node)
    stats: dict[str, float | int | str] = {
        "name": spec.name,
        "input": f"[batch, 1, {spec.size}, {spec.size}]",
        "torch_acc": torch_acc,
        "ort_acc": ort_acc if ort_acc is not None else float("nan"),
        "gflop": 2 * count_macs(model, spec.size) / 1e9,
        "params": sum(p.numel() for p in model.parameters()),
        "onnx_kb": model_path.stat().st_size / 1024,
        "bn_nodes": bn_nodes,
        "train_s": train_s,
    }
    print(
        f"{spec.name}: eval acc {torch_acc:.2f}% (torch) / {stats['ort_acc']:.2f}% (ORT), "
        f"{stats['gflop']:.3f} GFLOP/image, {stats['params']:,} params, "
        f"model.onnx {stats['onnx_kb']:.0f} KiB, {bn_nodes} BatchNormalization nodes, "
        f"trained in {train_s:.0f}s",
        flush=True,
    )
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SPECS], help="build just these models")
    args = parser.parse_args()

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    train_split, eval_split = load_splits()
    print(f"train {len(train_split.labels)} / eval {len(eval_split.labels)} images; MEAN={MEAN} STD={STD}")
    results = [build_sample(s, train_split, eval_split) for s in SPECS if not args.only or s.name in args.only]
    print("\nsummary")
    for r in results:
        print(
            f"  {r['name']:14s} {r['input']:22s} acc {r['torch_acc']:.2f}%  {r['gflop']:.3f} GFLOP/img  "
            f"{r['params']:>9,} params  {r['onnx_kb']:.0f} KiB"
        )


if __name__ == "__main__":
    main()
