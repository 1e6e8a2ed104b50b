"""Benchmark models: latency percentiles, throughput, file size, memory and (with a dataset) accuracy.

What is measured, per model, in one process and one after the other (never concurrently):

- predict_ms: the full Segmenter.predict() (preprocess + inference + postprocess to the image's size) of
  `runs` calls after `warmup` untimed ones, one image at a time; inference_ms: the inference stage alone as
  the backend reports it (Prediction.timings.inference_ms).
- throughput: images per second of that sequential single-stream loop (runs / its wall time); a server
  running several streams at once gets more from a multi-core CPU.
- peak memory: the growth of the process's resident set (Linux VmHWM in /proc/self/status) while loading
  the model and running the timed predict() calls (not the accuracy pass), over its resident size just
  before. The peak is reset per model through
  /proc/self/clear_refs when the kernel allows it; where it does not (or without /proc) the number is the
  process's whole peak and `peak_is_process_wide` says so. It covers native memory (onnxruntime arenas,
  weights), which tracemalloc cannot see.
- with a dataset: IoU / precision / recall / F1 per class and mIoU from the evaluation service (the same
  numbers as `seglens evaluate`), on the first `limit` images, every model on ONE scheme (the finest that
  all of them can be evaluated on), so the column compares like with like.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import InputError, SegLensError
from app.core.domain.metrics import Scores
from app.core.io.datasets import Dataset, open_dataset
from app.core.io.fileutil import check_output_file
from app.core.runtime.argtypes import parse_size, positive_int
from app.inference.base import Segmenter

DEFAULT_IMAGE_SIZE = (512, 1024)
_MB = 1024 * 1024


@dataclass(frozen=True)
class Percentiles:
    """Latency summary in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float

    @staticmethod
    def of(values_ms: Sequence[float]) -> Percentiles:
        """P50/P95/P99 (linear interpolation, numpy's default) and the mean of `values_ms`."""
        if not values_ms:
            raise ValueError("no timings to summarize")
        p50, p95, p99 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 95, 99])
        return Percentiles(float(p50), float(p95), float(p99), float(statistics.fmean(values_ms)))

    def to_dict(self) -> dict[str, float]:
        """Rounded to microseconds for JSON."""
        return {k: round(v, 3) for k, v in vars(self).items()}


@dataclass(frozen=True)
class BenchmarkResult:
    """One model's measurements (see the module docstring for what each number means)."""

    name: str
    source: str
    backend: str
    file_bytes: int | None
    image_size: tuple[int, int]  # (height, width) of the images given to predict()
    runs: int
    load_ms: float | None  # None when an already loaded segmenter was given
    predict_ms: Percentiles
    inference_ms: Percentiles
    throughput: float  # images/s, sequential single stream
    peak_rss_bytes: int | None  # None where /proc/self/status is unavailable
    peak_is_process_wide: bool
    scores: Scores | None = None
    scheme: str | None = None
    images_evaluated: int = 0

    @property
    def miou(self) -> float | None:
        """Mean IoU (0..1) on the dataset, or None without one."""
        return None if self.scores is None else self.scores.miou

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN written as None)."""
        return {
            "name": self.name,
            "source": self.source,
            "backend": self.backend,
            "file_bytes": self.file_bytes,
            "image_size": list(self.image_size),
            "runs": self.runs,
            "load_ms": None if self.load_ms is None else round(self.load_ms, 3),
            "predict_ms": self.predict_ms.to_dict(),
            "inference_ms": self.inference_ms.to_dict(),
            "throughput_images_per_s": round(self.throughput, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_is_process_wide": self.peak_is_process_wide,
            "scheme": self.scheme,
            "images_evaluated": self.images_evaluated,
            "metrics": None if self.scores is None else self.scores.to_dict(),
        }


def benchmark_model(
    model: str | Path | Segmenter,
    *,
    size: tuple[int, int] | None = None,
    runs: int = 30,
    warmup: int = 3,
    dataset: Dataset | None = None,
    limit: int | None = None,
) -> BenchmarkResult:
    """Measure one model (a path opened through the registry, or a loaded Segmenter, left open).

    Latency images: the dataset's first few (as they are, or resized to `size` = (height, width)), else
    synthetic street scenes of `size`, else of the model's fixed input size, else 512x1024. With a
    dataset, accuracy is computed on its first `limit` images (all by default).
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    # Decoded before the memory baseline: the images are the caller's, not the model's.
    count = min(runs, 4)
    images = _dataset_images(dataset, size, count) if dataset is not None and dataset.refs else None
    if not isinstance(model, Segmenter):
        _import_backend(Path(model))
    reset = _reset_peak()
    baseline = _status_bytes("VmRSS")
    owned = not isinstance(model, Segmenter)
    load_ms: float | None = None
    if isinstance(model, Segmenter):
        segmenter = model
    else:
        from app.inference.registry import load_model

        start = time.perf_counter()
        segmenter = load_model(model)
        load_ms = (time.perf_counter() - start) * 1e3
    try:
        images = images or _synthetic_images(segmenter, size, count)
        predict_ms, inference_ms, wall_s = _time_predict(segmenter, images, runs, warmup)
        peak = _status_bytes("VmHWM")
        accuracy = shared_accuracy([segmenter], dataset, limit)[0] if dataset else None
    finally:
        if owned:
            segmenter.close()
    info = segmenter.info
    return BenchmarkResult(
        name=info.name,
        source=info.source,
        backend=info.backend,
        file_bytes=info.file_size,
        image_size=(int(images[0].shape[0]), int(images[0].shape[1])),
        runs=runs,
        load_ms=load_ms,
        predict_ms=Percentiles.of(predict_ms),
        inference_ms=Percentiles.of(inference_ms),
        throughput=runs / wall_s if wall_s > 0 else math.inf,
        peak_rss_bytes=None if peak is None or baseline is None else max(0, peak - baseline),
        peak_is_process_wide=not reset,
        scores=accuracy.scores if accuracy else None,
        scheme=accuracy.scheme if accuracy else None,
        images_evaluated=accuracy.images if accuracy else 0,
    )


