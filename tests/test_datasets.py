"""Dataset listing (Cityscapes layout, plain folders) and loading, on tiny real PNG files."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.labels import TRAINIDS
from app.core.io.datasets import CityscapesDataset, Dataset, FolderDataset, open_dataset

H, W = 4, 6


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _labelids(seed: int, h: int = H, w: int = W) -> np.ndarray:
    labels = np.full((h, w), 7, dtype=np.uint8)  # road
    labels[0] = 23  # sky
    labels[1, : 1 + seed % (w - 1)] = 26  # some car pixels, different per frame
    return labels


def _frame(root: Path, split: str, city: str, frame: str, seed: int, gt: bool = True) -> None:
    _png(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", _image(seed))
    if gt:
        gt_dir = root / "gtFine" / split / city
        labels = _labelids(seed)
        _png(gt_dir / f"{frame}_gtFine_labelIds.png", labels)
        instances = labels.astype(np.uint16)
        instances[labels == 26] = 26000 + seed
        _png(gt_dir / f"{frame}_gtFine_instanceIds.png", instances)
        _png(gt_dir / f"{frame}_gtFine_color.png", _image(seed + 100))  # present in the real dataset


@pytest.fixture
def cityscapes(tmp_path: Path) -> Path:
    """train: 1 city; val: 2 cities (frankfurt has 2 frames, written out of order); test: no labels."""
    root = tmp_path / "cs"
    _frame(root, "train", "aachen", "aachen_000000_000019", 1)
    _frame(root, "val", "munster", "munster_000001_000019", 2)
    _frame(root, "val", "frankfurt", "frankfurt_000001_000019", 3)
    _frame(root, "val", "frankfurt", "frankfurt_000000_000294", 4)
    _frame(root, "test", "berlin", "berlin_000000_000019", 5, gt=False)
    (root / "leftImg8bit" / "val" / "frankfurt" / "README.txt").write_text("not an image")
    return root


# ------------------------------------------------------------------------------------------- Cityscapes


def test_cityscapes_root_lists_val_by_default(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes)
    assert isinstance(ds, CityscapesDataset) and isinstance(ds, Dataset)
    assert ds.kind == "cityscapes" and ds.split == "val" and ds.root == cityscapes.absolute()
    assert ds.splits() == ["test", "train", "val"]
    assert ds.cities() == ["frankfurt", "munster"]
    assert [r.key for r in ds.refs] == [
        "val/frankfurt/frankfurt_000000_000294",
        "val/frankfurt/frankfurt_000001_000019",
        "val/munster/munster_000001_000019",
    ]
    ref = ds.refs[0]
    assert ref.frame == "frankfurt_000000_000294" and ref.city == "frankfurt" and ref.split == "val"
    gt_dir = cityscapes.absolute() / "gtFine" / "val" / "frankfurt"
    assert ref.image_path.name == "frankfurt_000000_000294_leftImg8bit.png"
    assert ref.gt_path == gt_dir / "frankfurt_000000_000294_gtFine_labelIds.png"
    assert ref.instance_path == gt_dir / "frankfurt_000000_000294_gtFine_instanceIds.png"
    assert len(ds) == 3
    assert ds.describe() == "Cityscapes layout, split val, 2 cities, 3 images, 3 with labels"
    assert ds.find("val/munster/munster_000001_000019") is ds.refs[2]
    assert ds.find("val/nowhere/x") is None


def test_cityscapes_test_split_has_no_gt(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes, split="test")
    assert [r.key for r in ds.refs] == ["test/berlin/berlin_000000_000019"]
    assert ds.refs[0].gt_path is None and ds.refs[0].instance_path is None
    assert ds.describe() == "Cityscapes layout, split test, 1 city, 1 image, 0 with labels"
    sample = ds.load(ds.refs[0])
    assert sample.gt is None and sample.instances is None
    np.testing.assert_array_equal(sample.image, _image(5))


@pytest.mark.parametrize(
    ("inside", "split", "cities"),
    [
        ("leftImg8bit", "val", ["frankfurt", "munster"]),
        ("leftImg8bit/train", "train", ["aachen"]),
        ("leftImg8bit/val/munster", "val", ["munster"]),
        ("gtFine/val", "val", ["frankfurt", "munster"]),
    ],
)
def test_cityscapes_found_from_inside(cityscapes: Path, inside: str, split: str, cities: list[str]) -> None:
    ds = open_dataset(cityscapes / inside)
    assert ds.root == cityscapes.absolute()
    assert ds.split == split and ds.cities() == cities


def test_city_folder_lists_that_city_and_with_split_lists_all(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes / "leftImg8bit" / "val" / "munster")
    assert ds.describe() == "Cityscapes layout, split val, city munster, 1 image, 1 with labels"
    everything = ds.with_split("val")
    assert everything.cities() == ["frankfurt", "munster"]
    train = everything.with_split("train")
    assert train.split == "train" and [r.city for r in train.refs] == ["aachen"]
    assert train.with_split("train") is train


def test_trainids_scheme_reads_label_train_ids_files(cityscapes: Path) -> None:
    gt_dir = cityscapes / "gtFine" / "val" / "munster"
    train_ids = np.full((H, W), 255, dtype=np.uint8)
    train_ids[1:] = 13
    _png(gt_dir / "munster_000001_000019_gtFine_labelTrainIds.png", train_ids)
    ds = open_dataset(cityscapes, gt_scheme=TRAINIDS)
    assert [r.gt_path is not None for r in ds.refs] == [False, False, True]
    sample = ds.load(ds.refs[2])
    assert sample.gt is not None
    np.testing.assert_array_equal(sample.gt, train_ids)


def test_default_split_order(tmp_path: Path) -> None:
    _frame(tmp_path / "a", "train", "x", "x_0", 1)
    _frame(tmp_path / "a", "test", "x", "x_0", 1)
    assert open_dataset(tmp_path / "a").split == "train"
    _frame(tmp_path / "b", "test", "x", "x_0", 1)
    _frame(tmp_path / "b", "zeta", "x", "x_0", 1)
    assert open_dataset(tmp_path / "b").split == "test"
    _frame(tmp_path / "c", "zeta", "x", "x_0", 1)
    _frame(tmp_path / "c", "alpha", "x", "x_0", 1)
    assert open_dataset(tmp_path / "c").split == "alpha"


def test_unknown_split_and_empty_split(cityscapes: Path) -> None:
    with pytest.raises(InputError) as info:
        open_dataset(cityscapes, split="extra")
    assert "no split 'extra'" in str(info.value) and "test, train, val" in str(info.value)
    assert info.value.path == cityscapes.absolute() / "leftImg8bit"
    (cityscapes / "leftImg8bit" / "empty" / "nocity").mkdir(parents=True)
    with pytest.raises(InputError) as info:
        open_dataset(cityscapes, split="empty")
    assert "no images found" in str(info.value) and "empty" in str(info.value)


def test_cityscapes_load_sample(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes)
    sample = ds.load(ds.refs[2])  # munster, seed 2
    assert sample.ref is ds.refs[2]
    np.testing.assert_array_equal(sample.image, _image(2))
    assert sample.gt is not None and sample.instances is not None
    np.testing.assert_array_equal(sample.gt, _labelids(2))
    assert sample.instances.dtype == np.int32
    assert set(np.unique(sample.instances).tolist()) == {7, 23, 26002}
    assert sample.warnings == ()


def test_load_without_image_decodes_no_pixels(cityscapes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.io import datasets

    ds = open_dataset(cityscapes)
    ref = ds.refs[2]
    decoded: list[Path] = []
    real_read_image = datasets.read_image

    def counting_read_image(path: Path) -> np.ndarray:
        decoded.append(Path(path))
        return real_read_image(path)

    monkeypatch.setattr(datasets, "read_image", counting_read_image)
    sample = ds.load(ref, image=False)
    assert decoded == [] and sample.pixels is None
    assert sample.size == (H, W)
    assert sample.gt is not None and sample.instances is not None
    np.testing.assert_array_equal(sample.gt, _labelids(2))
    # Asked for anyway, the image is decoded once, on first use, and is the same as an eager load.
    np.testing.assert_array_equal(sample.image, _image(2))
    assert sample.image is sample.image and decoded == [ref.image_path]
    assert sample.image_digest == ds.load(ref).image_digest


def test_load_without_image_still_checks_sizes_and_files(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes)
    ref = ds.refs[0]
    assert ref.gt_path is not None
    _png(ref.gt_path, _labelids(0, H + 1, W))
    with pytest.raises(InputError) as info:
        ds.load(ref, image=False)
    assert info.value.path == ref.gt_path and f"{W}x{H + 1}" in str(info.value)
    ref.image_path.unlink()
    with pytest.raises(InputError) as info:
        ds.load(ref, image=False)
    assert info.value.path == ref.image_path and "not found" in str(info.value)


def test_lazy_image_whose_pixels_disagree_with_its_header_is_refused(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes)
    ref = ds.refs[1]
    sample = ds.load(ref, image=False)
    _png(ref.image_path, _image(1, H + 2, W))  # replaced between load and use
    with pytest.raises(InputError) as info:
        _ = sample.image
    assert info.value.path == ref.image_path and "header said" in str(info.value)


def test_load_errors_name_the_gt_file(cityscapes: Path) -> None:
    ds = open_dataset(cityscapes)
    ref = ds.refs[0]
    assert ref.gt_path is not None
    train_ids = np.zeros((H, W), dtype=np.uint8)
    train_ids[0] = 255
    _png(ref.gt_path, train_ids)
    with pytest.raises(InputError) as info:
        ds.load(ref)
    assert info.value.path == ref.gt_path and "looks like trainIds" in str(info.value)
    _png(ref.gt_path, _labelids(0, H + 1, W))
    with pytest.raises(InputError) as info:
        ds.load(ref)
    assert info.value.path == ref.gt_path and f"{W}x{H + 1}" in str(info.value)
    ref.image_path.write_bytes(b"garbage")
    with pytest.raises(InputError) as info:
        ds.load(ref)
    assert info.value.path == ref.image_path


def test_listing_5000_files_never_opens_or_stats_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "big"
    for c in range(5):
        city = f"city{c}"
        image_dir = root / "leftImg8bit" / "val" / city
        gt_dir = root / "gtFine" / "val" / city
        image_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(1000):
            frame = f"{city}_{i:06d}_000019"
            (image_dir / f"{frame}_leftImg8bit.png").touch()
            if i % 2 == 0:
                (gt_dir / f"{frame}_gtFine_labelIds.png").touch()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"listing opened a file: {args}")

    stats: list[object] = []
    real_stat = os.stat

    def counting_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        stats.append(path)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", refuse)
        patch.setattr(builtins, "open", refuse)
        patch.setattr(io, "open", refuse)
        patch.setattr(os, "stat", counting_stat)
        ds = open_dataset(root)
    assert len(ds) == 5000 and ds.num_labelled() == 2500
    assert ds.refs[1].gt_path is None and ds.refs[2].gt_path is not None
    assert [r.frame for r in ds.refs[:2]] == ["city0_000000_000019", "city0_000001_000019"]
    assert len(stats) < 20, f"{len(stats)} stat calls: listing must not stat each file"


# ------------------------------------------------------------------------------------------ plain folders


def test_plain_folder_with_suffixed_masks(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    names = ("a.png", "b.jpg", "c.png", "d.bmp", "e.webp", "img10.png")
    for seed, name in enumerate(names, start=1):
        _png(folder / name, _image(seed))
    _png(folder / "img2.tif", _image(7))
    (folder / "notes.txt").write_text("ignored")
    _png(folder / "masks" / "a.png", _labelids(1))
    _png(folder / "masks" / "b_mask.png", _labelids(2))
    _png(folder / "masks" / "c_labelIds.png", _labelids(3))
    _png(folder / "masks" / "D_GT.PNG", _labelids(4))  # case does not matter
    _png(folder / "masks" / "img2_label.png", _labelids(7))
    ds = open_dataset(folder)
    assert isinstance(ds, FolderDataset) and ds.kind == "folder" and ds.split is None
    assert [r.key for r in ds.refs] == ["a", "b", "c", "d", "e", "img2", "img10"]  # natural order
    masks = {r.key: (r.gt_path.name if r.gt_path else None) for r in ds.refs}
    assert masks == {
        "a": "a.png", "b": "b_mask.png", "c": "c_labelIds.png", "d": "D_GT.PNG",
        "e": None, "img2": "img2_label.png", "img10": None,
    }  # fmt: skip
    assert ds.splits() == [] and ds.cities() == []
    assert ds.describe() == "Image folder, 7 images, 5 with labels"
    sample = ds.load(ds.refs[1])
    assert sample.gt is not None
    np.testing.assert_array_equal(sample.gt, _labelids(2))
    assert sample.image.shape == (H, W, 3)  # jpeg: lossy, shape only
    with pytest.raises(InputError):
        ds.with_split("val")
    assert ds.with_split(None) is ds


@pytest.mark.parametrize("mask_folder", ["labels", "gt", "annotations"])
def test_images_subfolder_and_sibling_mask_folders(tmp_path: Path, mask_folder: str) -> None:
    _png(tmp_path / "images" / "x.png", _image(1))
    _png(tmp_path / mask_folder / "x_gt.png", _labelids(1))
    ds = open_dataset(tmp_path)
    assert [r.key for r in ds.refs] == ["images/x"]
    assert ds.refs[0].gt_path == tmp_path.absolute() / mask_folder / "x_gt.png"
    # Opening images/ itself finds the sibling mask folder.
    inner = open_dataset(tmp_path / "images")
    assert [r.key for r in inner.refs] == ["x"]
    assert inner.refs[0].gt_path is not None and inner.refs[0].gt_path.name == "x_gt.png"


def test_folder_load_with_trainids_scheme(tmp_path: Path) -> None:
    _png(tmp_path / "p.png", _image(1))
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[0] = 255
    mask[1] = 18
    _png(tmp_path / "masks" / "p.png", mask)
    ds = open_dataset(tmp_path, gt_scheme=TRAINIDS)
    sample = ds.load(ds.refs[0])
    assert sample.gt is not None
    np.testing.assert_array_equal(sample.gt, mask)
    # The default labelIds scheme refuses the same mask, naming it.
    with pytest.raises(InputError) as info:
        open_dataset(tmp_path).load(ds.refs[0])
    assert info.value.path == tmp_path.absolute() / "masks" / "p.png"


def test_nothing_recognisable(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        open_dataset(tmp_path)
    assert "no images found" in str(info.value) and str(tmp_path) in str(info.value)
    (tmp_path / "readme.md").write_text("hello")
    (tmp_path / "masks").mkdir()
    with pytest.raises(InputError, match="no images found"):
        open_dataset(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(InputError, match="not a folder"):
        open_dataset(tmp_path / "readme.md")
