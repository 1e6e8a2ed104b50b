"""The Qt-free helpers the window uses, tested where they live (app/core, app/inference), without Qt:
the dataset seen through its project, the image table's names and thumbnails, the confusion drill-down
ranking and what the registry takes as a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from modelzoo import make_onnx_segmenter
from PIL import Image

from app.core.domain.labels import TRAINIDS, eval_scheme_by_key
from app.core.domain.metrics import aggregate
from app.core.io.datasets import SampleRef, open_dataset
from app.core.io.image_table import short_name, thumbnail
from app.core.scenes.generator import generate
from app.core.storage.edited import EditedDataset, open_project
from app.core.storage.project import default_project_path
from app.evaluation.drilldown import rank_images
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.registry import is_model_path, load_model

SIZE = (64, 128)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("scenes") / "data", 4, size=SIZE, seed=3)


def _copy_dataset(scenes: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(scenes, target)
    return target


def test_edited_dataset_serves_the_edit_and_the_originals_elsewhere(tmp_path, monkeypatch, scenes) -> None:
    monkeypatch.setenv("SEGLENS_CACHE", str(tmp_path / "cache"))
    dataset = open_dataset(_copy_dataset(scenes, tmp_path / "data"))
    project = open_project(dataset)
    try:
        assert project.path == default_project_path(
            dataset.root
        )  # writable dataset: the project is beside it
        edited_ref, other_ref = dataset.refs[0], dataset.refs[1]
        original = dataset.load(edited_ref).gt
        assert original is not None
        edit = original.copy()
        edit[:8, :8] = 7  # road
        project.save_edit(edited_ref, edit)
        view = EditedDataset(dataset, project)
        assert view.refs == dataset.refs and view.cities() == dataset.cities()
        np.testing.assert_array_equal(view.load(edited_ref).gt, edit)
        np.testing.assert_array_equal(view.load(other_ref).gt, dataset.load(other_ref).gt)
        np.testing.assert_array_equal(view.load(edited_ref).image, dataset.load(edited_ref).image)
    finally:
        project.close()


def test_open_project_falls_back_to_the_cache_when_the_dataset_cannot_hold_it(tmp_path, monkeypatch, scenes):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEGLENS_CACHE", str(cache))
    dataset = open_dataset(_copy_dataset(scenes, tmp_path / "data"))
    default_project_path(dataset.root).mkdir()  # a folder where the project file would go: unusable
    project = open_project(dataset)
    try:
        assert project.path.parent == cache / "projects" and project.path.suffix == ".sqlite"
        assert project.dataset_path is not None and project.dataset_path.resolve() == dataset.root.resolve()
    finally:
        project.close()
    again = open_project(dataset)  # the same dataset finds the same fallback project
    try:
        assert again.path == project.path
    finally:
        again.close()


def test_short_name_keeps_the_city() -> None:
    # Frames of different cities share their numbers: the name the user sees is the file's, city and all.
    ref = SampleRef(
        "val/aachen/aachen_000001_000019", Path("x.png"), None, None, "val", "aachen", "aachen_000001_000019"
    )
    assert short_name(ref) == "aachen_000001_000019"
    bare = SampleRef("val/bonn/000001", Path("000001.png"), None, None, "val", "bonn", "000001")
    assert short_name(bare) == "bonn/000001"
    plain = SampleRef("img", Path("img.png"), None, None, None, None, "img")
    assert short_name(plain) == "img"


def test_thumbnail_is_small_rgb_and_none_for_unreadable_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (200, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).convert("L").save(tmp_path / "gray.jpg", quality=90)
    small = thumbnail(tmp_path / "a.png", (64, 64))
    assert small is not None and small.shape == (32, 64, 3) and small.dtype == np.uint8
    gray = thumbnail(tmp_path / "gray.jpg", (64, 64))
    assert gray is not None and gray.shape[2] == 3 and max(gray.shape[:2]) == 64
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert thumbnail(tmp_path / "broken.png", (64, 64)) is None
    assert thumbnail(tmp_path / "missing.png", (64, 64)) is None


def test_rank_images_orders_by_the_confusion_and_sums_to_the_model_matrix(tmp_path, scenes) -> None:
    model = load_model(make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, seed=4))
    try:
        dataset = open_dataset(scenes)
        evaluation = Evaluator(dataset, [SegmenterPredictor(model)], eval_scheme_by_key("trainids")).run()
    finally:
        model.close()
    result = evaluation.models[0]
    members = result.scheme.members
    total = aggregate(result.matrix, members)
    k = len(members)
    off = total[:, :k].copy()
    np.fill_diagonal(off, 0)
    gt, pred = np.unravel_index(int(np.argmax(off)), off.shape)
    assert off[gt, pred] > 0  # a random model confuses something
    ranked = rank_images(result, int(gt), int(pred))
    counts = [count for _, count in ranked]
    assert counts == sorted(counts, reverse=True) and all(c > 0 for c in counts)
    assert sum(counts) == total[gt, pred]
    assert {key for key, _ in ranked} <= set(result.images)
    assert rank_images(result, int(gt), int(pred), limit=1) == ranked[:1]


def test_is_model_path_knows_every_backend_and_checkpoint_folders(tmp_path, scenes) -> None:
    for name in ("m.onnx", "m.keras", "M.H5", "m.hdf5", "m.json", "m.yaml", "m.yml"):
        (tmp_path / name).write_bytes(b"")
        assert is_model_path(tmp_path / name), name
    for name in ("image.png", "notes.txt", "noext"):
        (tmp_path / name).write_bytes(b"")
        assert not is_model_path(tmp_path / name), name
    checkpoint = tmp_path / "segformer"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    assert not is_model_path(checkpoint)  # config.json alone: no weights, not a checkpoint
    (checkpoint / "model.safetensors").write_bytes(b"")
    assert is_model_path(checkpoint)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    (sharded / "pytorch_model.bin.index.json").write_text("{}")
    assert is_model_path(sharded)
    assert not is_model_path(scenes)  # a Cityscapes-layout dataset folder