def _import_backend(path: Path) -> None:
    """Import the backend module first, so that the first model measured is not charged for the import
    of its framework (onnxruntime: tens of MB) in load time and peak memory."""
    import importlib

    from app.inference.registry import backend_for_suffix

    backend = backend_for_suffix(path.suffix)
    if backend is not None:
        importlib.import_module(backend.loader.partition(":")[0])


def _time_predict(
    segmenter: Segmenter, images: Sequence[np.ndarray], runs: int, warmup: int
) -> tuple[list[float], list[float], float]:
    for i in range(warmup):
        segmenter.predict(images[i % len(images)])
    total: list[float] = []
    inference: list[float] = []
    start = time.perf_counter()
    for i in range(runs):
        begin = time.perf_counter()
        prediction = segmenter.predict(images[i % len(images)])
        total.append((time.perf_counter() - begin) * 1e3)
        inference.append(prediction.timings.inference_ms)
    return total, inference, time.perf_counter() - start


def _dataset_images(dataset: Dataset, size: tuple[int, int] | None, count: int) -> list[np.ndarray]:
    """The dataset's first images, resized to `size` when one is given."""
    images = [dataset.load(ref).image for ref in dataset.refs[:count]]
    return images if size is None else [_resize_rgb(image, size) for image in images]


def _synthetic_images(segmenter: Segmenter, size: tuple[int, int] | None, count: int) -> list[np.ndarray]:
    """Rendered street scenes at `size`, else the model's fixed input size, else 512x1024."""
    from app.core.scenes.generator import render_scene

    spec = segmenter.info.input
    if size is None and spec.resize == "fixed" and spec.height is not None and spec.width is not None:
        size = (spec.height, spec.width)
    height, width = size or DEFAULT_IMAGE_SIZE
    # Scenes need at least 16x16; smaller requested sizes are rendered bigger and scaled down.
    scenes = [render_scene(i, (max(16, height), max(16, width))).image for i in range(count)]
    return [_resize_rgb(image, (height, width)) for image in scenes]


def _resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    from PIL import Image

    resized = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)


@dataclass(frozen=True)
class Accuracy:
    """One model's scores in a shared evaluation (None without an image with ground truth)."""

    scores: Scores | None
    scheme: str
    images: int


def shared_accuracy(
    segmenters: Sequence[Segmenter], dataset: Dataset, limit: int | None, scheme: str | None = None
) -> list[Accuracy]:
    """Scores of every model from ONE evaluation run on one scheme (images decoded once)."""
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor, choose_scheme

    predictors = [SegmenterPredictor(s) for s in segmenters]
    chosen = choose_scheme(scheme, predictors, dataset.gt_scheme)
    refs = dataset.refs[:limit] if limit else dataset.refs
    run = Evaluator(dataset, predictors, chosen).run(refs)
    return [
        Accuracy(m.scores if m.images_evaluated else None, chosen.key, m.images_evaluated) for m in run.models
    ]


def benchmark_models(
    models: Sequence[str | Path | Segmenter],
    *,
    size: tuple[int, int] | None = None,
    runs: int = 30,
    warmup: int = 3,
    dataset: Dataset | None = None,
    limit: int | None = None,
    scheme: str | None = None,
) -> list[BenchmarkResult]:
    """Latency and memory of each model one after the other, then accuracy of all of them in one shared
    evaluation on one scheme. Models given as paths are opened (and closed) here; loaded ones stay open."""
    results = [benchmark_model(m, size=size, runs=runs, warmup=warmup) for m in models]
    if dataset is None or not dataset.refs:
        return results
    from app.inference.registry import load_model

    opened = [m if isinstance(m, Segmenter) else load_model(m) for m in models]
    try:
        accuracies = shared_accuracy(opened, dataset, limit, scheme)
    finally:
        for model, segmenter in zip(models, opened, strict=True):
            if not isinstance(model, Segmenter):
                segmenter.close()
    return [
        dataclasses.replace(r, scores=a.scores, scheme=a.scheme, images_evaluated=a.images)
        for r, a in zip(results, accuracies, strict=True)
    ]


