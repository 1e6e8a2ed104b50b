"""`seglens gate`: pass, regression (exit 1, broken rules listed), run errors (exit 2), JUnit XML, and
the prediction cache making a threshold-only re-run predict nothing."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from modelzoo import centroids_from_colors, make_onnx_segmenter

from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import generate
from app.gate import main as gate
from app.inference.base import ModelInfo, Prediction, Segmenter
from app.inference.registry import load_model


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("data"), 4, size=(96, 192), seed=5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    centroids = centroids_from_colors(TRAINIDS.colors)
    good = make_onnx_segmenter(root / "good.onnx", TRAINIDS.names, weights="centroid", centroids=centroids,
                               downsample=2, input_size=None)  # fmt: skip
    # Every centroid far away except bicycle's: this model calls every pixel a bicycle.
    constant = np.full_like(centroids, 1000.0)
    constant[TRAINIDS.names.index("bicycle")] = 0.0
    bad = make_onnx_segmenter(root / "bad.onnx", TRAINIDS.names, weights="centroid", centroids=constant,
                              downsample=2, input_size=None)  # fmt: skip
    same = root / "good_copy.onnx"
    shutil.copyfile(good, same)
    return {"good": good, "bad": bad, "same": same}


class _Counted:
    """A real loaded model whose predict() calls are counted."""

    def __init__(self, inner: Segmenter, counter: list[int]) -> None:
        self.inner = inner
        self.counter = counter

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    def predict(self, image: np.ndarray) -> Prediction:
        self.counter.append(1)
        return self.inner.predict(image)

    def close(self) -> None:
        self.inner.close()


def _counting_loader(counter: list[int]):
    return lambda path: _Counted(load_model(path), counter)


def _args(scenes: Path, ref: Path, cand: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", str(scenes), "--reference", str(ref), "--candidate", str(cand), "--cache",
            str(out / "cache"), "--junit", str(out / "gate.xml"), "--json", str(out / "gate.json"), "-q",
            *extra]  # fmt: skip


def _junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "-1")) == len(cases)
    assert int(suite.get("failures", "-1")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors", "-1")) == sum(1 for c in cases if c.find("error") is not None)
    assert int(suite.get("skipped", "-1")) == sum(1 for c in cases if c.find("skipped") is not None)
    for case in cases:
        assert case.get("name") and case.get("classname") == "seglens.gate"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                assert child.get("message")
    return suite


def test_identical_candidate_passes(scenes, models, tmp_path, capsys) -> None:
    code = gate(_args(scenes, models["good"], models["same"], tmp_path, "--max-latency-ratio", "1000"))
    assert code == 0
    doc = json.loads((tmp_path / "gate.json").read_text())
    assert doc["status"] == "pass" and doc["broken"] == []
    assert all(r["passed"] is not False for r in doc["rules"])
    latency = next(r for r in doc["rules"] if r["name"] == "latency ratio")
    assert latency["passed"] is True and latency["threshold"] == 1000
    suite = _junit(tmp_path / "gate.xml")
    assert len(suite.findall("testcase")) == len(doc["rules"]) == 1 + 19 + 3  # + latency, coverage, skipped
    assert "passed" in capsys.readouterr().err


def test_regression_lists_broken_rules_and_exits_1(scenes, models, tmp_path, capsys) -> None:
    code = gate(_args(scenes, models["good"], models["bad"], tmp_path, "--classes", "road,sky,bicycle",
                      "--report", str(tmp_path / "gate.html")))  # fmt: skip
    assert code == 1
    doc = json.loads((tmp_path / "gate.json").read_text())
    ref, cand = doc["run"]["models"]
    drop = (ref["metrics"]["miou"] - cand["metrics"]["miou"]) * 100
    assert drop > 0.5
    rules = {r["name"]: r for r in doc["rules"]}
    classes = [f"class IoU drop: {c}" for c in ("road", "sky", "bicycle")]
    assert list(rules) == ["mIoU drop", *classes, "latency ratio", "images evaluated", "skipped images"]
    assert rules["mIoU drop"]["passed"] is False and rules["mIoU drop"]["value"] == pytest.approx(drop)
    for name in ("road", "sky"):
        rule = rules[f"class IoU drop: {name}"]
        expected = (ref["metrics"]["classes"][name]["iou"] - cand["metrics"]["classes"][name]["iou"]) * 100
        assert rule["value"] == pytest.approx(expected)
        assert rule["passed"] is (expected <= 2.0)
    assert rules["latency ratio"]["passed"] is None  # not asked for
    assert (
        doc["broken"] == [n for n, r in rules.items() if r["passed"] is False]
        and "mIoU drop" in doc["broken"]
    )
    out = capsys.readouterr()
    assert (
        f"FAIL  mIoU drop: mIoU {ref['metrics']['miou'] * 100:.2f} -> {cand['metrics']['miou'] * 100:.2f}"
        in out.out
    )
    assert "rules broken" in out.err
    suite = _junit(tmp_path / "gate.xml")
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == doc["broken"]
    failure = suite.find("testcase[@name='mIoU drop']/failure")
    assert failure is not None and f"fell {drop:.2f} points" in str(failure.get("message"))
    assert (tmp_path / "gate.html").read_text(encoding="utf-8").count("data:image/") >= 4


def test_rerun_with_new_thresholds_predicts_nothing(scenes, models, tmp_path) -> None:
    first: list[int] = []
    assert gate(_args(scenes, models["good"], models["bad"], tmp_path), loader=_counting_loader(first)) == 1
    assert len(first) == 2 * 4  # both models, every image
    before = json.loads((tmp_path / "gate.json").read_text())
    second: list[int] = []
    relaxed = _args(scenes, models["good"], models["bad"], tmp_path, "--max-miou-drop", "100",
                    "--max-class-drop", "100")  # fmt: skip
    assert gate(relaxed, loader=_counting_loader(second)) == 0
    assert second == []  # every prediction came from the cache
    after = json.loads((tmp_path / "gate.json").read_text())
    assert after["cache"] == {"hits": 8, "misses": 0}
    for old, new in zip(before["run"]["models"], after["run"]["models"], strict=True):
        # Pixel counts are exact; iIoU sums float instance weights in image completion order (last bits vary).
        assert new["metrics"]["confusion"] == old["metrics"]["confusion"]
        assert new["metrics"]["miou"] == old["metrics"]["miou"]
        assert new["latency_ms"] == old["latency_ms"]  # cached predictions keep their measured latency
    third: list[int] = []
    no_cache = [*relaxed, "--no-cache"]
    assert gate(no_cache, loader=_counting_loader(third)) == 0 and len(third) == 8


def test_missing_model_exits_2_with_junit_error(scenes, models, tmp_path, capsys) -> None:
    code = gate(_args(scenes, models["good"], tmp_path / "nope.onnx", tmp_path))
    assert code == 2
    assert "nope.onnx" in capsys.readouterr().err
    suite = _junit(tmp_path / "gate.xml")
    [case] = suite.findall("testcase")
    error = case.find("error")
    assert error is not None and "nope.onnx" in str(error.get("message"))
    doc = json.loads((tmp_path / "gate.json").read_text())
    assert doc["status"] == "error" and doc["exit_code"] == 2


def test_empty_dataset_exits_2(models, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gate(_args(empty, models["good"], models["bad"], tmp_path)) == 2
    assert json.loads((tmp_path / "gate.json").read_text())["status"] == "error"


def test_nothing_evaluated_exits_2(models, tmp_path) -> None:
    data = generate(tmp_path / "d", 2, size=(64, 128), seed=1)
    for image in (data / "leftImg8bit").rglob("*.png"):
        image.write_bytes(b"not a png")
    assert gate(_args(data, models["good"], models["bad"], tmp_path)) == 2
    assert "nothing evaluated" in json.loads((tmp_path / "gate.json").read_text())["error"]


def test_unknown_class_exits_2(scenes, models, tmp_path) -> None:
    assert gate(_args(scenes, models["good"], models["same"], tmp_path, "--classes", "road,unicorn")) == 2
    assert "unicorn" in json.loads((tmp_path / "gate.json").read_text())["error"]


def test_junit_escapes_and_strips_control_characters() -> None:
    from app.gate import RuleResult, junit_xml

    rules = [RuleResult("class IoU drop: <b>&\x07", False, 'fell "5" <points>\x00', 5.0, 2.0)]
    root = ET.fromstring(junit_xml(rules, suite="s", seconds=1.0))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name") == "class IoU drop: <b>&?"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == 'fell "5" <points>?'
