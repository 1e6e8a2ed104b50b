"""Image and label I/O: mode conversions, validation messages that name the file, atomic writes.

Every test runs twice: with the fast PNG decoder (when imagecodecs is installed) and with Pillow only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.labels import CATEGORIES, LABELIDS, TRAINIDS
from app.core.io import pngdecode
from app.core.io.imageio import (
    EQUAL_CHANNELS_WARNING,
    read_image,
    read_instances,
    read_label,
    write_label_png,
)


@pytest.fixture(autouse=True, params=["default", "pillow"])
def png_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test with the default decoder choice and again with $SEGLENS_PNG_DECODER=pillow."""
    if request.param == "pillow":
        monkeypatch.setenv(pngdecode.DECODER_ENV, "pillow")
    else:
        monkeypatch.delenv(pngdecode.DECODER_ENV, raising=False)
    pngdecode.reset()
    yield pngdecode.decoder_name()
    pngdecode.reset()


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def _labelids_map(h: int = 6, w: int = 8) -> np.ndarray:
    """A small map that looks like real labelIds: road, building, sky, car, some void."""
    labels = np.full((h, w), 7, dtype=np.uint8)
    labels[0, :] = 23
    labels[1, :] = 11
    labels[2, 2:5] = 26
    labels[-1, :] = 1
    return labels


def assert_input_error(exc: InputError, path: Path, *fragments: str) -> None:
    """The error is about `path`, its message names the file and says each fragment."""
    assert exc.path == path
    assert str(path) in str(exc)
    for fragment in fragments:
        assert fragment in str(exc), f"{fragment!r} not in {exc}"


# ------------------------------------------------------------------------------------------------ images


def test_read_image_rgb_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = read_image(_save(tmp_path / "a.png", rgb))
    assert image.dtype == np.uint8 and image.shape == (5, 7, 3)
    np.testing.assert_array_equal(image, rgb)


def test_read_image_grey_and_palette(tmp_path: Path) -> None:
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    out = read_image(_save(tmp_path / "g.png", grey))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))

    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 150, 100] + [0, 0, 0] * 254)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), [[[10, 20, 30], [200, 150, 100]]])


def test_read_image_drops_alpha_without_compositing(tmp_path: Path) -> None:
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 128]]], dtype=np.uint8)
    out = read_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(out, rgba[:, :, :3])