def compare_latency(
    paths: Sequence[str | Path], tensors: Sequence[np.ndarray], *, runs: int, warmup: int
) -> list[float]:
    """Median bare session.run() time (ms) of each ONNX model on the same input tensors.

    After `warmup` untimed runs each, the models take turns in short blocks (one untimed run, then up to 3
    timed ones) so that load from other processes and clock changes hit all of them alike; they never run
    at once, because a session's threads spin for a while after run() and would slow the other down.
    Sessions use default options, like the ONNX backend.
    """
    import onnxruntime as ort

    if not tensors:
        raise ValueError("no tensors to time")
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    feeds = [[{s.get_inputs()[0].name: t} for t in tensors] for s in sessions]
    for session, inputs in zip(sessions, feeds, strict=True):
        for i in range(warmup):
            session.run(None, inputs[i % len(inputs)])
    times: list[list[float]] = [[] for _ in sessions]
    done = 0
    while done < max(1, runs):
        block = min(3, max(1, runs) - done)
        for session, inputs, spent in zip(sessions, feeds, times, strict=True):
            session.run(None, inputs[done % len(inputs)])  # re-warm after the other model's turn
            for i in range(done, done + block):
                start = time.perf_counter()
                session.run(None, inputs[i % len(inputs)])
                spent.append((time.perf_counter() - start) * 1e3)
        done += block
    return [statistics.median(spent) for spent in times]


# --- peak memory (Linux /proc; None elsewhere) ------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM) in bytes, or None where there is no /proc."""
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). False when not possible."""
    try:
        with Path("/proc/self/clear_refs").open("w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


# --- reporting ----------------------------------------------------------------------------------------


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """The plain-text table: model, size MB, P50/P95/P99 ms, img/s, peak MB, mIoU (%)."""
    header = (
        f"{'model':<28}{'size MB':>9}{'P50 ms':>9}{'P95 ms':>9}{'P99 ms':>9}{'img/s':>8}"
        f"{'peak MB':>9}{'mIoU':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        size = "-" if r.file_bytes is None else f"{r.file_bytes / _MB:.2f}"
        peak = "-" if r.peak_rss_bytes is None else f"{r.peak_rss_bytes / _MB:.0f}"
        miou = r.miou
        miou_text = "-" if miou is None or math.isnan(miou) else f"{miou * 100:.2f}"
        p = r.predict_ms
        lines.append(
            f"{r.name[:27]:<28}{size:>9}{p.p50:>9.1f}{p.p95:>9.1f}{p.p99:>9.1f}{r.throughput:>8.1f}"
            f"{peak:>9}{miou_text:>8}"
        )
    notes = {r.image_size for r in results}
    sizes = ", ".join(f"{h}x{w}" for h, w in sorted(notes))
    lines.append(f"images {sizes}; latency of the full predict(); peak = RSS growth while loading + running")
    schemes = {(r.scheme, r.images_evaluated) for r in results if r.scheme is not None}
    for scheme, images in sorted(schemes, key=str):
        lines.append(f"mIoU on scheme {scheme}, original labels, {images} images with ground truth")
    if any(r.peak_is_process_wide for r in results):
        lines.append("peak MB is the process-wide peak (the per-model reset is not available here)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`seglens benchmark MODEL... [--dataset DIR] [--size HxW] [--runs 30] [--json OUT]`. Exit code."""
    parser = argparse.ArgumentParser(
        prog="seglens benchmark",
        description="Latency percentiles, throughput, size, peak memory and (with --dataset) accuracy.",
    )
    parser.add_argument("models", nargs="+", help="model files or manifests")
    parser.add_argument("--dataset", help="dataset folder: latency on its images, plus accuracy")
    parser.add_argument("--split", help="Cityscapes split (default: val)")
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N images")
    parser.add_argument("--size", type=parse_size, help="image size HxW fed to predict()")
    parser.add_argument("--runs", type=int, default=30, help="timed predict() calls (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    try:
        if args.json:
            check_output_file(args.json, "JSON file")  # before minutes of timing, not after
        dataset = open_dataset(args.dataset, split=args.split) if args.dataset else None
        if dataset is not None and not dataset.refs:
            raise InputError(dataset.root, "the dataset holds no images")
        print(f"benchmarking {', '.join(args.models)} ...", file=sys.stderr)
        results = benchmark_models(
            args.models, size=args.size, runs=args.runs, warmup=args.warmup, dataset=dataset, limit=args.limit
        )
    except SegLensError as exc:
        print(f"seglens benchmark: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    if args.json:
        from app.core.io.fileutil import atomic_write_text

        document = {"models": [r.to_dict() for r in results]}
        atomic_write_text(args.json, json.dumps(document, indent=2, allow_nan=False))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
