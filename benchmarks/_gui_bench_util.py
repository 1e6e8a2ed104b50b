"""Helpers of benchmarks/bench_gui.py: test data, models, waiting for Qt signals, RSS, the result table.

Qt is imported lazily (inside functions) so the browse child and the data preparation can set
QT_QPA_PLATFORM before PySide6 is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT / "tests"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)


# ------------------------------------------------------------------------------------------ numbers


def ms(seconds: float) -> float:
    return seconds * 1000.0


def summary(values: Sequence[float]) -> dict[str, float]:
    """min / median / p95 / max / mean of a list of numbers (NaN everywhere if empty)."""
    if not values:
        nan = float("nan")
        return {"n": 0, "min": nan, "median": nan, "p95": nan, "max": nan, "mean": nan}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": p95,
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def fmt_ms(stats: dict[str, float]) -> str:
    return f"median {stats['median']:.1f} ms (min {stats['min']:.1f}, p95 {stats['p95']:.1f}, n={stats['n']})"


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM / VmSize of this process in bytes (Linux /proc)."""
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(rest.split()[0]) * 1024
    return out


class ThreadCpu:
    """CPU seconds used by this process's threads while it runs, split by nice value (Linux /proc; empty
    elsewhere). Sampled every 250 ms so threads that end before `stop()` (the evaluation pipeline's) count.
    SegLens runs decoding and counting at nice 19 and inference at nice 0: the split shows what the
    models took and what the work around them took."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float]] = {}
        self._start = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _read() -> dict[int, tuple[int, float]]:
        out: dict[int, tuple[int, float]] = {}
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(task.name)] = (int(fields[16]), (int(fields[11]) + int(fields[12])) / tick)
        return out

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self._last.update(self._read())

    def stop(self) -> dict[int, float]:
        """{nice value: CPU seconds} since construction."""
        self._stop.set()
        self._thread.join()
        self._last.update(self._read())
        by_nice: dict[int, float] = {}
        for tid, (nice, seconds) in self._last.items():
            used = seconds - self._start.get(tid, (nice, 0.0))[1]
            by_nice[nice] = by_nice.get(nice, 0.0) + used
        return by_nice


def mb(value: float) -> float:
    return value / (1024 * 1024)


@dataclass
class Row:
    """One line of the final table."""

    metric: str
    measured: str
    goal: str
    verdict: str  # "PASS", "FAIL" or "info"
    note: str = ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(rows: Sequence[Row]) -> None:
    headers = ("metric", "measured", "goal", "verdict")
    cells = [(r.metric, r.measured, r.goal, r.verdict) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    notes = [r for r in rows if r.note]
    if notes:
        print()
        for r in notes:
            print(f"* {r.metric}: {r.note}")


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


# ------------------------------------------------------------------------------------------ data


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' -> (1024, 2048) as (height, width)."""
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def synthetic_dataset(root: Path, count: int, size: tuple[int, int], seed: int) -> Path:
    """Generate (or reuse, when a previous run left it complete) a synthetic Cityscapes-layout set."""
    from app.core.scenes.generator import generate

    marker = root / ".bench-complete"
    spec = json.dumps({"count": count, "size": list(size), "seed": seed})
    if marker.exists() and marker.read_text() == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    generate(root, count, size=size, seed=seed, split="val", workers=2)
    marker.write_text(spec)
    return root


