"""Overlay maths: fixed-point blend against a float reference, exact ends, masks, hidden classes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from app.core.display.overlay import (
    alpha_fixed,
    as_palette,
    blend,
    colorize,
    contours,
    overlay,
    overlay_contours,
)
from app.core.domain.labels import LABELIDS

RNG = np.random.default_rng(42)
# 70 rows x 1000 columns: chunks of 32 rows, so the last chunk is partial (6 rows).
IMAGE = RNG.integers(0, 256, (70, 1000, 3), dtype=np.uint8)
COLORS = RNG.integers(0, 256, (70, 1000, 3), dtype=np.uint8)
LABELS = RNG.integers(0, 34, (70, 1000), dtype=np.uint8)
PALETTE = LABELIDS.palette()


def float_blend(image: np.ndarray, colors: np.ndarray, opacity: float) -> np.ndarray:
    """The naive reference: float64 blend, rounded."""
    return np.rint(image * (1.0 - opacity) + colors * opacity).astype(np.uint8)


def test_colorize_is_a_palette_lookup() -> None:
    out = colorize(LABELS, PALETTE)
    np.testing.assert_array_equal(out, PALETTE[LABELS])
    reused = np.empty_like(out)
    assert colorize(LABELS, PALETTE, out=reused) is reused
    np.testing.assert_array_equal(reused, out)


def test_short_palette_is_padded_with_black() -> None:
    pal = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    full = as_palette(pal)
    assert full.shape == (256, 3) and full.dtype == np.uint8
    out = colorize(np.array([[0, 1, 7]], dtype=np.uint8), pal)
    np.testing.assert_array_equal(out, [[[1, 2, 3], [4, 5, 6], [0, 0, 0]]])
    with pytest.raises(ValueError, match=r"0\.\.255"):
        as_palette(np.array([[0, 0, 300]]))


@pytest.mark.parametrize("opacity", [0.1, 0.25, 0.3, 0.5, 0.66, 0.9, 0.999])
def test_blend_within_one_level_of_float_reference(opacity: float) -> None:
    ours = blend(IMAGE, COLORS, opacity)
    diff = np.abs(ours.astype(np.int16) - float_blend(IMAGE, COLORS, opacity))
    assert diff.max() <= 1
    assert ours.dtype == np.uint8 and ours.shape == IMAGE.shape


def test_blend_fixed_point_formula() -> None:
    image = np.array([[[100, 0, 255]]], dtype=np.uint8)
    colors = np.array([[[200, 255, 0]]], dtype=np.uint8)
    # a = round(0.5 * 256) = 128: (100*128 + 200*128 + 128) >> 8 = 150, (255*128 + 128) >> 8 = 128.
    np.testing.assert_array_equal(blend(image, colors, 0.5), [[[150, 128, 128]]])
    assert alpha_fixed(0.0) == 0 and alpha_fixed(1.0) == 256 and alpha_fixed(0.3) == 77


def test_blend_ends_are_exact() -> None:
    np.testing.assert_array_equal(blend(IMAGE, COLORS, 0.0), IMAGE)
    np.testing.assert_array_equal(blend(IMAGE, COLORS, 1.0), COLORS)
    np.testing.assert_array_equal(overlay(IMAGE, LABELS, PALETTE, 0.0), IMAGE)
    np.testing.assert_array_equal(overlay(IMAGE, LABELS, PALETTE, 1.0), PALETTE[LABELS])


def test_blend_mask_keeps_image_where_false() -> None:
    mask = LABELS < 10
    ours = blend(IMAGE, COLORS, 0.6, mask=mask)
    np.testing.assert_array_equal(ours[~mask], IMAGE[~mask])
    np.testing.assert_array_equal(ours[mask], blend(IMAGE, COLORS, 0.6)[mask])
    assert not np.array_equal(ours[mask], IMAGE[mask])


def test_blend_in_place_matches_copy() -> None:
    expected = blend(IMAGE, COLORS, 0.4, mask=LABELS != 3)
    target = IMAGE.copy()
    assert blend(target, COLORS, 0.4, mask=LABELS != 3, out=target) is target
    np.testing.assert_array_equal(target, expected)


def test_overlay_equals_colorize_then_blend() -> None:
    for opacity in (0.2, 0.5, 0.75):
        np.testing.assert_array_equal(
            overlay(IMAGE, LABELS, PALETTE, opacity), blend(IMAGE, colorize(LABELS, PALETTE), opacity)
        )


def test_overlay_hidden_classes_are_transparent() -> None:
    hidden = {7, 26, 33}
    ours = overlay(IMAGE, LABELS, PALETTE, 0.7, hidden=hidden)
    is_hidden = np.isin(LABELS, list(hidden))
    assert is_hidden.any() and (~is_hidden).any()
    np.testing.assert_array_equal(ours[is_hidden], IMAGE[is_hidden])
    expected = blend(IMAGE, colorize(LABELS, PALETTE), 0.7, mask=~is_hidden)
    np.testing.assert_array_equal(ours, expected)
    target = IMAGE.copy()
    overlay(target, LABELS, PALETTE, 0.7, hidden=hidden, out=target)
    np.testing.assert_array_equal(target, expected)
    # Hiding every class leaves the image untouched.
    np.testing.assert_array_equal(overlay(IMAGE, LABELS, PALETTE, 1.0, hidden=range(256)), IMAGE)


def test_bad_arguments_refused() -> None:
    with pytest.raises(ValueError, match="opacity"):
        blend(IMAGE, COLORS, 1.5)
    with pytest.raises(ValueError, match="opacity"):
        overlay(IMAGE, LABELS, PALETTE, float("nan"))
    with pytest.raises(ValueError, match="labels"):
        overlay(IMAGE, LABELS.astype(np.int32), PALETTE, 0.5)
    with pytest.raises(ValueError, match="do not match"):
        overlay(IMAGE, LABELS[:10], PALETTE, 0.5)
    with pytest.raises(ValueError, match="mask"):
        blend(IMAGE, COLORS, 0.5, mask=LABELS)
    with pytest.raises(ValueError, match="overlap"):
        blend(IMAGE, COLORS, 0.5, out=IMAGE[::-1])
    with pytest.raises(ValueError, match="hidden"):
        overlay(IMAGE, LABELS, PALETTE, 0.5, hidden=[256])


def test_overlay_allocates_no_full_size_temporaries() -> None:
    # 2048x1024: a float64 HxWx3 temporary would be 48 MB, even a uint16 one 12 MB.
    image = np.zeros((1024, 2048, 3), dtype=np.uint8)
    labels = np.zeros((1024, 2048), dtype=np.uint8)
    out = np.empty_like(image)
    tracemalloc.start()
    try:
        overlay(image, labels, PALETTE, 0.5, out=out)
        overlay(image, labels, PALETTE, 0.5, hidden=[0], out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak} bytes"


def test_contours_mark_right_and_lower_changes() -> None:
    labels = np.array(
        [
            [1, 1, 2],
            [1, 1, 2],
            [3, 3, 3],
        ],
        dtype=np.uint8,
    )
    expected = np.array(
        [
            [False, True, False],
            [True, True, True],
            [False, False, False],
        ]
    )
    np.testing.assert_array_equal(contours(labels), expected)
    assert not contours(np.full((5, 5), 4, dtype=np.uint8)).any()


def test_overlay_contours_draws_only_outlines() -> None:
    labels = np.zeros((6, 8), dtype=np.uint8)
    labels[2:4, 3:6] = 26
    image = np.full((6, 8, 3), 9, dtype=np.uint8)
    out = overlay_contours(image, labels, PALETTE)
    edge = contours(labels)
    np.testing.assert_array_equal(out[~edge], image[~edge])
    np.testing.assert_array_equal(out[edge], PALETTE[labels[edge]])
    hidden = overlay_contours(image, labels, PALETTE, hidden=[0])
    np.testing.assert_array_equal(hidden[edge & (labels == 0)], image[edge & (labels == 0)])
    car_edge = edge & (labels == 26)
    assert car_edge.any()
    assert (hidden[car_edge] == PALETTE[26]).all()