def test_read_image_16bit_grey_scaled_to_8_bits(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = _save(tmp_path / "d.png", values)
    assert Image.open(path).mode.startswith("I;16")
    out = read_image(path)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 1, 128, 255]])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_read_image_cmyk(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "c.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "c.tif"), np.full((2, 3, 3), (255, 0, 0)))


def test_read_image_ignores_exif_orientation(tmp_path: Path) -> None:
    # Orientation 6 means "rotate 90° to display"; applying it would turn 4x2 into 2x4 and misalign labels.
    img = Image.fromarray(np.zeros((2, 4, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "r.jpg", exif=exif)
    assert Image.open(tmp_path / "r.jpg").getexif()[0x0112] == 6
    assert read_image(tmp_path / "r.jpg").shape == (2, 4, 3)


def test_read_image_bad_files_name_the_file(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.png", np.zeros((64, 64, 3), dtype=np.uint8) + 7)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    missing = tmp_path / "missing.png"
    cases = ((truncated, "cannot decode"), (text, "not a readable image"), (missing, "not found"))
    for path, fragment in cases:
        with pytest.raises(InputError) as info:
            read_image(path)
        assert_input_error(info.value, path, fragment)
    with pytest.raises(InputError) as info:
        read_image(tmp_path)
    assert_input_error(info.value, tmp_path, "is a folder")


def test_read_image_corrupt_png_body(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.png", np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = b"\xff" * 32  # garbage inside the compressed stream
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        read_image(path)
    assert_input_error(info.value, path)


# ------------------------------------------------------------------------------------------------ labels


def test_read_label_grey_labelids(tmp_path: Path) -> None:
    labels = _labelids_map()
    out, warnings = read_label(_save(tmp_path / "l.png", labels), LABELIDS, (6, 8))
    np.testing.assert_array_equal(out, labels)
    assert out.dtype == np.uint8 and warnings == ()


def test_read_label_palette_uses_indices_when_the_palette_is_the_identity(tmp_path: Path) -> None:
    labels = _labelids_map()
    img = Image.new("P", (8, 6))
    img.putdata(labels.ravel().tolist())
    # The indexed Cityscapes colour PNG: each index holds its own labelId's colour.
    img.putpalette([c for i in range(256) for c in (LABELIDS.colors[i] if i < 34 else (i, i, i))])
    path = tmp_path / "p.png"
    img.save(path)
    assert Image.open(path).mode == "P"
    out, warnings = read_label(path, LABELIDS)
    np.testing.assert_array_equal(out, labels)
    assert warnings == ()


def test_read_label_palette_of_unknown_colours_refused(tmp_path: Path) -> None:
    labels = _labelids_map()
    img = Image.new("P", (8, 6))
    img.putdata(labels.ravel().tolist())
    img.putpalette([c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, 5)])
    path = tmp_path / "p.png"
    img.save(path)
    with pytest.raises(InputError, match="palette label whose colours"):
        read_label(path, LABELIDS)


def test_read_label_16bit(tmp_path: Path) -> None:
    labels = _labelids_map().astype(np.uint16)
    out, _ = read_label(_save(tmp_path / "l16.png", labels), LABELIDS, (6, 8))
    np.testing.assert_array_equal(out, labels)
    assert out.dtype == np.uint8


def test_read_label_values_above_255_refused(tmp_path: Path) -> None:
    labels = _labelids_map().astype(np.uint16)
    labels[0, 0] = 26001  # an instanceIds file opened as labels
    path = _save(tmp_path / "inst.png", labels)
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(info.value, path, "0..255", "26001")


def test_read_label_equal_rgb_channels_warn(tmp_path: Path) -> None:
    labels = _labelids_map()
    path = _save(tmp_path / "rgb.png", np.repeat(labels[:, :, None], 3, axis=2))
    out, warnings = read_label(path, LABELIDS, (6, 8))
    np.testing.assert_array_equal(out, labels)
    assert warnings == (EQUAL_CHANNELS_WARNING,)
    assert EQUAL_CHANNELS_WARNING == "3-channel label with equal channels read as single channel"


def test_read_label_colour_image_refused(tmp_path: Path) -> None:
    rgb = np.repeat(_labelids_map()[:, :, None], 3, axis=2)
    rgb[3, 3] = (128, 64, 128)  # one coloured pixel is enough
    path = _save(tmp_path / "colour.png", rgb)
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(
        info.value, path, "label has 3 different channels: looks like a colour image, expected an id map"
    )


def test_read_label_float_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(_labelids_map().astype(np.float32)).save(path)
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(info.value, path, "floating-point")


def test_read_label_size_mismatch_gives_both_sizes(tmp_path: Path) -> None:
    path = _save(tmp_path / "l.png", _labelids_map(6, 8))
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS, (1024, 2048))
    assert_input_error(info.value, path, "8x6", "2048x1024")


def test_read_label_invalid_values_listed_with_counts(tmp_path: Path) -> None:
    labels = np.zeros((10, 30), dtype=np.uint8)
    labels[0, :22] = np.arange(19, 41)  # 22 bad values, one pixel each
    labels[1, :5] = 40  # 40 now has 6 pixels
    path = _save(tmp_path / "bad.png", labels)
    with pytest.raises(InputError) as info:
        read_label(path, TRAINIDS)
    message = str(info.value)
    assert_input_error(info.value, path, "trainids", "19 (1 px)", "28 (1 px)", "and 12 more")
    assert "29 (" not in message and "40 (6 px)" not in message  # only the first 10 are listed
    # The same values are fine in labelIds up to 33, so only 34..40 are reported there.
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(info.value, path, "34 (1 px)", "40 (6 px)")
    assert "33 (" not in str(info.value)


def test_read_label_custom_scheme_range(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 7, 8]], dtype=np.uint8)
    path = _save(tmp_path / "cat.png", labels)
    with pytest.raises(InputError) as info:
        read_label(path, CATEGORIES)
    assert_input_error(info.value, path, "8 (1 px)", "valid: 0..7")
    out, _ = read_label(_save(tmp_path / "ok.png", labels[:, :3]), CATEGORIES)
    np.testing.assert_array_equal(out, labels[:, :3])


def test_trainids_with_ignore_detected_when_labelids_expected(tmp_path: Path) -> None:
    train = np.array([[0, 0, 1, 2], [13, 10, 255, 255]], dtype=np.uint8)
    path = _save(tmp_path / "x_gtFine_trainIds.png", train)
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(info.value, path, "looks like trainIds", "labelIds (0..33) are expected")
    # The same file is fine as trainIds.
    out, _ = read_label(path, TRAINIDS)
    np.testing.assert_array_equal(out, train)


def test_trainids_without_ignore_detected_by_void_majority(tmp_path: Path) -> None:
    # road (0), sidewalk (1), building (2) dominate a trainIds map; as labelIds they would all be void.
    train = np.zeros((4, 10), dtype=np.uint8)
    train[1] = 2
    train[2, :5] = 1
    train[3, :3] = (10, 13, 8)
    path = _save(tmp_path / "t.png", train)
    with pytest.raises(InputError) as info:
        read_label(path, LABELIDS)
    assert_input_error(info.value, path, "looks like trainIds", "labelIds (0..33) are expected")
    # Callers that know better (e.g. reading back a weak model's labelIds predictions) can opt out.
    out, _ = read_label(path, LABELIDS, detect_trainids=False)
    np.testing.assert_array_equal(out, train)


def test_real_looking_labelids_not_mistaken_for_trainids(tmp_path: Path) -> None:
    # Mostly void (ego vehicle, border) but with a car (26): that is a labelIds map.
    labels = np.ones((4, 10), dtype=np.uint8)
    labels[0, 0] = 26
    out, _ = read_label(_save(tmp_path / "a.png", labels), LABELIDS)
    assert out[0, 0] == 26
    # Entirely 'unlabeled' is an empty annotation, not a trainIds map.
    read_label(_save(tmp_path / "b.png", np.zeros((4, 10), dtype=np.uint8)), LABELIDS)
    # Values < 19 without void majority (road, building, pole): fine as labelIds.
    mixed = np.array([[7, 7, 11, 17], [7, 0, 11, 8]], dtype=np.uint8)
    read_label(_save(tmp_path / "c.png", mixed), LABELIDS)


def test_read_label_bad_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone_gtFine_labelIds.png"
    with pytest.raises(InputError) as info:
        read_label(missing, LABELIDS)
    assert_input_error(info.value, missing, "not found")
    text = tmp_path / "t.png"
    text.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with pytest.raises(InputError) as info:
        read_label(text, LABELIDS)
    assert_input_error(info.value, text)


# --------------------------------------------------------------------------------------------- instances


def test_read_instances_16bit_png(tmp_path: Path) -> None:
    inst = np.zeros((4, 6), dtype=np.uint16)
    inst[:2, :3] = 26001
    inst[2:, :] = 7
    inst[3, 5] = 24012
    out = read_instances(_save(tmp_path / "i_gtFine_instanceIds.png", inst), (4, 6))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, inst.astype(np.int32))