def linked_dataset(root: Path, source: Path, count: int) -> Path:
    """`count` frames in the Cityscapes layout, hard links (copies where links fail) of the few real
    synthetic frames under `source`. Names follow <city>_<seq>_<frame>_leftImg8bit.png + gtFine files."""
    marker = root / ".bench-complete"
    spec = json.dumps({"count": count, "source": str(source)})
    if marker.exists() and marker.read_text() == spec:
        return root
    if root.exists():
        shutil.rmtree(root)
    frames = sorted(source.glob("leftImg8bit/val/*/*_leftImg8bit.png"))
    if not frames:
        raise RuntimeError(f"no frames under {source}")
    cities = ("aachen", "bochum", "cologne", "dresden", "erfurt")
    per_city = -(-count // len(cities))
    for i in range(count):
        src = frames[i % len(frames)]
        src_city = src.parent.name
        src_frame = src.name[: -len("_leftImg8bit.png")]
        city = cities[i // per_city]
        frame = f"{city}_{i % per_city:06d}_000019"
        img_dir = root / "leftImg8bit" / "val" / city
        gt_dir = root / "gtFine" / "val" / city
        if i % per_city == 0:
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
        src_gt = source / "gtFine" / "val" / src_city
        pairs = [
            (src, img_dir / f"{frame}_leftImg8bit.png"),
            (src_gt / f"{src_frame}_gtFine_labelIds.png", gt_dir / f"{frame}_gtFine_labelIds.png"),
            (src_gt / f"{src_frame}_gtFine_instanceIds.png", gt_dir / f"{frame}_gtFine_instanceIds.png"),
        ]
        for a, b in pairs:
            try:
                os.link(a, b)
            except OSError:
                shutil.copyfile(a, b)
    marker.write_text(spec)
    return root


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden: int
    depth: int
    downsample: int
    input_size: tuple[int, int]
    seed: int


def build_model(folder: Path, spec: ModelSpec) -> Path:
    """A real ONNX segmenter (random convs, 19 trainId classes, logits) from tests/modelzoo.py."""
    from modelzoo import make_onnx_segmenter

    from app.core.domain.labels import TRAINIDS

    path = folder / f"{spec.name}.onnx"
    if not path.exists():
        make_onnx_segmenter(
            path,
            TRAINIDS.names,
            input_size=spec.input_size,
            hidden=spec.hidden,
            depth=spec.depth,
            downsample=spec.downsample,
            seed=spec.seed,
        )
    return path


# ------------------------------------------------------------------------------------------ Qt waiting


def wait_signal(
    signal: Any, trigger: Callable[[], object] | None = None, timeout_s: float = 60.0
) -> tuple[float, tuple[Any, ...] | None]:
    """Run `trigger()` and the event loop until `signal` is emitted; (seconds from trigger to emission,
    the signal's arguments), or (NaN, None) on timeout. An event loop, not a processEvents spin, so the
    GUI thread sleeps while workers use the two cores."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: dict[str, Any] = {}

    def on_signal(*args: Any) -> None:
        if "t" not in got:
            got["t"] = time.perf_counter()
            got["args"] = args
        loop.quit()

    signal.connect(on_signal)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    start = time.perf_counter()
    try:
        if trigger is not None:
            trigger()
        if "t" not in got:
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(on_signal)
    if "t" not in got:
        return float("nan"), None
    return got["t"] - start, got["args"]


def pump(seconds: float) -> None:
    """Run the event loop for `seconds` (the GUI thread sleeps between events)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(max(0, int(seconds * 1000)), loop.quit)
    loop.exec()


def isolated_env(workdir: Path, onscreen: bool) -> dict[str, str]:
    """Environment for child processes: settings and caches inside the work dir, offscreen Qt."""
    env = dict(os.environ)
    env["SEGLENS_CONFIG"] = str(workdir / "config")
    env["SEGLENS_CACHE"] = str(workdir / "cache")
    env["XDG_CONFIG_HOME"] = str(workdir / "xdg-config")  # QSettings writes here, not in ~/.config
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if not onscreen:
        env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def isolate_this_process(workdir: Path, onscreen: bool) -> None:
    """Same as isolated_env, for the running process (before QApplication exists)."""
    os.environ.update({k: v for k, v in isolated_env(workdir, onscreen).items() if k not in ("PYTHONPATH",)})


# ------------------------------------------------------------------------------------------ story models


def story_models(folder: Path) -> list[Path]:
    """The two architectures the team compares, at the sizes it runs them, exported to ONNX FP32 with the
    app's own exporters (random weights, cached in `folder`): the Keras VGG16-UNet baseline (8 categories,
    256x512 input) and a SegFormer-B0 (19 trainIds, 512x1024 input, the Cityscapes fine-tuning size).
    Needs the keras and hf extras."""
    from app.core.scenes.generator import render_scene
    from app.inference.tools.export import export_model

    folder.mkdir(parents=True, exist_ok=True)
    samples = [render_scene(i, size=(512, 1024), seed=7, split="bench").image for i in range(2)]
    unet, segformer = folder / "vgg16-unet-256x512.onnx", folder / "segformer-b0-512x1024.onnx"
    if not unet.exists():
        import keras

        from app.training.keras_trainer import build_vgg16_unet

        keras.utils.set_random_seed(5)
        model = build_vgg16_unet(keras, (256, 512), 8, 1.0, None)
        source = folder / "vgg16-unet.keras"
        model.save(source)
        (folder / "vgg16-unet.json").write_text(
            json.dumps({"name": "vgg16-unet", "kind": "keras", "path": source.name, "scheme": "categories"})
        )
        export_model(source, unet, samples=samples)
    if not segformer.exists():
        import torch
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        from app.core.domain.labels import TRAINIDS
        from app.training.torch_trainer import save_processor

        torch.manual_seed(6)
        names = dict(enumerate(TRAINIDS.names))
        config = SegformerConfig(
            num_labels=len(names), id2label=names, label2id={v: k for k, v in names.items()}
        )
        source = folder / "segformer-b0"
        SegformerForSemanticSegmentation(config).eval().save_pretrained(source)
        save_processor(source, (512, 1024))
        export_model(source, segformer, samples=samples)
    return [unet, segformer]
