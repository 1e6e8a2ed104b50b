"""The model card of a packaged demo model (markdown), from package.py's measurements."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

from app.core.io.fileutil import atomic_write_text

_MB = 1024 * 1024
_FLAGS = (
    "arch",
    "width",
    "scheme",
    "size",
    "epochs",
    "batch",
    "lr",
    "patience",
    "seed",
    "threads",
    "workers",
    "max_minutes",
)


class SpecLike(Protocol):
    """package.Spec's fields the card reads."""

    @property
    def name(self) -> str: ...
    @property
    def run(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def command(self) -> str: ...


def command(config: dict[str, Any], run: str) -> str:
    """The `seglens train` command that produced the run, with the work folder as $WORK."""
    parts = ["seglens train --dataset $WORK/data"]
    for key in _FLAGS:
        value = config.get(key)
        if value is None or (key == "width" and config.get("arch") != "vgg16-unet"):
            continue
        if key == "size":
            value = f"{value[0]}x{value[1]}"
        parts.append(
            f"--{key.replace('_', '-')} {value:g}"
            if isinstance(value, float)
            else f"--{key.replace('_', '-')} {value}"
        )
    parts.append(f"--out $WORK/{run}")
    return " \\\n    ".join(parts)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.1f}"


def _iou_table(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for key, block in metrics.items():
        lines += [f"Per-class IoU ({key}, %):", "", "| class | IoU |", "|---|---|"]
        lines += [f"| {name} | {_pct(v)} |" for name, v in block["iou"].items()]
        lines.append("")
    return lines


def _training(log: dict[str, Any]) -> list[str]:
    cfg = log["config"]
    rows = log["epochs"]
    minutes = log["train_time_s"] / 60
    return [
        f"- Epochs run: {len(rows)} of {cfg['epochs']} planned, {rows[-1]['step']} optimizer steps "
        f"({log['stopped']}); best epoch "
        f"{log['best_epoch']} (validation mIoU {_pct(log['best_val_miou'])} %, the checkpoint shipped).",
        f"- Training time: {minutes:.1f} min wall on this shared 2-core machine (1 compute thread, the other "
        "training and other people's jobs running at the same time), validation included. With "
        "--max-minutes the LR schedule is compressed to reach 0 at the time limit (see Epochs run).",
        f"- Optimizer: AdamW (weight decay {cfg['weight_decay']:g}, none on biases/norms), peak LR "
        f"{cfg['lr']:g}, linear warmup then polynomial decay (power 0.9), gradient norm clipped at "
        f"{cfg['clip_norm']:g}; batch {cfg['batch']}; precision {cfg['precision']} (bf16 autocast here: "
        "the CPU has AVX512-BF16, measured 2x faster than fp32).",
        "- Augmentation: horizontal flip, brightness/contrast, shift-scale-rotate (label NEAREST, "
        "uncovered pixels ignored), Gaussian noise, Gaussian blur (app/training/augment.py).",
        "- Loss: cross-entropy, ignore index 255 (pixels not evaluated in the chosen scheme).",
    ]


def write_card(
    path: Path,
    spec: SpecLike,
    result: dict[str, Any],
    val: dict[str, Any],
    train: dict[str, Any],
    tolerance: float,
    comparison: str,
) -> None:
    """Write the card for one packaged model."""
    log = result["train"]
    cfg = log["config"]
    metrics = result["metrics"]
    int8 = result["int8"]
    lat = result["predict_ms"]
    inf = result["inference_ms"]
    init = "random initialisation (from config): no pretrained weights are available offline"
    headline = ", ".join(f"{k} mIoU {_pct(v['miou'])} %" for k, v in metrics.items())
    lines = [
        f"# {spec.title}",
        "",
        f"File: `{result['file']}` ({result['variant']}, {result['bytes'] / _MB:.1f} MB), manifest "
        f"`{Path(result['file']).stem}.json`. A demo model trained on synthetic street scenes only: it "
        "shows what the app does; it is not a Cityscapes model.",
        "",
        f"**Validation (synthetic demo set, {val['count']} images at {val['size'][0]}x{val['size'][1]}):** "
        f"{headline}. {comparison}",
        "",
        "## Data",
        "",
        "- Generator: `app.core.scenes.generator` (procedural scenes in the Cityscapes layout, labelIds GT).",
        f"- Training: seed {train['seed']}, split `{train['split']}`, {train['count']} images rendered at "
        f"{train['size'][0]}x{train['size'][1]}, resized to {cfg['size'][0]}x{cfg['size'][1]} for training "
        "(image bilinear, label nearest).",
        f"- Validation: seed {val['seed']}, split `{val['split']}`, {val['count']} images at "
        f"{val['size'][0]}x{val['size'][1]}: the set the app generates as its demo dataset. The split is "
        "part of the scene seed, so training and validation never share a scene. The validation set also "
        "chose the best epoch (early stopping); there is no third split, so the numbers are slightly "
        "optimistic.",
        "",
        "## Training",
        "",
        f"- Architecture: {cfg['arch']}"
        + (f" (decoder width {cfg['width']:g})" if spec.kind == "keras" else "")
        + f", {init}.",
        f"- Predicts: {spec.scheme} (labelIds mapped with app.core.domain.labels; 255 = ignore).",
        *_training(log),
        "",
        "Command (what `models/demo/retrain.sh " + spec.command + "` runs):",
        "",
        "```",
        command(cfg, spec.run),
        "```",
        "",
        "Everything (data, both trainings, export, INT8 search, cards) again: "
        "`WORK=/tmp/seglens-demo PYTHON=python models/demo/retrain.sh`.",
        "",
        "## Metrics",
        "",
        *_iou_table(metrics),
        "## Export and size",
        "",
        f"- ONNX FP32 export fidelity (3 validation images): {result['fidelity'].replace(chr(10), '; ')}",
        f"- FP32 file {result['fp32_bytes'] / _MB:.1f} MB; shipped file {result['bytes'] / _MB:.1f} MB. "
        "Only the faster of FP32/INT8 is shipped: both FP32 files and both INT8 files together would "
        "exceed the 80 MB budget for models/ (`models/demo/retrain.sh` rebuilds the FP32 exports).",
        f"- INT8 (`app.tools.quantize_search.search`, budget 1 mIoU point): {int8['message']}.",
        "",
        "```",
        int8["table"],
        "```",
        "",
        "## Latency on this machine",
        "",
        f"Full `predict()` of a 512x1024 image (resize, inference, upsample + argmax) with onnxruntime on "
        f"the shared 2-core EPYC: median {lat['p50']:.0f} ms (p95 {lat['p95']:.0f} ms); inference alone "
        f"median {inf['p50']:.0f} ms.",
        "",
        "## Checked by",
        "",
        f"tests/test_demo_models.py regenerates the validation set and requires the mIoU above within "
        f"±{tolerance * 100:g} points (expected.json holds the numbers).",
        "",
    ]
    atomic_write_text(path, "\n".join(lines))
