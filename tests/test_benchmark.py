"""Model benchmarks: percentiles, throughput, sizes, memory and accuracy equal to the Evaluator's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from modelzoo import make_onnx_segmenter

from app.core.datasets import open_dataset
from app.core.labels import TRAINIDS, eval_scheme_by_key
from app.core.metrics import compute_scores
from app.core.synthetic import generate
from app.inference.benchmark import (
    BenchmarkResult,
    Percentiles,
    benchmark_model,
    compare_latency,
    format_table,
    main,
)
from app.inference.evaluate import Evaluator, SegmenterPredictor, choose_scheme
from app.inference.onnx_backend import OnnxSegmenter
from app.inference.registry import load_model

SIZE = (64, 128)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    generate(root, 6, SIZE, seed=5, split="val")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "bench_a.onnx"
    return make_onnx_segmenter(path, TRAINIDS.names, input_size=SIZE, hidden=16, depth=2, seed=1)


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "bench_dyn.onnx"
    return make_onnx_segmenter(path, TRAINIDS.names, input_size=None, hidden=8, seed=2)


def test_percentiles_of_known_values() -> None:
    p = Percentiles.of([float(v) for v in range(1, 101)])
    assert (p.p50, p.p95, p.p99, p.mean) == pytest.approx((50.5, 95.05, 99.01, 50.5))
    with pytest.raises(ValueError):
        Percentiles.of([])


def test_benchmark_with_dataset_matches_the_evaluator(model, data) -> None:
    dataset = open_dataset(data, split="val")
    result = benchmark_model(model, runs=12, warmup=2, dataset=dataset, limit=5)

    for stats in (result.predict_ms, result.inference_ms):
        assert 0 < stats.p50 <= stats.p95 <= stats.p99
    # Inference is one stage of each predict() call, so every order statistic is at most predict's.
    assert result.inference_ms.p50 <= result.predict_ms.p50
    assert result.inference_ms.p99 <= result.predict_ms.p99
    # The loop's wall time includes every call: throughput cannot exceed 1000 / mean latency.
    assert 0 < result.throughput <= 1000 / result.predict_ms.mean * (1 + 1e-9)
    assert result.file_bytes == model.stat().st_size and result.runs == 12
    assert result.image_size == SIZE and result.load_ms is not None and result.load_ms > 0
    assert result.peak_rss_bytes is not None and result.peak_rss_bytes >= 0

    predictor = SegmenterPredictor(load_model(model))
    scheme = choose_scheme(None, [predictor], dataset.gt_scheme)
    expected = Evaluator(dataset, [predictor], scheme).run(dataset.refs[:5]).models[0].scores()
    predictor.segmenter.close()
    assert result.scores is not None and result.images_evaluated == 5 and result.scheme == scheme.key
    assert result.miou == expected.miou
    for name in ("iou", "precision", "recall", "f1"):
        np.testing.assert_array_equal(getattr(result.scores, name), getattr(expected, name))


def test_benchmark_without_dataset_uses_requested_size(dynamic_model) -> None:
    result = benchmark_model(dynamic_model, size=(48, 80), runs=4, warmup=1)
    assert result.image_size == (48, 80)
    assert result.scores is None and result.miou is None and result.images_evaluated == 0
    assert 0 < result.predict_ms.p50 <= result.predict_ms.p99


def test_loaded_segmenter_is_measured_and_left_open(model) -> None:
    segmenter = OnnxSegmenter(model)
    result = benchmark_model(segmenter, runs=3, warmup=0)
    assert result.load_ms is None and result.name == model.stem
    segmenter.predict(np.zeros((*SIZE, 3), dtype=np.uint8))  # still usable: the caller owns it
    segmenter.close()


def test_bad_arguments_are_refused(model) -> None:
    with pytest.raises(ValueError, match="runs"):
        benchmark_model(model, runs=0)


def _fake(name: str, miou: float | None) -> BenchmarkResult:
    stats = Percentiles(10.0, 12.0, 15.0, 10.5)
    scores = None
    if miou is not None:
        scheme = eval_scheme_by_key("trainids")
        matrix = np.zeros((scheme.id_space.num_classes, scheme.id_space.num_classes + 1), dtype=np.int64)
        scores = dataclasses.replace(compute_scores(matrix, scheme), miou=miou)
    return BenchmarkResult(
        name=name, source=f"/models/{name}.onnx", backend="onnx", file_bytes=3 * 1024 * 1024,
        image_size=(256, 512), runs=30, load_ms=5.0, predict_ms=stats, inference_ms=stats,
        throughput=95.2, peak_rss_bytes=40 * 1024 * 1024, peak_is_process_wide=False, scores=scores,
    )


def test_format_table_rows() -> None:
    table = format_table([_fake("segformer-b0", 0.4567), _fake("unet", None)])
    lines = table.splitlines()
    assert lines[0].split() == ["model", "size", "MB", "P50", "ms", "P95", "ms", "P99", "ms", "img/s", "peak",
                                "MB", "mIoU"]
    assert lines[2].split() == ["segformer-b0", "3.00", "10.0", "12.0", "15.0", "95.2", "40", "45.67"]
    assert lines[3].split() == ["unet", "3.00", "10.0", "12.0", "15.0", "95.2", "40", "-"]
    assert "256x512" in table


def test_compare_latency_times_each_model(model, dynamic_model) -> None:
    tensor = np.random.default_rng(0).normal(size=(1, 3, *SIZE)).astype(np.float32)
    times = compare_latency([model, dynamic_model], [tensor], runs=4, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)


def test_cli_prints_table_and_writes_json(tmp_path, model, dynamic_model, data, capsys) -> None:
    report = tmp_path / "bench.json"
    argv = [str(model), str(dynamic_model), "--dataset", str(data), "--runs", "3", "--warmup", "1",
            "--size", "64x128", "--json", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bench_a" in out and "bench_dyn" in out and "mIoU" in out
    document = json.loads(report.read_text())
    assert [m["name"] for m in document["models"]] == ["bench_a", "bench_dyn"]
    assert all(m["metrics"]["miou"] is not None for m in document["models"])
    assert document["models"][1]["image_size"] == [64, 128]


def test_cli_names_a_bad_model_file(tmp_path, capsys) -> None:
    missing = tmp_path / "missing.onnx"
    assert main([str(missing), "--runs", "1"]) == 2
    assert str(missing) in capsys.readouterr().err
