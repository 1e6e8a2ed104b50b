"""A plain image folder with masks in a custom class scheme, evaluated end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelzoo import centroids_from_colors, make_onnx_segmenter
from PIL import Image

from app.cli import main

COLORS = [(20, 20, 20), (230, 40, 40), (40, 40, 230)]
NAMES = ["background", "apple", "berry"]


def _folder(root: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        mask = np.zeros((48, 64), dtype=np.uint8)
        mask[5:25, 5 + i : 30 + i] = 1
        mask[30:45, 35:60] = 2
        mask[0:2, :] = 255  # ignored border
        image = np.asarray(COLORS, dtype=np.uint8)[np.minimum(mask, 2)]
        image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / f"img{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{i}_mask.png")
    return root


@pytest.fixture
def scheme_file(tmp_path: Path) -> Path:
    path = tmp_path / "fruit-classes.json"
    path.write_text(
        json.dumps(
            {
                "name": "fruit",
                "classes": [{"name": n, "color": list(c)} for n, c in zip(NAMES, COLORS, strict=True)],
            }
        )
    )
    return path


def test_custom_scheme_folder_evaluates_by_class_name(tmp_path, scheme_file) -> None:
    data = _folder(tmp_path / "data")
    # The model lists the classes in another order: mapping is by name, not by index.
    order = [2, 0, 1]
    model = make_onnx_segmenter(
        tmp_path / "fruit.onnx",
        [NAMES[i] for i in order],
        input_size=None,
        weights="centroid",
        centroids=centroids_from_colors([COLORS[i] for i in order]),
        downsample=1,
    )
    out = tmp_path / "r.json"
    code = main(
        [
            "evaluate",
            "--dataset",
            str(data),
            "--gt-scheme",
            str(scheme_file),
            "--model",
            str(model),
            "--json",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["scheme"] == "custom:fruit" and doc["classes"] == NAMES
    classes = doc["models"][0]["metrics"]["classes"]
    assert classes["apple"]["iou"] == pytest.approx(1.0) and classes["berry"]["iou"] == pytest.approx(1.0)
    assert doc["models"][0]["metrics"]["categories"] == {}


def test_custom_scheme_model_with_unknown_class_is_refused(tmp_path, scheme_file, capsys) -> None:
    data = _folder(tmp_path / "data", 1)
    model = make_onnx_segmenter(tmp_path / "m.onnx", ["background", "apple", "cherry"], input_size=None)
    assert (
        main(["evaluate", "--dataset", str(data), "--gt-scheme", str(scheme_file), "--model", str(model)])
        == 2
    )
    assert "'cherry'" in capsys.readouterr().err


def test_bad_scheme_file_names_the_file(tmp_path, capsys) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    data = _folder(tmp_path / "data", 1)
    assert (
        main(["evaluate", "--dataset", str(data), "--gt-scheme", str(bad), "--predictions", str(data)]) == 2
    )
    assert "broken.json" in capsys.readouterr().err
