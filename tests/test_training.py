"""`seglens train`: tiny real training runs (SegFormer and VGG16-UNet), resume, logs, augmentation, errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.errors import InputError
from app.core.scenes.generator import generate, render_scene
from app.training.augment import (
    AugmentConfig,
    augment,
    brightness_contrast,
    gaussian_blur,
    gaussian_noise,
    hflip,
    shift_scale_rotate,
    ssr_matrix,
)
from app.training.cli import main, parse_size
from app.training.data import label_table
from app.training.loop import LOG_COLUMNS, poly_lr

SIZE = "64x128"
TINY_SEGFORMER = json.dumps(
    {
        "hidden_sizes": [8, 16, 24, 32],
        "depths": [1, 1, 1, 1],
        "num_attention_heads": [1, 1, 2, 2],
        "decoder_hidden_size": 32,
    }
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 training and 2 validation scenes at 64x128 (train and val from different seeds)."""
    root = tmp_path_factory.mktemp("train-data")
    generate(root, 6, (64, 128), seed=1, split="train")
    generate(root, 2, (64, 128), seed=2, split="val")
    return root


def _args(data: Path, out: Path, arch: str, scheme: str, epochs: int, *extra: str) -> list[str]:
    return [
        "--dataset",
        str(data),
        "--arch",
        arch,
        "--scheme",
        scheme,
        "--size",
        SIZE,
        "--epochs",
        str(epochs),
        "--batch",
        "3",
        "--lr",
        "1e-3",
        "--out",
        str(out),
        "--workers",
        "2",
        "--seed",
        "3",
        "--threads",
        "1",
        *extra,
    ]


