"""The evaluation service: one request, one typed result, and every command that evaluates giving the same
numbers through it (evaluate, report, gate, benchmark, quantize's validation), with the same options."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from modelzoo import make_onnx_segmenter

from app.cli import main
from app.core.domain.errors import InputError
from app.core.domain.labels import CATEGORY_NAMES, TRAINIDS
from app.core.io.datasets import open_dataset
from app.core.scenes.generator import generate
from app.core.storage.edited import EditedDataset
from app.core.storage.project import Project, default_project_path
from app.evaluation.document import format_summary, result_document
from app.evaluation.service import CachePolicy, EvaluationRequest, evaluate, open_session
from app.gate import main as gate_main
from app.report.cli import main as report_main
from app.tools.benchmark import benchmark_models

LOOSE = ["--max-miou-drop", "100", "--max-class-drop", "100"]  # gate rules that random models pass


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("data"), 5, size=(96, 192), seed=11)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("models")
    a = make_onnx_segmenter(root / "a.onnx", TRAINIDS.names, input_size=(64, 128), seed=1)
    b = make_onnx_segmenter(root / "b.onnx", TRAINIDS.names, input_size=None, seed=2, output="labels")
    cat = make_onnx_segmenter(root / "cat.onnx", CATEGORY_NAMES, input_size=(64, 128), seed=3)
    return a, b, cat


def _miou(entry: dict) -> float:
    return float(entry["metrics"]["miou"])


def test_result_is_typed_frozen_and_says_what_it_was_computed_on(scenes, models) -> None:
    result = evaluate(EvaluationRequest(dataset=scenes, models=(str(models[0]), str(models[1]))))
    a, b = result.models
    assert result.scheme.key == "trainids" and result.ground_truth.kind == "original"
    assert a.images_evaluated == b.images_evaluated == 5 and list(a.images) == [
        r.key for r in result.dataset.refs
    ]
    with pytest.raises(AttributeError):
        a.scores = b.scores  # type: ignore[misc]  # frozen
    # The summed integer matrix is exactly the sum of the per-image ones.
    total = sum(image.matrix for image in a.images.values())
    np.testing.assert_array_equal(total, a.matrix)
    assert result.basis() == "scheme trainids, original labels, 5 images"
    assert "computed on: scheme trainids, original labels, 5 images" in format_summary(result)
    doc = json.loads(json.dumps(result_document(result), allow_nan=False))
    assert doc["ground_truth"] == {"kind": "original", "project": None, "edited_images": 0}
    assert doc["skipped"] == [] and doc["engine"] == "local"


def test_every_command_gives_the_same_numbers(scenes, models, tmp_path) -> None:
    a, b = str(models[0]), str(models[1])
    direct = result_document(evaluate(EvaluationRequest(dataset=scenes, models=(a, b))))
    ev, rep, gate = tmp_path / "ev.json", tmp_path / "rep.json", tmp_path / "gate.json"
    assert (
        main(["evaluate", "--dataset", str(scenes), "--model", a, "--model", b, "--json", str(ev), "-q"]) == 0
    )
    base = ["--dataset", str(scenes), "-q", "--cache", str(tmp_path / "cache")]
    assert report_main([*base, "--model", a, "--model", b, "--json", str(rep)]) == 0
    code = gate_main([*base, "--reference", a, "--candidate", b, "--json", str(gate), *LOOSE])
    assert code == 0
    evaluated = json.loads(ev.read_text())
    reported = json.loads(rep.read_text())  # the evaluate document plus the report's findings
    gated = json.loads(gate.read_text())["run"]
    for doc in (evaluated, reported, gated):
        assert [_miou(m) for m in doc["models"]] == [_miou(m) for m in direct["models"]]
        assert [m["metrics"]["confusion"] for m in doc["models"]] == [
            m["metrics"]["confusion"] for m in direct["models"]
        ]
    # benchmark and quantize's validation share the service's numbers too
    bench = benchmark_models([models[0], models[1]], runs=1, warmup=0, dataset=open_dataset(scenes))
    assert [r.miou for r in bench] == [_miou(m) for m in direct["models"]]


def test_report_and_gate_use_the_prediction_cache(scenes, models, tmp_path) -> None:
    a, b = str(models[0]), str(models[1])
    cache = tmp_path / "cache"
    args = [
        "--dataset",
        str(scenes),
        "--reference",
        a,
        "--candidate",
        b,
        "-q",
        "--cache",
        str(cache),
        "--json",
        str(tmp_path / "g.json"),
        *LOOSE,
    ]
    assert gate_main(args) == 0
    first = json.loads((tmp_path / "g.json").read_text())["cache"]
    assert first == {"hits": 0, "misses": 10}
    out = tmp_path / "r.html"
    assert (
        report_main(
            [
                "--dataset",
                str(scenes),
                "--model",
                a,
                "--model",
                b,
                "-q",
                "--cache",
                str(cache),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    request = EvaluationRequest(dataset=scenes, models=(a, b), cache=CachePolicy(use=True, folder=cache))
    again = evaluate(request)
    assert [m.cache.hits for m in again.models if m.cache] == [5, 5]
    assert gate_main([*args[:-6], "--no-cache", "--json", str(tmp_path / "n.json"), *LOOSE]) == 0
    assert json.loads((tmp_path / "n.json").read_text())["cache"] == {"hits": 0, "misses": 0}


def test_onnx_runtime_option_works_in_report_and_gate(scenes, models, tmp_path, capsys) -> None:
    a, b = str(models[0]), str(models[1])
    out = tmp_path / "r.html"
    assert (
        report_main(
            ["--dataset", str(scenes), "--model", a, "--model", b, "-q", "--onnx-runtime", "--out", str(out)]
        )
        == 0
    )
    assert "already runs on onnx" in capsys.readouterr().err
    assert (
        gate_main(
            [
                "--dataset",
                str(scenes),
                "--reference",
                a,
                "--candidate",
                b,
                "-q",
                "--onnx-runtime",
                "--no-cache",
                *LOOSE,
            ]
        )
        == 0
    )
    assert "already runs on onnx" in capsys.readouterr().err


def test_cli_evaluates_edited_labels_on_request_and_warns_otherwise(models, tmp_path, capsys) -> None:
    from app.core.domain.labels import LABELIDS
    from app.core.io.imageio import read_label

    root = generate(tmp_path / "data", 3, size=(96, 192), seed=5)
    a = str(models[0])
    original, edited, saved = tmp_path / "o.json", tmp_path / "e.json", tmp_path / "saved"
    args = ["evaluate", "--dataset", str(root), "--model", a, "-q"]
    assert main([*args, "--json", str(original), "--save-predictions", str(saved)]) == 0
    # The reviewer accepts the model's mask of the first image as its ground truth: that image then scores 1.
    ref = open_dataset(root).refs[0]
    [mask_file] = saved.rglob(f"{ref.frame}_gtFine_labelIds.png")
    mask, _ = read_label(mask_file, LABELIDS, None)
    with Project.open_or_create(default_project_path(root), root) as project:
        project.save_edit(ref, mask)
    capsys.readouterr()
    assert main([*args, "--json", str(original)]) == 0
    assert "holds edited labels for 1 of these images; they are NOT used" in capsys.readouterr().err
    assert main([*args, "--json", str(edited), "--ground-truth", "edited"]) == 0
    assert "ground truth: edited labels" in capsys.readouterr().err
    o, e = json.loads(original.read_text()), json.loads(edited.read_text())
    assert e["ground_truth"]["kind"] == "edited" and e["ground_truth"]["edited_images"] == 1
    assert o["ground_truth"]["kind"] == "original"
    rows = [{r["key"]: r for r in doc["models"][0]["per_image"]} for doc in (o, e)]
    assert rows[1][ref.key]["miou"] == 1.0 != rows[0][ref.key]["miou"]
    assert all(rows[0][k]["iou"] == rows[1][k]["iou"] for k in rows[0] if k != ref.key)
    with Project.open(default_project_path(root)) as project:
        assert EditedDataset(open_dataset(root), project).edited_keys() == [ref.key]


def test_edited_ground_truth_without_a_project_is_refused(scenes, models) -> None:
    with pytest.raises(InputError, match="no project with edited labels"):
        open_session(EvaluationRequest(dataset=scenes, models=(str(models[0]),), ground_truth="edited"))


def test_benchmark_scores_every_model_on_one_scheme(scenes, models) -> None:
    # A category model beside a 19-class one: both are scored on categories, never each in its own scheme.
    results = benchmark_models([models[0], models[2]], runs=1, warmup=0, dataset=open_dataset(scenes))
    assert {r.scheme for r in results} == {"categories"}
    shared = evaluate(EvaluationRequest(dataset=scenes, models=(str(models[0]), str(models[2]))))
    assert shared.scheme.key == "categories"
    assert [r.miou for r in results] == [m.scores.miou for m in shared.models]


def test_bad_requests_fail_before_any_model_is_opened(scenes, models, tmp_path) -> None:
    with pytest.raises(InputError, match="nothing to evaluate"):
        EvaluationRequest(dataset=scenes)
    with pytest.raises(InputError, match="limit must be 1 or more"):
        EvaluationRequest(dataset=scenes, models=(str(models[0]),), limit=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    opened: list[str] = []

    def loader(path: str):
        opened.append(path)
        raise AssertionError("no model may be opened for an empty dataset")

    with pytest.raises(InputError, match="no images"):
        open_session(EvaluationRequest(dataset=empty, models=(str(models[0]),)), loader=loader)
    assert opened == []


def test_cancel_stops_the_run_and_says_so(scenes, models) -> None:
    cancel = threading.Event()
    cancel.set()  # e.g. Ctrl-C before the first image finished
    request = EvaluationRequest(dataset=scenes, models=(str(models[0]),), workers=1)
    result = evaluate(request, cancel=cancel)
    assert result.cancelled and result.images_done < 5
    assert f"cancelled after {result.images_done} of 5" in result.basis()


def test_comparison_names_winner_margin_worse_classes_and_basis(scenes, models) -> None:
    from app.evaluation.compare import compare

    result = evaluate(EvaluationRequest(dataset=scenes, models=(str(models[0]), str(models[1]))))
    a, b = result.models
    comparison = compare(result)
    assert comparison.delta_miou == pytest.approx((b.scores.miou - a.scores.miou) * 100)
    deltas = {
        n: (y - x) * 100 for n, x, y in zip(result.scheme.names, a.scores.iou, b.scores.iou, strict=True)
    }
    expected = sorted((n for n, d in deltas.items() if d <= -1), key=lambda n: (deltas[n], n))
    assert [c.name for c in comparison.worse] == expected
    line = comparison.one_line()
    assert line.endswith("scheme trainids, original labels, 5 images")
    winner = "B" if b.scores.miou > a.scores.miou else "A"
    assert line.startswith((f"{winner} better by", "B on par"))


def test_saved_predictions_are_scored_without_decoding_the_images(
    scenes, models, tmp_path, monkeypatch
) -> None:
    import app.core.io.datasets as datasets

    saved = tmp_path / "saved"
    a = str(models[0])
    assert (
        main(["evaluate", "--dataset", str(scenes), "--model", a, "-q", "--save-predictions", str(saved)])
        == 0
    )
    decoded: list[Path] = []
    real = datasets.read_image

    def counting(path, *args, **kwargs):
        decoded.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "read_image", counting)
    folder = next(saved.iterdir())
    from_files = evaluate(EvaluationRequest(dataset=scenes, predictions=(str(folder),)))
    assert decoded == []  # only the label files and the image headers were read
    from_model = evaluate(EvaluationRequest(dataset=scenes, models=(a,)))
    assert len(decoded) == 5
    np.testing.assert_array_equal(from_files.models[0].matrix, from_model.models[0].matrix)


def _perfect_predictions(root: Path, out: Path) -> Path:
    """The ground truth itself as saved predictions: a model that is always right."""
    import shutil

    out.mkdir()
    for label in root.rglob("*_gtFine_labelIds.png"):
        shutil.copy(label, out / label.name)
    return out


def test_two_models_get_a_paired_bootstrap_and_analysis_on_request(scenes, models, tmp_path) -> None:
    a, b = str(models[0]), str(models[1])
    plain = evaluate(EvaluationRequest(dataset=scenes, models=(a, b)))
    doc = json.loads(json.dumps(result_document(plain), allow_nan=False))
    comparison = doc["comparison"]
    value = plain.models[1].scores.miou - plain.models[0].scores.miou
    assert comparison["delta_miou"]["value"] == pytest.approx(value, abs=1e-12)
    low, high = comparison["delta_miou"]["ci95"]
    assert low <= high and comparison["images"] == 5
    assert doc["boundary"] == {} and doc["models"][0]["boundary_iou"] is None  # not asked
    analyzed = evaluate(EvaluationRequest(dataset=scenes, models=(a, b), analysis=True))
    doc = json.loads(json.dumps(result_document(analyzed), allow_nan=False))
    assert all(isinstance(m["boundary_iou"], float) for m in doc["models"])
    assert set(doc["boundary"]) == {m["name"] for m in doc["models"]}
    # The statistics never change the counts.
    np.testing.assert_array_equal(analyzed.models[0].matrix, plain.models[0].matrix)


def test_gate_fails_a_drop_only_when_it_is_significant(scenes, models, tmp_path, capsys) -> None:
    from app.gate import Thresholds, check_rules

    a = str(models[0])
    same = ["--dataset", str(scenes), "--reference", a, "--candidate", a, "-q", "--no-cache",
            "--max-class-drop", "100", "--max-miou-drop", "-1"]  # fmt: skip
    assert gate_main(same) == 1  # no change at all is "a drop past -1 points"
    capsys.readouterr()
    assert gate_main([*same, "--require-confidence", "0.95"]) == 0  # ... but not a significant one
    assert "not significant at 95%" in capsys.readouterr().out
    # A perfect reference (the ground truth saved as predictions) against the random model's saved masks:
    # a large, consistent drop, significant however the images are resampled.
    perfect = _perfect_predictions(scenes, tmp_path / "perfect")
    saved = tmp_path / "saved"
    assert (
        main(["evaluate", "--dataset", str(scenes), "--model", a, "-q", "--save-predictions", str(saved)])
        == 0
    )
    run = evaluate(EvaluationRequest(dataset=scenes, predictions=(str(perfect), str(next(saved.iterdir())))))
    reference, candidate = run.models
    assert reference.scores.miou == 1.0 > candidate.scores.miou
    limits = Thresholds(max_miou_drop=0.5, max_class_drop=100, require_confidence=0.95)
    rule = check_rules(reference, candidate, limits, run)[0]
    assert rule.passed is False and "significant at 95%" in rule.message
    assert any("interval" in line for line in rule.details)


def test_report_shows_and_exports_what_the_analysis_found(tmp_path) -> None:
    # Two models that agree with each other against the labels somewhere: the "models" are the ground truth
    # of the scenes with one rectangle relabelled, identical in both, so that rectangle is a label error.
    from PIL import Image

    root = generate(tmp_path / "data", 3, size=(96, 192), seed=9)
    folders = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        for label in root.rglob("*_gtFine_labelIds.png"):
            ids = np.array(Image.open(label))
            ids[10:40, 20:80] = 26  # labelId 26 = car, the same wrong region in both models
            Image.fromarray(ids).save(out / label.name)
        folders.append(str(out))
    out = tmp_path / "r.html"
    args = ["--dataset", str(root), "--predictions", folders[0], "--predictions", folders[1], "-q"]
    assert (
        report_main(
            [*args, "--out", str(out), "--csv", str(tmp_path / "csv"), "--json", str(tmp_path / "r.json")]
        )
        == 0
    )
    page = out.read_text()
    for section in ("Per-class comparison", "Boundary quality", "Likely label errors"):
        assert section in page
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["label_errors"] and doc["label_errors"][0]["predicted"] == "car"
    assert doc["comparison"]["delta_miou"]["value"] == 0.0
    assert (tmp_path / "csv" / "label_errors.csv").read_text().count("\n") == len(doc["label_errors"]) + 1


def _threads(session) -> int:
    return session.predictors[0].segmenter._session.get_session_options().intra_op_num_threads


def test_commands_leave_a_core_to_decoding_and_counting(scenes, models, monkeypatch) -> None:
    import os

    from app.evaluation.service import spare_core_threads

    monkeypatch.delenv("SEGLENS_INFERENCE_THREADS", raising=False)
    request = EvaluationRequest(dataset=scenes, models=(str(models[0]),), inference_threads=1)
    with open_session(request) as session:
        assert _threads(session) == 1
    assert "SEGLENS_INFERENCE_THREADS" not in os.environ  # set only while the models opened
    monkeypatch.setenv("SEGLENS_INFERENCE_THREADS", "2")  # the user's choice wins
    with open_session(request) as session:
        assert _threads(session) == 2
    cores = len(os.sched_getaffinity(0))
    assert spare_core_threads() == (cores - 1 if cores > 1 else None)
