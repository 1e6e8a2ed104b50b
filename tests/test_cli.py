"""`seglens evaluate` end to end on synthetic Cityscapes data, checked against the official evaluation."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cityscapes_oracle import official_evaluate
from modelzoo import make_onnx_segmenter

from app.cli import main
from app.core.domain.labels import CATEGORY_NAMES, TRAINIDS
from app.core.scenes.generator import generate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("data"), 4, size=(96, 192), seed=7)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("models")
    a = make_onnx_segmenter(root / "a.onnx", TRAINIDS.names, input_size=(64, 128), seed=1)
    b = make_onnx_segmenter(root / "b.onnx", TRAINIDS.names, input_size=None, seed=2, output="labels")
    cat = make_onnx_segmenter(root / "cat.onnx", CATEGORY_NAMES, input_size=(64, 128), seed=3)
    return a, b, cat


def _gt_files(root: Path) -> list[Path]:
    return sorted((root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))


def _close(ours: float | None, official: float) -> bool:
    if ours is None:
        return math.isnan(official)
    return math.isclose(ours, official, rel_tol=1e-9, abs_tol=1e-12)


def test_evaluate_two_models_matches_official(scenes, models, tmp_path, capsys) -> None:
    out = tmp_path / "result.json"
    preds = tmp_path / "preds"
    code = main(
        [
            "evaluate",
            "--dataset",
            str(scenes),
            "--model",
            str(models[0]),
            "--model",
            str(models[1]),
            "--json",
            str(out),
            "--save-predictions",
            str(preds),
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["scheme"] == "trainids" and doc["dataset"]["images"] == 4
    assert [m["name"] for m in doc["models"]] == ["a", "b"]
    summary = capsys.readouterr().out
    assert "mIoU" in summary and "B-A" in summary
    gts = _gt_files(scenes)
    for model in doc["models"]:
        assert model["images_evaluated"] == 4 and len(model["per_image"]) == 4
        saved = sorted((preds / model["name"]).rglob("*.png"))
        assert [p.name for p in saved] == [g.name for g in gts]
        official = official_evaluate(saved, gts)
        metrics = model["metrics"]
        for name in TRAINIDS.names:
            assert _close(metrics["classes"][name]["iou"], official["classScores"][name]), name
            assert _close(metrics["classes"][name]["iiou"], official["classInstScores"][name]), name
        assert _close(metrics["miou"], official["averageScoreClasses"])
        assert _close(metrics["miiou"], official["averageScoreInstClasses"])
        assert _close(metrics["mean_category_iou"], official["averageScoreCategories"])


def test_evaluate_saved_predictions_equals_model_run(scenes, models, tmp_path) -> None:
    preds = tmp_path / "preds"
    first, second = tmp_path / "model.json", tmp_path / "files.json"
    assert (
        main(
            [
                "evaluate",
                "--dataset",
                str(scenes),
                "--model",
                str(models[0]),
                "--json",
                str(first),
                "--save-predictions",
                str(preds),
                "-q",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                "--dataset",
                str(scenes),
                "--predictions",
                str(preds / "a"),
                "--json",
                str(second),
                "-q",
            ]
        )
        == 0
    )
    a = json.loads(first.read_text())["models"][0]["metrics"]
    b = json.loads(second.read_text())["models"][0]["metrics"]
    assert a["classes"] == b["classes"] and a["confusion"] == b["confusion"]


def test_category_model_defaults_to_category_scheme(scenes, models, tmp_path) -> None:
    out = tmp_path / "cat.json"
    assert (
        main(["evaluate", "--dataset", str(scenes), "--model", str(models[2]), "--json", str(out), "-q"]) == 0
    )
    doc = json.loads(out.read_text())
    assert doc["scheme"] == "categories"
    assert list(doc["models"][0]["metrics"]["classes"]) == list(CATEGORY_NAMES)
    assert doc["models"][0]["metrics"]["classes"]["void"]["iou"] is None


def test_category_model_refused_on_trainids(scenes, models, capsys) -> None:
    code = main(
        ["evaluate", "--dataset", str(scenes), "--model", str(models[2]), "--scheme", "trainids", "-q"]
    )
    assert code == 2
    assert "cannot be evaluated on trainids" in capsys.readouterr().err


def test_bad_image_is_reported_and_skipped(scenes, models, tmp_path, capsys) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(scenes, copy)
    victim = sorted((copy / "leftImg8bit" / "val").rglob("*.png"))[1]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "r.json"
    assert (
        main(["evaluate", "--dataset", str(copy), "--model", str(models[0]), "--json", str(out), "-q"]) == 0
    )
    doc = json.loads(out.read_text())
    assert doc["models"][0]["images_evaluated"] == 3
    [(_key, message)] = doc["sample_errors"].items()
    assert victim.name in message
    assert "skipped" in capsys.readouterr().err


def test_nothing_evaluable_exits_1(tmp_path, models) -> None:
    data = generate(tmp_path / "d", 2, size=(64, 128), seed=1)
    for image in (data / "leftImg8bit").rglob("*.png"):
        image.write_bytes(b"not a png")
    assert main(["evaluate", "--dataset", str(data), "--model", str(models[0]), "-q"]) == 1


def test_missing_model_is_a_clear_error(scenes, tmp_path, capsys) -> None:
    assert main(["evaluate", "--dataset", str(scenes), "--model", str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx" in capsys.readouterr().err


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "SegLens" in capsys.readouterr().out


class _Watched:
    """A real ONNX segmenter whose model calls are watched: how many run at once, and on which threads."""

    def __init__(self, path: Path, backend: str | None = None) -> None:
        from dataclasses import replace

        from app.inference.backends.onnx_backend import OnnxSegmenter

        self.inner = OnnxSegmenter(path)
        self.info = self.inner.info if backend is None else replace(self.inner.info, backend=backend)
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def predict(self, image):
        pending = self.begin(image)
        return pending.finish(pending.infer())

    def begin(self, image):
        from app.inference.base import PendingPrediction

        inner = self.inner.begin(image)

        def infer():
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                time.sleep(0.01)  # long enough for a second lane, were there one, to overlap
                return inner.infer()
            finally:
                with self.lock:
                    self.running -= 1

        return PendingPrediction(infer=infer, finish=inner.finish)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(("backend", "lanes"), [(None, 1), ("rest", 2)])
def test_evaluation_pipeline_gives_local_models_one_inference_lane(scenes, models, backend, lanes) -> None:
    from app.core.io.datasets import open_dataset
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor, choose_scheme

    dataset = open_dataset(scenes)
    watched = _Watched(models[0], backend)
    predictors = [SegmenterPredictor(watched)]
    scheme = choose_scheme(None, predictors, dataset.gt_scheme)
    split = Evaluator(dataset, predictors, scheme, workers=2).run()
    # In-process models use every core already: their calls never overlap; remote ones do (one per worker).
    assert watched.most == lanes
    # The split prediction counts exactly what predict() gives.
    whole = Evaluator(dataset, [SegmenterPredictor(watched.inner)], scheme, workers=1).run()
    assert split.images_done == whole.images_done == len(dataset)
    np.testing.assert_array_equal(split.models[0].matrix, whole.models[0].matrix)


def test_a_failing_model_call_is_reported_per_image_and_the_run_goes_on(scenes, models) -> None:
    from app.core.domain.errors import PredictError
    from app.core.io.datasets import open_dataset
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor, choose_scheme
    from app.inference.base import PendingPrediction

    dataset = open_dataset(scenes)
    bad_key = dataset.refs[1].key
    watched = _Watched(models[0])
    begin = watched.begin
    bad_image = dataset.load(dataset.refs[1]).image

    def flaky(image):
        pending = begin(image)
        if np.array_equal(image, bad_image):

            def fail():
                raise PredictError("model call failed on this one")

            return PendingPrediction(infer=fail, finish=pending.finish)
        return pending

    watched.begin = flaky
    predictors = [SegmenterPredictor(watched), SegmenterPredictor(watched.inner)]
    result = Evaluator(dataset, predictors, choose_scheme(None, predictors, dataset.gt_scheme)).run()
    assert list(result.models[0].errors) == [bad_key]
    assert "model call failed on this one" in result.models[0].errors[bad_key]
    assert len(result.models[0].images) == len(dataset) - 1
    assert len(result.models[1].images) == len(dataset)  # the other model is not affected