def _check_log(out: Path, epochs: int) -> list[dict[str, str]]:
    with (out / "train_log.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == LOG_COLUMNS
        rows = list(reader)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    for row in rows:
        assert math.isfinite(float(row["train_loss"])) and 0.0 <= float(row["val_miou"]) <= 1.0
        assert float(row["lr"]) > 0 and float(row["epoch_time_s"]) >= 0
    summary = json.loads((out / "train_log.json").read_text(encoding="utf-8"))
    assert summary["columns"] == list(LOG_COLUMNS)
    assert len(summary["epochs"]) == epochs and summary["stopped"] == "completed"
    assert summary["best_epoch"] >= 1 and summary["config"]["size"] == [64, 128]
    return rows


def _check_model(path: Path, scheme: str, classes: int) -> None:
    from app.inference.registry import load_model

    segmenter = load_model(path)
    try:
        assert segmenter.info.scheme == scheme
        assert len(segmenter.info.class_names) == classes
        image = render_scene(0, (64, 128), seed=5, split="val").image
        labels = segmenter.predict(image).labels
        assert labels.shape == (64, 128) and int(labels.max()) < classes
    finally:
        segmenter.close()


def test_segformer_trains_saves_a_loadable_checkpoint_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "sf"
    tiny = ("--arch-config", TINY_SEGFORMER)
    assert main(_args(tiny_data, out, "segformer-b0", "trainids", 1, *tiny)) == 0
    _check_log(out, 1)
    config = json.loads((out / "best" / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"]["0"] == "road" and config["label2id"]["bicycle"] == 18
    assert (out / "best" / "model.safetensors").is_file()
    processor = json.loads((out / "best" / "preprocessor_config.json").read_text(encoding="utf-8"))
    assert processor["size"] == {"height": 64, "width": 128}
    assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406])
    _check_model(out / "best", "trainids", 19)
    # Resume: the second run continues at epoch 2 with the optimizer state of the first.
    assert (
        main(_args(tiny_data, out, "segformer-b0", "trainids", 2, *tiny, "--resume", str(out / "resume")))
        == 0
    )
    rows = _check_log(out, 2)
    assert int(rows[1]["step"]) == 2 * int(rows[0]["step"])


def test_segformer_init_from_a_local_checkpoint_with_other_classes(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from hf_models import save_segformer  # 19 trainId classes; we train 8 categories: a new head

    init = save_segformer(tmp_path / "init")
    out = tmp_path / "sf-init"
    assert main(_args(tiny_data, out, "segformer-b0", "categories", 1, "--init", str(init))) == 0
    _check_model(out / "best", "categories", 8)


def test_vgg16_unet_trains_saves_keras_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    out = tmp_path / "vgg"
    narrow = ("--width", "0.125")
    assert main(_args(tiny_data, out, "vgg16-unet", "categories", 1, *narrow)) == 0
    _check_log(out, 1)
    manifest = json.loads((out / "best" / "model.json").read_text(encoding="utf-8"))
    assert manifest["scheme"] == "categories" and manifest["options"]["normalization"] == "torch"
    _check_model(out / "best" / "model.keras", "categories", 8)
    assert (
        main(_args(tiny_data, out, "vgg16-unet", "categories", 2, *narrow, "--resume", str(out / "resume")))
        == 0
    )
    rows = _check_log(out, 2)
    assert int(rows[1]["step"]) == 2 * int(rows[0]["step"])


def test_vgg16_unet_init_loads_local_imagenet_style_encoder_weights(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keras = pytest.importorskip("keras")
    # Stands in for keras' vgg16 notop ImageNet file (same layer names); built locally, nothing downloaded.
    weights = tmp_path / "vgg16_notop.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None, input_shape=(64, 128, 3)).save_weights(weights)
    out = tmp_path / "vgg-init"
    args = _args(tiny_data, out, "vgg16-unet", "categories", 1, "--width", "0.125", "--init", str(weights))
    assert main(args) == 0
    assert "initialised 13 layers" in capsys.readouterr().out  # the 13 VGG16 convolutions
    manifest = json.loads((out / "best" / "model.json").read_text(encoding="utf-8"))
    assert manifest["options"]["normalization"] == "caffe"  # what ImageNet VGG16 weights expect


def test_resume_refuses_another_architecture(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "sf"
    assert main(_args(tiny_data, out, "segformer-b0", "trainids", 1, "--arch-config", TINY_SEGFORMER)) == 0
    with pytest.raises(InputError, match="checkpoint was trained with"):
        main(
            _args(
                tiny_data,
                tmp_path / "other",
                "segformer-b0",
                "categories",
                2,
                "--arch-config",
                TINY_SEGFORMER,
                "--resume",
                str(out / "resume"),
            )
        )


def _images_only(root: Path) -> Path:
    folder = root / "leftImg8bit" / "train" / "synthburg"
    folder.mkdir(parents=True)
    scene = render_scene(0, (64, 128), seed=1, split="train")
    Image.fromarray(scene.image).save(folder / "synthburg_000000_000019_leftImg8bit.png")
    return root


def test_a_dataset_without_labels_is_refused_clearly(tmp_path: Path) -> None:
    data = _images_only(tmp_path / "nolabels")
    with pytest.raises(InputError, match="needs labels"):
        main(_args(data, tmp_path / "out", "segformer-b0", "trainids", 1, "--val-split", "train"))


def test_unknown_label_ids_are_refused_naming_the_file(tiny_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "badids"
    generate(root, 2, (64, 128), seed=1, split="train")
    label = next((root / "gtFine" / "train").rglob("*_labelIds.png"))
    values = np.array(Image.open(label))
    values[:4, :4] = 200  # not a Cityscapes labelId
    Image.fromarray(values).save(label)
    with pytest.raises(InputError, match="labelIds"):
        main(_args(root, tmp_path / "out", "segformer-b0", "trainids", 1, "--val-dataset", str(tiny_data)))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "--dataset",
                "x",
                "--arch",
                "resnet",
                "--scheme",
                "trainids",
                "--size",
                SIZE,
                "--epochs",
                "1",
                "--out",
                "y",
            ]
        )
    with pytest.raises(Exception, match="multiples of 32"):
        parse_size("100x200")


def test_label_tables_follow_the_evaluation_schemes() -> None:
    trainids, categories = label_table("trainids"), label_table("categories")
    assert trainids[7] == 0 and trainids[26] == 13 and trainids[33] == 18  # road, car, bicycle
    assert trainids[0] == 255 and trainids[6] == 255 and trainids[255] == 255  # unlabeled, ground: ignored
    assert categories[7] == 1 and categories[26] == 7 and categories[23] == 5  # flat, vehicle, sky
    assert categories[0] == 255  # void is never evaluated, so never trained


def test_poly_lr_warms_up_decays_and_respects_a_time_budget() -> None:
    assert poly_lr(0, 100, 1.0, 10) == pytest.approx(0.01)
    assert poly_lr(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert poly_lr(55, 100, 1.0, 10) == pytest.approx(0.5**0.9)
    assert poly_lr(100, 100, 1.0, 10) == 0.0
    assert poly_lr(20, 100, 1.0, 10, time_used=0.5) == pytest.approx(0.5**0.9)  # time ahead of steps


# ------------------------------------------------------------------------------------------ augmentation


def _scene() -> tuple[np.ndarray, np.ndarray]:
    scene = render_scene(3, (64, 128), seed=4, split="train")
    return scene.image, scene.label_ids


def test_flip_mirrors_image_and_label_together() -> None:
    image, label = _scene()
    config = AugmentConfig(flip_p=1.0, color_p=0.0, ssr_p=0.0, noise_p=0.0, blur_p=0.0)
    out_image, out_label = augment(image, label, np.random.default_rng(0), config)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_label, label[:, ::-1])
    assert hflip(image, label)[1].flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("shift", "scale", "angle"), [((0.1, 0.0), 1.0, 0.0), ((0.05, -0.1), 1.1, 8.0), ((0.0, 0.0), 0.9, -10.0)]
)
def test_shift_scale_rotate_moves_a_known_pixel_where_the_matrix_says(
    shift: tuple[float, float], scale: float, angle: float
) -> None:
    image = np.zeros((64, 128, 3), np.uint8)
    label = np.full((64, 128), 7, np.uint8)
    y, x = 20, 40
    label[y - 2 : y + 3, x - 2 : x + 3] = 26  # a 5x5 marker around pixel (x, y)
    image[y - 2 : y + 3, x - 2 : x + 3] = 255
    out_image, out_label = shift_scale_rotate(image, label, shift, scale, angle)
    # Pixel centres sit at +0.5: map the centre of (x, y), read the pixel it falls in.
    tx, ty = ssr_matrix((64, 128), shift, scale, angle) @ np.array([x + 0.5, y + 0.5, 1.0])
    assert out_label[int(ty), int(tx)] == 26
    assert out_image[int(ty), int(tx)].min() > 200
    assert set(np.unique(out_label)) <= {7, 26, 255}  # nearest: only original values, 255 outside


def test_shift_fills_uncovered_label_pixels_with_ignore() -> None:
    _, label = _scene()
    _, out = shift_scale_rotate(np.zeros((64, 128, 3), np.uint8), label, (0.25, 0.0), 1.0, 0.0)
    assert (out[:, :30] == 255).all()
    np.testing.assert_array_equal(out[:, 40:], label[:, 8:96])


def test_random_augmentation_keeps_label_values_and_is_reproducible() -> None:
    image, label = _scene()
    config = AugmentConfig(flip_p=0.5, color_p=1.0, ssr_p=1.0, noise_p=1.0, blur_p=1.0)
    first = augment(image, label, np.random.default_rng(11), config)
    second = augment(image, label, np.random.default_rng(11), config)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert set(np.unique(first[1])) <= set(np.unique(label)) | {255}
    assert first[0].dtype == np.uint8 and first[0].shape == image.shape


def test_photometric_changes_leave_the_label_alone() -> None:
    image, _ = _scene()
    rng = np.random.default_rng(0)
    for out in (
        brightness_contrast(image, 0.1, 1.2),
        gaussian_noise(image, 5.0, rng),
        gaussian_blur(image, 1.0),
    ):
        assert out.shape == image.shape and out.dtype == np.uint8
    assert brightness_contrast(image, 0.0, 1.0).astype(int) == pytest.approx(image.astype(int), abs=1)


def test_importing_the_training_cli_loads_no_framework() -> None:
    code = (
        "import sys, app.cli, app.training.cli\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'keras', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
