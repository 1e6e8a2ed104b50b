"""INT8 static quantization end to end: real models, real calibration images, real Evaluator numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from modelzoo import centroids_from_colors, make_onnx_segmenter, make_text_file

from app.core.datasets import FolderDataset, open_dataset
from app.core.errors import InputError, ModelLoadError
from app.core.labels import BUILTIN_SCHEMES, LABEL_BY_ID, LABELIDS
from app.core.synthetic import generate
from app.inference import quantize as quantize_module
from app.inference.evaluate import Evaluator, SegmenterPredictor, choose_scheme
from app.inference.quantize import Accuracy, QuantizeConfig, Trial, pick, quantize, search
from app.inference.registry import load_model

SIZE = (64, 128)
CATEGORIES = BUILTIN_SCHEMES["categories"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    generate(root, 8, SIZE, seed=1, split="train")
    generate(root, 8, SIZE, seed=2, split="val")
    return root


@pytest.fixture(scope="module")
def calibration(data):
    return open_dataset(data, split="train")


@pytest.fixture(scope="module")
def validation(data):
    return open_dataset(data, split="val")


@pytest.fixture(scope="module")
def centroid_model(tmp_path_factory, calibration) -> Path:
    """A nearest-mean-colour classifier of the 8 categories, fitted on the training split: its
    segmentations are meaningful (mIoU far above chance), so accuracy changes mean something."""
    to_category = np.full(256, 255, dtype=np.uint8)
    for label_id, label in LABEL_BY_ID.items():
        to_category[label_id] = label.category_id
    sums, counts = np.zeros((8, 3)), np.zeros(8)
    for ref in calibration.refs:
        sample = calibration.load(ref)
        categories = to_category[sample.gt]
        for k in range(8):
            mask = categories == k
            sums[k] += sample.image[mask].sum(axis=0)
            counts[k] += mask.sum()
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], CATEGORIES.colors)
    path = tmp_path_factory.mktemp("models") / "centroid.onnx"
    return make_onnx_segmenter(
        path, CATEGORIES.names, input_size=SIZE, weights="centroid", centroids=centroids_from_colors(means),
        downsample=2,
    )


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "convnet.onnx"
    return make_onnx_segmenter(path, CATEGORIES.names, input_size=SIZE, hidden=16, depth=2, seed=3)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _is_dequantized(model: onnx.ModelProto, tensor: str) -> bool:
    node = _producers(model).get(tensor)
    return node is not None and node.op_type == "DequantizeLinear"


def _evaluator_miou(model_path: Path, dataset) -> float:
    predictor = SegmenterPredictor(load_model(model_path))
    try:
        scheme = choose_scheme(None, [predictor], dataset.gt_scheme)
        return Evaluator(dataset, [predictor], scheme).run().models[0].scores().miou
    finally:
        predictor.segmenter.close()


def test_conv_only_quantization_end_to_end(tmp_path, centroid_model, calibration, validation) -> None:
    out = tmp_path / "centroid_int8.onnx"
    result = quantize(
        centroid_model, out, calibration=calibration, count=6, op_types=("Conv",), validation=validation,
        runs=6, warmup=1,
    )
    assert result.int8_path == out and out.is_file()
    assert result.int8_bytes == out.stat().st_size and result.fp32_bytes == centroid_model.stat().st_size
    assert result.calibration_images == 6 and result.quantized_nodes == 1

    int8 = onnx.load(str(out))
    ops = [n.op_type for n in int8.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    conv = next(n for n in int8.graph.node if n.op_type == "Conv")
    pool = next(n for n in int8.graph.node if n.op_type == "AveragePool")
    assert _is_dequantized(int8, conv.input[0]) and _is_dequantized(int8, conv.input[1])
    assert not _is_dequantized(int8, pool.input[0]), "AveragePool was not asked for but got quantized"

    # Self-describing: the FP32 metadata travels, plus the recipe.
    fp32_props = {p.key: p.value for p in onnx.load(str(centroid_model)).metadata_props}
    int8_props = {p.key: p.value for p in int8.metadata_props}
    assert {k: v for k, v in int8_props.items() if k in fp32_props} == fp32_props
    recipe = json.loads(int8_props["seglens.quantization"])
    assert recipe["config"]["op_types"] == ["Conv"] and recipe["calibration"]["images"] == 6
    loaded = load_model(out)
    assert loaded.info.class_names == CATEGORIES.names and loaded.info.input.height == SIZE[0]
    loaded.close()

    assert result.fp32_ms > 0 and result.int8_ms > 0
    assert result.latency_ratio == pytest.approx(result.int8_ms / result.fp32_ms)
    assert result.fp32_accuracy is not None and result.int8_accuracy is not None
    assert result.fp32_accuracy.miou == pytest.approx(_evaluator_miou(centroid_model, validation), abs=1e-12)
    assert result.int8_accuracy.miou == pytest.approx(_evaluator_miou(out, validation), abs=1e-12)
    assert result.fp32_accuracy.miou > 0.12, "the fitted centroid model should beat chance clearly"
    delta = result.miou_delta_points
    assert delta == pytest.approx((result.int8_accuracy.miou - result.fp32_accuracy.miou) * 100)
    assert abs(delta) < 1.0, "8-bit inputs to a nearest-centroid classifier should barely move its mIoU"
    assert set(result.iou_delta_points()) == set(CATEGORIES.names)
    document = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert document["int8_accuracy"]["iou"]["void"] is None  # void is never evaluated: NaN -> null


def test_op_types_decide_what_is_quantized(tmp_path, conv_model, calibration) -> None:
    fp32_relus = sum(n.op_type == "Relu" for n in onnx.load(str(conv_model)).graph.node)
    graphs = {}
    for name, ops in (("conv", ("Conv",)), ("all", None)):
        path = tmp_path / f"{name}.onnx"
        quantize(conv_model, path, calibration=calibration, count=3, op_types=ops, runs=2)
        graphs[name] = onnx.load(str(path))
    for graph in graphs.values():
        assert all(_is_dequantized(graph, n.input[1]) for n in graph.graph.node if n.op_type == "Conv")
    # Conv only: each Relu stays a float op between DequantizeLinear and QuantizeLinear. All op types:
    # Relu is quantized too, which in QDQ means folding it into the preceding Conv's output range.
    relus = [n for n in graphs["conv"].graph.node if n.op_type == "Relu"]
    assert fp32_relus == 4 and len(relus) == fp32_relus
    assert all(_is_dequantized(graphs["conv"], n.input[0]) for n in relus)
    assert not any(n.op_type == "Relu" for n in graphs["all"].graph.node)


def test_int8_is_smaller_and_excluded_nodes_stay_float(tmp_path, conv_model, calibration) -> None:
    out = tmp_path / "conv_int8.onnx"
    result = quantize(
        conv_model, out, calibration=calibration, count=4, method="percentile", exclude_nodes=["Conv_0"],
        runs=3, warmup=0,
    )
    assert result.int8_bytes < result.fp32_bytes
    int8 = onnx.load(str(out))
    convs = [n for n in int8.graph.node if n.op_type == "Conv"]
    inits = {i.name for i in int8.graph.initializer}
    first = next(n for n in convs if n.name == "Conv_0")
    assert first.input[1] in inits and not _is_dequantized(int8, first.input[1]), "Conv_0 must stay FP32"
    assert all(_is_dequantized(int8, n.input[1]) for n in convs if n.name != "Conv_0")
    assert result.quantized_nodes == len(convs) - 1
    assert json.loads({p.key: p.value for p in int8.metadata_props}["seglens.quantization"])["config"][
        "method"
    ] == "percentile"


def test_unknown_excluded_node_names_the_model_and_the_choices(tmp_path, conv_model, calibration) -> None:
    with pytest.raises(InputError) as info:
        quantize(conv_model, tmp_path / "x.onnx", calibration=calibration, count=2, exclude_nodes=["nope"])
    assert str(conv_model) in str(info.value) and "'nope'" in str(info.value) and "Conv_0" in str(info.value)
    assert not (tmp_path / "x.onnx").exists()


def test_failed_shape_preprocessing_falls_back_and_says_so(tmp_path, conv_model, calibration, monkeypatch):
    def broken(source: Path, target: Path) -> None:
        raise RuntimeError("symbolic shape inference exploded")

    monkeypatch.setattr(quantize_module, "_shape_preprocess", broken)
    out = tmp_path / "fallback.onnx"
    result = quantize(conv_model, out, calibration=calibration, count=2, runs=2, warmup=0)
    assert any("pre-processing failed (symbolic shape inference exploded)" in w for w in result.warnings)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["seglens.quantization"])["shape_preprocessed"] is False
    load_model(out).close()


def test_not_an_onnx_file_is_refused_by_name(tmp_path, calibration) -> None:
    bogus = make_text_file(tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError) as info:
        quantize(bogus, tmp_path / "out.onnx", calibration=calibration, count=2)
    assert str(bogus) in str(info.value)
    assert not (tmp_path / "out.onnx").exists()


def test_empty_calibration_dataset_is_refused_by_name(tmp_path, conv_model) -> None:
    empty = FolderDataset(tmp_path / "nothing", LABELIDS, [])
    with pytest.raises(InputError) as info:
        quantize(conv_model, tmp_path / "out.onnx", calibration=empty)
    assert str(tmp_path / "nothing") in str(info.value) and "no images" in str(info.value)


def test_cli_reports_empty_calibration_folder(tmp_path, conv_model, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = quantize_module.main(
        [str(conv_model), "--calibration", str(tmp_path / "empty"), "--out", str(tmp_path / "o.onnx")]
    )
    assert code == 2
    assert str(tmp_path / "empty") in capsys.readouterr().err


def test_cli_quantizes_and_writes_json(tmp_path, centroid_model, data, capsys) -> None:
    out, report = tmp_path / "cli_int8.onnx", tmp_path / "report.json"
    argv = [
        str(centroid_model), "--calibration", str(data), "--split", "train", "--count", "3",
        "--out", str(out),
        "--ops", "Conv", "--method", "entropy", "--no-per-channel", "--validation", str(data),
        "--runs", "3", "--json", str(report),
    ]
    assert quantize_module.main(argv) == 0
    printed = capsys.readouterr().out
    assert "latency" in printed and "mIoU" in printed
    document = json.loads(report.read_text())
    assert document["config"] == {
        **QuantizeConfig(op_types=("Conv",), method="entropy", per_channel=False).to_dict(),
    }
    assert document["int8_path"] == str(out) and out.is_file()
    assert document["miou_delta_points"] is not None


def test_cli_search_needs_validation(tmp_path, conv_model, data, capsys) -> None:
    code = quantize_module.main([str(conv_model), "--calibration", str(data), "--out", "x.onnx", "--search"])
    assert code == 2 and "--validation" in capsys.readouterr().err


def test_search_tries_configurations_and_respects_the_budget(
    tmp_path, conv_model, calibration, validation
) -> None:
    out = tmp_path / "best.onnx"
    found = search(
        conv_model, out, calibration=calibration, validation=validation, count=4, budget_miou_points=1.0,
        runs=4, warmup=1,
    )
    labels = [t.config.label() for t in found.trials]
    assert len(found.trials) >= 3 and len(set(labels)) == len(labels)
    # Conv+MatMul quantizes the same nodes as Conv here (no MatMul): tried once, not twice.
    assert not any(t.config.op_types == ("Conv", "MatMul") for t in found.trials)
    assert {t.config.method for t in found.trials} == {"minmax", "percentile", "entropy"}
    assert any(t.config.exclude_nodes for t in found.trials)
    table = found.table()
    for i, label in enumerate(labels):
        assert f"{i:>2}  {label}" in table
    assert found.chosen == pick(found.trials, found.fp32_accuracy, 1.0)
    if found.chosen is None:
        assert found.result is None and not out.exists() and "nothing written" in found.message
    else:
        chosen = found.trials[found.chosen]
        assert chosen.ratio < 1 and chosen.within(found.fp32_accuracy, 1.0)
        assert found.result is not None and found.result.config == chosen.config and out.is_file()
        recipe = {p.key: p.value for p in onnx.load(str(out)).metadata_props}["seglens.quantization"]
        assert json.loads(recipe)["config"] == chosen.config.to_dict()
    json.dumps(found.to_dict(), allow_nan=False)


def _trial(ratio: float, miou: float | None, error: str | None = None) -> Trial:
    accuracy = None if miou is None else Accuracy(miou, {}, "categories", 4)
    return Trial(QuantizeConfig(method="minmax"), 10.0, 10.0 * ratio, 1, 1, accuracy, error)


def test_pick_keeps_the_fastest_within_budget_that_beats_fp32() -> None:
    fp32 = Accuracy(0.50, {}, "categories", 4)
    trials = [
        _trial(0.80, 0.495),  # -0.5 points: ok
        _trial(0.40, 0.480),  # fastest, but -2 points: over budget
        _trial(0.60, 0.490),  # -1.0 point exactly: ok and faster than #0
        _trial(0.30, None, error="boom"),
        _trial(1.20, 0.500),  # lossless but slower than FP32
    ]
    assert pick(trials, fp32, 1.0) == 2
    assert pick(trials, fp32, 0.9) == 0
    assert pick(trials, fp32, 3.0) == 1
    assert pick([trials[4], trials[3]], fp32, 10.0) is None
    assert math.isnan(trials[3].delta_points(fp32))


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="calibration method"):
        QuantizeConfig(method="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="QUInt8 or QInt8"):
        QuantizeConfig(weight_type="QInt4")  # type: ignore[arg-type]
    assert QuantizeConfig(op_types=None, exclude_nodes=("Conv_3",)).label() == "all ops minmax excl. Conv_3"


def test_manifest_beside_the_model_is_flagged(tmp_path, conv_model, calibration) -> None:
    model = tmp_path / "withmanifest.onnx"
    model.write_bytes(conv_model.read_bytes())
    manifest = {"name": "m", "kind": "onnx", "path": model.name, "scheme": "categories"}
    (tmp_path / "withmanifest.json").write_text(json.dumps(manifest))
    result = quantize(model, tmp_path / "q.onnx", calibration=calibration, count=2, runs=2, warmup=0)
    assert any("withmanifest.json" in w and "not copied" in w for w in result.warnings)
