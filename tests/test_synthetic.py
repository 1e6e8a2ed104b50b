"""The synthetic demo data: Cityscapes layout, determinism, consistent instances, a non-trivial task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.labels import EVAL_TRAINIDS, LABEL_BY_ID, LABELIDS
from app.core.scenes.generator import DEFAULT_CITIES, frame_name, generate, main, render_scene

SMALL = (128, 256)
SUFFIXES = ("gtFine_labelIds.png", "gtFine_instanceIds.png", "gtFine_color.png")


def _expected_files(root: Path, count: int, split: str = "val") -> set[Path]:
    files: set[Path] = set()
    for i in range(count):
        city, frame = frame_name(i)
        files.add(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png")
        files.update(root / "gtFine" / split / city / f"{frame}_{suffix}" for suffix in SUFFIXES)
    return files


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("demo") / "cs", 6, size=SMALL, seed=7)


@pytest.fixture(scope="module")
def scenes() -> list:
    return [render_scene(i, SMALL, seed=0) for i in range(10)]


def test_layout_paths_modes_and_sizes(small_set: Path) -> None:
    # Exactly the Cityscapes tree, and nothing else (no temporary files left behind by atomic writes).
    assert _all_files(small_set) == _expected_files(small_set, 6)
    assert {p.name for p in (small_set / "leftImg8bit" / "val").iterdir()} == set(DEFAULT_CITIES)
    for path in sorted(small_set.rglob("*.png")):
        with Image.open(path) as im:
            assert im.format == "PNG"
            assert im.size == (SMALL[1], SMALL[0])
            if path.name.endswith("_labelIds.png"):
                assert im.mode == "L"
            elif path.name.endswith("_instanceIds.png"):
                assert im.mode in ("I;16", "I")
                assert np.asarray(im).max() >= 1000  # 16-bit content, not an 8-bit image in disguise
            else:
                assert im.mode == "RGB"


def test_frame_names_follow_cityscapes() -> None:
    assert frame_name(0) == ("synthburg", "synthburg_000000_000019")
    assert frame_name(4) == ("pixelstadt", "pixelstadt_000001_000019")
    assert frame_name(5, ("a", "b")) == ("b", "b_000002_000019")


def test_official_file_name_parser_accepts_the_names(small_set: Path) -> None:
    cs = pytest.importorskip("cityscapesscripts.helpers.csHelpers")
    for path in small_set.rglob("*.png"):
        info = cs.getCsFileInfo(str(path))
        assert info.city == path.parent.name
        assert len(info.sequenceNb) == 6 and len(info.frameNb) == 6
        assert info.ext == "png"
        if path.parts[-4] == "leftImg8bit":
            assert (info.type, info.type2) == ("leftImg8bit", "")
        else:
            assert info.type == "gtFine"
            assert info.type2 in ("labelIds", "instanceIds", "color")
        core = cs.getCoreImageFileName(str(path))
        gt = small_set / "gtFine" / "val" / info.city / f"{core}_gtFine_labelIds.png"
        assert gt.is_file()


def test_same_seed_gives_identical_bytes_and_prefix(small_set: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", 6, size=SMALL, seed=7, workers=1)
    prefix = generate(tmp_path / "prefix", 3, size=SMALL, seed=7, workers=2)
    for path in _expected_files(small_set, 6):
        assert (again / path.relative_to(small_set)).read_bytes() == path.read_bytes(), path
    for path in _expected_files(prefix, 3):
        assert path.read_bytes() == (small_set / path.relative_to(prefix)).read_bytes(), path


def test_seed_and_split_change_the_scenes() -> None:
    base = render_scene(0, SMALL, seed=0)
    assert not np.array_equal(base.label_ids, render_scene(0, SMALL, seed=1).label_ids)
    assert not np.array_equal(base.label_ids, render_scene(0, SMALL, seed=0, split="train").label_ids)
    assert not np.array_equal(base.label_ids, render_scene(1, SMALL, seed=0).label_ids)


def test_files_hold_the_rendered_scene(small_set: Path) -> None:
    scene = render_scene(4, SMALL, seed=7)
    city, frame = frame_name(4)
    gt_dir = small_set / "gtFine" / "val" / city
    with Image.open(small_set / "leftImg8bit" / "val" / city / f"{frame}_leftImg8bit.png") as im:
        assert np.array_equal(np.asarray(im), scene.image)
    with Image.open(gt_dir / f"{frame}_gtFine_labelIds.png") as im:
        assert np.array_equal(np.asarray(im), scene.label_ids)
    with Image.open(gt_dir / f"{frame}_gtFine_instanceIds.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.int64), scene.instance_ids.astype(np.int64))
    with Image.open(gt_dir / f"{frame}_gtFine_color.png") as im:
        assert np.array_equal(np.asarray(im), LABELIDS.palette()[scene.label_ids])


def test_label_and_instance_ids_are_consistent(scenes: list) -> None:
    for scene in scenes:
        labels = scene.label_ids.astype(np.int64)
        inst = scene.instance_ids.astype(np.int64)
        assert labels.max() <= 33
        assert set(np.unique(labels).tolist()) <= set(LABEL_BY_ID)
        is_instance = inst >= 1000
        assert np.array_equal(inst[is_instance] // 1000, labels[is_instance])
        assert np.array_equal(inst[~is_instance], labels[~is_instance])
        has_instances = np.array([LABEL_BY_ID[i].has_instances for i in range(34)])
        assert has_instances[labels[is_instance]].all()  # stuff never gets an instance number
        for cls in np.unique(labels[is_instance]):
            ks = np.unique(inst[is_instance & (labels == cls)]) % 1000
            assert ks.tolist() == list(range(len(ks)))  # k counts from 0, no gaps


def test_scenes_cover_the_evaluated_classes_and_the_void_cases(scenes: list) -> None:
    lut = EVAL_TRAINIDS.id_to_class()
    present = set()
    for scene in scenes:
        present |= set(np.unique(lut[scene.label_ids]).tolist()) - {255}
    names = {EVAL_TRAINIDS.names[k] for k in present}
    assert len(present) >= 12, names
    assert {"road", "sidewalk", "building", "vegetation", "sky", "car", "person", "pole"} <= names
    assert any((s.label_ids == 1).any() for s in scenes)  # ego vehicle
    assert any(((s.label_ids == 26) & (s.instance_ids == 26)).any() for s in scenes)  # crowd of cars
    assert any((s.instance_ids >= 26000).any() for s in scenes)  # single cars
    for scene in scenes:
        assert (scene.label_ids == 7).mean() > 0.1  # the road is always there


def test_colour_alone_does_not_give_the_class(scenes: list) -> None:
    # Best possible per-colour lookup table, fitted on the very pixels it is scored on (optimistic).
    lut = EVAL_TRAINIDS.id_to_class()
    y = np.concatenate([lut[s.label_ids].ravel() for s in scenes]).astype(np.int64)
    x = np.concatenate([s.image.reshape(-1, 3) for s in scenes]).astype(np.int64) // 16
    keep = y != 255
    key = (x[:, 0] * 256 + x[:, 1] * 16 + x[:, 2])[keep]
    table = np.zeros((4096, 19), dtype=np.int64)
    np.add.at(table, (key, y[keep]), 1)
    accuracy = table.max(axis=1).sum() / keep.sum()
    majority = np.bincount(y[keep]).max() / keep.sum()
    assert majority < accuracy < 0.9


def test_full_size_scene() -> None:
    scene = render_scene(3, (512, 1024), seed=0)
    assert scene.image.shape == (512, 1024, 3) and scene.image.dtype == np.uint8
    assert scene.label_ids.shape == scene.instance_ids.shape == (512, 1024)
    assert scene.instance_ids.dtype == np.uint16
    road = scene.image[scene.label_ids == 7].astype(np.float64)
    assert road.std(axis=0).min() > 3  # textured, not flat colour
    assert len(np.unique(scene.label_ids)) >= 10


def test_progress_is_reported_in_order(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate(tmp_path, 3, size=(48, 96), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, -1)
    with pytest.raises(ValueError):
        generate(tmp_path, 1, cities=("bad_city",))
    with pytest.raises(ValueError):
        render_scene(0, (8, 8))


def test_cli_writes_the_set_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--count", "2", "--size", "64x128", "--seed", "3", "--split", "val"]) == 0
    assert _all_files(out) == _expected_files(out, 2)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "2 scenes" in last and str(out) in last
    with Image.open(next(out.rglob("*_leftImg8bit.png"))) as im:
        assert im.size == (128, 64)
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--size", "big"])