def test_read_instances_32bit(tmp_path: Path) -> None:
    inst = np.array([[26001, 70000], [7, 0]], dtype=np.int32)
    path = tmp_path / "i.tif"
    Image.fromarray(inst).save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(read_instances(path), inst)


def test_read_instances_refusals(tmp_path: Path) -> None:
    path = _save(tmp_path / "i.png", np.zeros((4, 6), dtype=np.uint16))
    with pytest.raises(InputError) as info:
        read_instances(path, (4, 7))
    assert_input_error(info.value, path, "6x4", "7x4")
    rgb = _save(tmp_path / "c.png", np.zeros((4, 6, 3), dtype=np.uint8))
    with pytest.raises(InputError) as info:
        read_instances(rgb)
    assert_input_error(info.value, rgb, "mode RGB")


# ---------------------------------------------------------------------------------------------- writing


def test_write_label_png_round_trip_atomic(tmp_path: Path) -> None:
    labels = np.random.default_rng(3).integers(0, 34, (9, 13), dtype=np.uint8)
    target = tmp_path / "out" / "pred.png"
    write_label_png(target, labels)
    with Image.open(target) as img:
        assert img.mode == "L" and img.format == "PNG"
    np.testing.assert_array_equal(read_label(target, LABELIDS)[0], labels)
    assert sorted(p.name for p in target.parent.iterdir()) == ["pred.png"]  # no temp file left behind
    write_label_png(target, np.zeros((9, 13), dtype=np.uint8))  # overwrite in place
    assert np.asarray(Image.open(target)).max() == 0


def test_write_label_png_refuses_wrong_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_label_png(tmp_path / "x.png", np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="HxW"):
        write_label_png(tmp_path / "x.png", np.zeros((3, 3, 3), dtype=np.uint8))
    assert not (tmp_path / "x.png").exists()


def test_value_counts_equal_bincount() -> None:
    from app.core.io.imageio import value_counts

    rng = np.random.default_rng(4)
    for shape in [(6, 8), (5, 7), (1, 1), (0, 4)]:
        labels = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(value_counts(labels), np.bincount(labels.ravel(), minlength=256))
    strided = rng.integers(0, 256, (10, 12), dtype=np.uint8)[:, ::3]
    np.testing.assert_array_equal(value_counts(strided), np.bincount(strided.ravel(), minlength=256))
