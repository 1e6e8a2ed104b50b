"""Hostile inputs at the command line: what a careless user or an attacker hands `seglens`.

Each case runs the command a user runs (`python -m app ...` in a subprocess) and checks the exit code, that
the message names the file and says what is wrong, that no traceback reaches stderr, and, where a file could
cost gigabytes, that the process's peak memory stays bounded. NaN scores, out-of-range labels and
non-finite manifests must never turn into a score.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from hostile_files import (
    MEMORY_BOUND_KB,
    gt_files,
    huge_png,
    image_files,
    installed,
    peak_kb,
    poisoned_model,
    seglens,
)
from modelzoo import make_onnx_segmenter, make_truncated_model

from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import generate


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("scenes") / "cityscapes", 2, (64, 128), seed=3)


@pytest.fixture
def dataset(scenes: Path, tmp_path: Path) -> Path:
    """A private copy of the scenes, free to damage."""
    return Path(shutil.copytree(scenes, tmp_path / "cityscapes"))


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_onnx_segmenter(tmp_path_factory.mktemp("good") / "good.onnx", TRAINIDS.names, input_size=None)


# --- model outputs that must never be scored ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("nan_all", "9728 of 9728 values that are NaN or infinite"),
        ("nan_part", "values that are NaN or infinite"),
        ("inf", "512 of 9728 values that are NaN or infinite"),
        ("labels_300", "values 300..318 but the model has 19 classes"),
        ("labels_minus1", "values -1..-1 but the model has 19 classes"),
    ],
)
def test_poisoned_model_output_is_an_error_never_a_score(dataset: Path, tmp_path: Path, kind, said) -> None:
    model = poisoned_model(tmp_path / f"{kind}.onnx", kind)  # type: ignore[arg-type]
    out = tmp_path / "out.json"
    proc = seglens("evaluate", "--dataset", dataset, "--model", model, "--json", out, "-q")
    assert proc.returncode == 1, proc.stderr  # nothing could be evaluated
    assert str(model) in proc.stderr
    if kind == "labels_300":
        said = "but the model has 19 classes"
    assert said in proc.stderr
    document = json.loads(out.read_text())
    entry = document["models"][0]
    assert entry["images_evaluated"] == 0 and len(entry["errors"]) == 2
    assert entry["metrics"]["miou"] is None  # not 2 % for "everything is road"


def test_nan_model_beside_a_good_one_leaves_the_good_scores(
    dataset: Path, tmp_path: Path, good_model
) -> None:
    bad = poisoned_model(tmp_path / "nan.onnx", "nan_part")
    out = tmp_path / "out.json"
    proc = seglens(
        "evaluate", "--dataset", dataset, "--model", good_model, "--model", bad, "--json", out, "-q"
    )
    assert proc.returncode == 0, proc.stderr
    good, nan = json.loads(out.read_text())["models"]
    assert good["images_evaluated"] == 2 and good["metrics"]["miou"] is not None
    assert nan["images_evaluated"] == 0 and all("NaN" in m for m in nan["errors"].values())


# --- manifests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "text", "said"),
    [
        (".json", '{"path": "m.onnx", "mean": [NaN, 0.5, 0.5]}', "key 'mean': expected a finite number"),
        (".json", '{"path": "m.onnx", "std": [Infinity, 1, 1]}', "key 'std': expected a finite number"),
        (".json", '{"path": "m.onnx", "std": [0.2, 0, 0.2]}', "std must be positive"),
        (".yaml", "path: m.onnx\nstd: [0.2, -0.1, 0.2]\n", "std must be positive"),
        (".yaml", "path: m.onnx\nmean: .nan\n", "key 'mean': expected a finite number"),
        (".json", '{"path": "m.onnx", "scale": "1/0"}', "key 'scale': must be positive"),
        (".json", '{"path": "m.onnx", "input_size": [60000, 60000]}', "exceeds the pixel budget"),
        (".json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (".yaml", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=[
        "nan-mean",
        "inf-std",
        "zero-std",
        "negative-std",
        "yaml-nan",
        "scale-1/0",
        "huge-input",
        "deep-json",
        "deep-yaml",
    ],
)
def test_bad_manifest_refused_naming_it(dataset: Path, tmp_path: Path, suffix, text, said) -> None:
    make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, metadata=False)
    manifest = tmp_path / f"model{suffix}"
    manifest.write_text(text)
    proc = seglens("evaluate", "--dataset", dataset, "--model", manifest, "-q")
    assert proc.returncode == 2, proc.stderr
    assert str(manifest) in proc.stderr and said in proc.stderr


# --- damaged and oversized model files -----------------------------------------------------------------


def test_truncated_onnx_refused_naming_it(dataset: Path, tmp_path: Path, good_model: Path) -> None:
    damaged = make_truncated_model(tmp_path / "damaged.onnx", good_model)
    proc = seglens("evaluate", "--dataset", dataset, "--model", damaged, "-q")
    assert proc.returncode == 2
    assert str(damaged) in proc.stderr and "damaged" in proc.stderr


def test_onnx_declaring_a_huge_input_refused_at_load_with_bounded_memory(
    dataset: Path, tmp_path: Path
) -> None:
    model = make_onnx_segmenter(tmp_path / "huge.onnx", TRAINIDS.names, input_size=(100_000, 100_000))
    proc = seglens("evaluate", "--dataset", dataset, "--model", model, "-q", peak=True)
    assert proc.returncode == 2, proc.stderr
    assert str(model) in proc.stderr and "100000x100000" in proc.stderr and "pixel budget" in proc.stderr
    assert peak_kb(proc) < MEMORY_BOUND_KB


def test_benchmark_refuses_a_huge_size_before_allocating(tmp_path: Path, good_model: Path) -> None:
    proc = seglens("benchmark", good_model, "--size", "60000x60000", peak=True)
    assert proc.returncode == 2 and "pixel budget" in proc.stderr
    assert peak_kb(proc) < MEMORY_BOUND_KB


# --- image bombs: refused from the header, before decoding ----------------------------------------------


@pytest.mark.parametrize("which", ["image", "label", "instances"])
def test_png_declaring_13000x13000_refused_from_its_header(
    dataset: Path, tmp_path: Path, good_model, which
) -> None:
    target = {
        "image": image_files(dataset)[0],
        "label": gt_files(dataset)[0],
        "instances": sorted((dataset / "gtFine").rglob("*_instanceIds.png"))[0],
    }[which]
    huge_png(target, 13000, 13000)
    out = tmp_path / "out.json"
    proc = seglens("evaluate", "--dataset", dataset, "--model", good_model, "--json", out, "-q", peak=True)
    assert proc.returncode == 0, proc.stderr  # the other image is evaluated
    assert f"{target}: " in proc.stderr and "13000x13000" in proc.stderr and "pixel budget" in proc.stderr
    assert peak_kb(proc) < MEMORY_BOUND_KB
    document = json.loads(out.read_text())
    assert len(document["sample_errors"]) == 1 and document["models"][0]["images_evaluated"] == 1


def test_pixel_budget_is_configurable(dataset: Path, good_model: Path) -> None:
    proc = seglens(
        "evaluate", "--dataset", dataset, "--model", good_model, "-q", env={"SEGLENS_MAX_PIXELS": "4000"}
    )
    assert proc.returncode == 1  # every 64x128 image is over a 4000-pixel budget
    assert "image of 128x64 = 8192 pixels exceeds the pixel budget of 4000 pixels" in proc.stderr


# --- output targets: refused before any model runs -----------------------------------------------------


def _never_runs(tmp_path: Path) -> Path:
    """A model file that would fail loudly if anything tried to load it: the check must come first."""
    return make_truncated_model(
        tmp_path / "never.onnx", make_onnx_segmenter(tmp_path / "x.onnx", TRAINIDS.names)
    )


def test_json_onto_a_folder_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    proc = seglens("evaluate", "--dataset", dataset, "--model", _never_runs(tmp_path), "--json", folder)
    assert proc.returncode == 2
    assert f"{folder}: is a folder; the JSON file must be a file path" in proc.stderr
    assert "never.onnx" not in proc.stderr  # refused before the model was even opened


def test_json_into_a_read_only_place_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    target = Path("/proc/seglens-out.json")  # not writable even by root
    proc = seglens("evaluate", "--dataset", dataset, "--model", _never_runs(tmp_path), "--json", target)
    assert proc.returncode == 2
    assert str(target) in proc.stderr and "not writable" in proc.stderr


def test_save_predictions_onto_a_file_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    afile = tmp_path / "preds.txt"
    afile.write_text("not a folder")
    proc = seglens(
        "evaluate", "--dataset", dataset, "--model", _never_runs(tmp_path), "--save-predictions", afile
    )
    assert (
        proc.returncode == 2 and f"{afile}: is a file; the predictions folder must be a folder" in proc.stderr
    )


def test_report_out_under_a_file_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    target = blocker / "sub" / "review.html"
    proc = seglens("report", "--dataset", dataset, "--model", _never_runs(tmp_path), "--out", target)
    assert proc.returncode == 2 and str(target) in proc.stderr and "is a file, not a folder" in proc.stderr


def test_report_csv_onto_a_file_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    afile = tmp_path / "tables.csv"
    afile.write_text("")
    proc = seglens("report", "--dataset", dataset, "--model", _never_runs(tmp_path), "--csv", afile)
    assert proc.returncode == 2 and f"{afile}: is a file; the CSV folder must be a folder" in proc.stderr


def test_gate_junit_onto_a_folder_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    never = _never_runs(tmp_path)
    args = ("gate", "--dataset", dataset, "--reference", never, "--candidate", never, "--junit", tmp_path)
    proc = seglens(*args)
    assert proc.returncode == 2 and f"{tmp_path}: is a folder; the JUnit file" in proc.stderr


def test_benchmark_json_onto_a_folder_refused_at_once(tmp_path: Path) -> None:
    proc = seglens("benchmark", _never_runs(tmp_path), "--json", tmp_path)
    assert proc.returncode == 2 and f"{tmp_path}: is a folder; the JSON file" in proc.stderr


def test_quantize_out_onto_a_folder_refused_at_once(dataset: Path, tmp_path: Path) -> None:
    proc = seglens("quantize", _never_runs(tmp_path), "--calibration", dataset, "--out", tmp_path)
    assert proc.returncode == 2 and f"{tmp_path}: is a folder; the quantized model" in proc.stderr


# --- names no file system takes as they are -----------------------------------------------------------


def test_a_228_character_frame_name_is_written_shortened(tmp_path: Path, good_model: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "masks").mkdir(parents=True)
    stem = "f" * 228
    scenes = generate(tmp_path / "src", 1, (64, 128))
    shutil.copy(image_files(scenes)[0], folder / f"{stem}.png")
    shutil.copy(gt_files(scenes)[0], folder / "masks" / f"{stem}.png")
    preds, out = tmp_path / "preds", tmp_path / "out.json"
    proc = seglens("evaluate", "--dataset", folder, "--model", good_model, "--save-predictions", preds,
                   "--json", out, "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = list(preds.rglob("*.png"))
    assert len(written) == 1 and written[0].name.endswith("_gtFine_labelIds.png")
    assert len(written[0].name.encode()) <= 200 and written[0].name.startswith("f" * 100)
    assert json.loads(out.read_text())["models"][0]["images_evaluated"] == 1


def test_non_utf8_file_names_in_a_report(tmp_path: Path, good_model: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "masks").mkdir(parents=True)
    scenes = generate(tmp_path / "src", 1, (64, 128))
    name = os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not UTF-8
    shutil.copy(image_files(scenes)[0], folder / name)
    shutil.copy(gt_files(scenes)[0], folder / "masks" / name)
    out, data = tmp_path / "review.html", tmp_path / "review.json"
    pdf, csv = tmp_path / "review.pdf", tmp_path / "csv"
    proc = seglens("report", "--dataset", folder, "--model", good_model, "--out", out, "--json", data,
                   "--pdf", pdf, "--csv", csv, "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "caf%E9-%FF" in out.read_text(encoding="utf-8")
    json.loads(data.read_text(encoding="utf-8"))
    assert "caf%E9-%FF" in (csv / "per_image.csv").read_text(encoding="utf-8")
    assert pdf.read_bytes().startswith(b"%PDF")


# --- bounded arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("evaluate", "--workers", "100000"), "100000 is out of range 1..64"),
        (("evaluate", "--workers", "0"), "0 is out of range 1..64"),
        (("evaluate", "--limit", "0"), "must be 1 or more, got 0"),
        (("report", "--limit", "-3"), "must be 1 or more, got -3"),
        (("gate", "--workers", "500", "--reference", "a", "--candidate", "b"), "500 is out of range 1..64"),
        (("benchmark", "m.onnx", "--limit", "0"), "must be 1 or more, got 0"),
    ],
    ids=["workers-100000", "workers-0", "limit-0", "report-limit", "gate-workers", "benchmark-limit"],
)
def test_out_of_range_arguments_refused(dataset: Path, args, said) -> None:
    command, *rest = args
    extra = [] if command == "benchmark" else ["--dataset", str(dataset)]
    proc = seglens(command, *extra, *rest)
    assert proc.returncode == 2 and said in proc.stderr


def test_damaged_model_safetensors_refused_naming_the_checkpoint(dataset: Path, tmp_path: Path) -> None:
    installed("transformers")
    checkpoint = tmp_path / "segformer"
    checkpoint.mkdir()
    labels = {str(i): name for i, name in enumerate(TRAINIDS.names)}
    config = {"model_type": "segformer", "architectures": ["SegformerForSemanticSegmentation"],
              "hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "num_attention_heads": [1, 1, 2, 2],
              "decoder_hidden_size": 32, "id2label": labels,
              "label2id": {v: int(k) for k, v in labels.items()}}  # fmt: skip
    (checkpoint / "config.json").write_text(json.dumps(config))
    processor = {"image_processor_type": "SegformerImageProcessor", "size": {"height": 64, "width": 128}}
    (checkpoint / "preprocessor_config.json").write_text(json.dumps(processor))
    # A header length, then half a header: what a copy interrupted early leaves. Refused before torch.
    (checkpoint / "model.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00" + b'{"decode_head.w')
    proc = seglens("evaluate", "--dataset", dataset, "--model", checkpoint, "-q")
    assert proc.returncode == 2
    weights = checkpoint / "model.safetensors"
    assert f"{weights}: damaged or truncated safetensors file" in proc.stderr


def test_truncated_keras_archive_refused_naming_it(dataset: Path, tmp_path: Path) -> None:
    installed("keras")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # the layout of a .keras file
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(5000))
    model = tmp_path / "unet.keras"
    model.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    proc = seglens("evaluate", "--dataset", dataset, "--model", model, "-q")
    assert proc.returncode == 2
    assert f"{model}: not a Keras .keras archive (a zip file) or a damaged one" in proc.stderr


def test_a_prediction_that_cannot_be_written_is_named_and_the_rest_written(
    dataset: Path, tmp_path: Path, good_model: Path
) -> None:
    preds, out = tmp_path / "preds", tmp_path / "out.json"
    first = gt_files(dataset)[0]
    blocked = preds / "good" / "val" / first.parent.name / first.name
    blocked.mkdir(parents=True)  # a folder where the first mask must go
    proc = seglens("evaluate", "--dataset", dataset, "--model", good_model, "--save-predictions", preds,
                   "--json", out, "-q")  # fmt: skip
    assert proc.returncode == 2
    assert f"not written: {blocked}" in proc.stderr
    assert json.loads(out.read_text())["models"][0]["images_evaluated"] == 2  # every result kept
    assert len([p for p in preds.rglob("*.png") if p.is_file()]) == 1


def test_export_out_onto_a_folder_refused_at_once(tmp_path: Path) -> None:
    proc = seglens("export", tmp_path / "missing.keras", "--out", tmp_path)
    assert proc.returncode == 2
    assert f"{tmp_path}: is a folder; the ONNX file must be a file path" in proc.stderr
