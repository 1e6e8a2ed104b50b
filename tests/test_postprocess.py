"""Upsampling of class scores: the boundary-only shortcut must equal the full bilinear + argmax."""

from __future__ import annotations

import numpy as np
import pytest

from app.inference.postprocess import (
    _Cells,
    bilinear_table,
    nearest_table,
    resize_labels_nearest,
    upsample_argmax,
    upsample_argmax_naive,
)


def _torch_source_index(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's align_corners=False source index, written out independently of the app's code:
    real = (in/out) * (dst + 0.5) - 0.5, clamped at 0; i0 = floor(real), i1 = min(i0 + 1, in - 1)."""
    scale = np.float32(in_size) / np.float32(out_size)
    real = np.array(
        [
            max(np.float32(0.0), scale * (np.float32(d) + np.float32(0.5)) - np.float32(0.5))
            for d in range(out_size)
        ],
        dtype=np.float32,
    )
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = (real - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, lam


def reference_bilinear(scores: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(K, h, w) -> (K, H, W) like torch.nn.functional.interpolate(mode='bilinear', align_corners=False)."""
    _, h, w = scores.shape
    y0, y1, ly = _torch_source_index(h, out_h)
    x0, x1, lx = _torch_source_index(w, out_w)
    one = np.float32(1.0)
    # PyTorch's per-pixel order: h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d)
    horiz = (one - lx) * scores[:, :, x0] + lx * scores[:, :, x1]
    return (one - ly)[:, None] * horiz[:, y0, :] + ly[:, None] * horiz[:, y1, :]


def reference_labels(scores: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    return np.argmax(reference_bilinear(scores, out_h, out_w), axis=0).astype(np.uint8)


def smooth_scores(num_classes: int, h: int, w: int, seed: int = 0, period: float = 4.0) -> np.ndarray:
    """Low-frequency class scores: large regions, few boundaries, like a real model's logits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [
        np.sin(xx / (period * rng.uniform(0.5, 1.5)) + rng.uniform(0, 6))
        * np.cos(yy / (period * rng.uniform(0.5, 1.5)) + rng.uniform(0, 6))
        for _ in range(num_classes)
    ]
    return np.stack(planes).astype(np.float32)


def test_reference_matches_known_pytorch_values():
    # torch.nn.functional.interpolate([[1, 2], [3, 4]], size=(4, 4), mode="bilinear", align_corners=False)
    expected = np.array(
        [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]],
        dtype=np.float32,
    )
    got = reference_bilinear(np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32), 4, 4)[0]
    np.testing.assert_array_equal(got, expected)


def test_bilinear_table_follows_pytorch_formula():
    table = bilinear_table(2, 4)
    np.testing.assert_array_equal(table.i0, [0, 0, 0, 1])
    np.testing.assert_array_equal(table.i1, [1, 1, 1, 1])
    np.testing.assert_allclose(table.w1, [0.0, 0.25, 0.75, 0.25])
    for in_size, out_size in [(7, 23), (16, 64), (13, 100), (5, 3)]:
        i0, i1, lam = _torch_source_index(in_size, out_size)
        table = bilinear_table(in_size, out_size)
        np.testing.assert_array_equal(table.i0, i0)
        np.testing.assert_array_equal(table.i1, i1)
        np.testing.assert_array_equal(table.w1, lam)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_integer_factors_equal_reference(factor: int, kind: str):
    h, w = 7, 11  # odd sizes
    scores = (
        np.random.default_rng(factor).normal(size=(5, h, w)).astype(np.float32)
        if kind == "random"
        else smooth_scores(5, h, w, seed=factor)
    )
    expected = reference_labels(scores, h * factor, w * factor)
    np.testing.assert_array_equal(upsample_argmax(scores, (h * factor, w * factor)), expected)
    np.testing.assert_array_equal(upsample_argmax_naive(scores, (h * factor, w * factor)), expected)


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((13, 17), (40, 53)), ((9, 31), (50, 97)), ((16, 32), (61, 129)), ((5, 3), (37, 29)), ((1, 4), (9, 15))],
)
def test_non_integer_factors_equal_reference(in_size, out_size):
    rng = np.random.default_rng(sum(out_size))
    for scores in (rng.normal(size=(19, *in_size)).astype(np.float32), smooth_scores(19, *in_size)):
        expected = reference_labels(scores, *out_size)
        np.testing.assert_array_equal(upsample_argmax(scores, out_size), expected)


def test_channels_last_equals_channels_first():
    scores = smooth_scores(8, 12, 20, seed=3)
    expected = reference_labels(scores, 48, 70)
    np.testing.assert_array_equal(
        upsample_argmax(scores.transpose(1, 2, 0), (48, 70), channels_last=True), expected
    )


def test_realistic_size_smooth_scores_uses_few_boundary_pixels():
    scores = smooth_scores(19, 64, 128, seed=1, period=16.0)
    out = (256, 512)
    labels = upsample_argmax(scores, out)
    np.testing.assert_array_equal(labels, reference_labels(scores, *out))
    ty, tx = bilinear_table(64, 256), bilinear_table(128, 512)
    cells = _Cells(scores, ty, tx)
    agree = cells.agreeing()
    # The shortcut only pays off when most cells are decided by their corners' agreement.
    assert (~agree).mean() < 0.25
    decided = agree[ty.i0][:, tx.i0]
    np.testing.assert_array_equal(cells.low[ty.i0][:, tx.i0][decided], labels[decided])


def test_exact_ties_resolve_to_the_first_class():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, size=(6, 9, 13)).astype(np.float32)  # many exact ties between classes
    for out in [(36, 52), (27, 39), (40, 61)]:
        np.testing.assert_array_equal(upsample_argmax(scores, out), reference_labels(scores, *out))
    flat = np.zeros((4, 5, 5), dtype=np.float32)
    assert not upsample_argmax(flat, (20, 20)).any()


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((20, 30), (20, 30)), ((20, 30), (10, 13)), ((20, 30), (40, 30)), ((20, 30), (17, 61))],
)
def test_not_upsampling_on_both_axes_falls_back_to_full_computation(in_size, out_size):
    scores = np.random.default_rng(2).normal(size=(7, *in_size)).astype(np.float32)
    np.testing.assert_array_equal(upsample_argmax(scores, out_size), reference_labels(scores, *out_size))


def test_float64_and_float16_scores_are_accepted():
    scores = smooth_scores(4, 6, 9)
    expected = reference_labels(scores, 24, 36)
    np.testing.assert_array_equal(upsample_argmax(scores.astype(np.float64), (24, 36)), expected)
    assert upsample_argmax(scores.astype(np.float16), (24, 36)).shape == (24, 36)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="scores must be"):
        upsample_argmax(np.zeros((4, 4), dtype=np.float32), (8, 8))
    with pytest.raises(ValueError, match="classes"):
        upsample_argmax(np.zeros((300, 4, 4), dtype=np.float32), (8, 8))


def test_nearest_table_is_centre_aligned():
    np.testing.assert_array_equal(nearest_table(3, 7), [0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest_table(2, 4), [0, 0, 1, 1])
    np.testing.assert_array_equal(nearest_table(4, 2), [1, 3])


def test_resize_labels_nearest():
    labels = np.array([[0, 1], [2, 3]], dtype=np.int64)
    out = resize_labels_nearest(labels, (4, 6))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.repeat(np.repeat(labels, 2, axis=0), 3, axis=1))
    same = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(resize_labels_nearest(same, (3, 4)), same)
    with pytest.raises(ValueError, match="labels must be"):
        resize_labels_nearest(np.zeros((1, 2, 2), dtype=np.uint8), (4, 4))


@pytest.mark.parametrize("factor", [16, 24, 32])
@pytest.mark.parametrize("kind", ["smooth", "quantized", "ties", "random"])
def test_large_factors_with_sub_block_refinement_equal_reference(factor: int, kind: str):
    # x16 and more: boundary cells are settled per 8x8 sub-block (the demo SegFormer's x32 case).
    h, w = 5, 7
    rng = np.random.default_rng(factor)
    if kind == "smooth":
        scores = smooth_scores(19, h, w, seed=factor, period=2.0)
    elif kind == "quantized":  # int8 models: logits on a grid, with exact ties between classes
        scores = (np.round(rng.normal(size=(19, h, w)) * 3) / 3).astype(np.float32)
    elif kind == "ties":
        scores = rng.integers(0, 2, size=(4, h, w)).astype(np.float32)
    else:
        scores = rng.normal(size=(8, h, w)).astype(np.float32)
    out = (h * factor, w * factor)
    np.testing.assert_array_equal(upsample_argmax(scores, out), reference_labels(scores, *out))


def test_demo_segformer_sized_logits_equal_reference():
    scores = smooth_scores(19, 32, 64, seed=7, period=6.0)
    np.testing.assert_array_equal(upsample_argmax(scores, (1024, 2048)), reference_labels(scores, 1024, 2048))
