"""Boundary IoU and BF (app.analysis.boundary) against references written from the papers' definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.boundary import (
    BoundaryCounts,
    boundary_counts,
    boundary_counts_many,
    boundary_scores,
    default_width,
    mean_image_scores,
    sum_counts,
)
from app.core.domain.labels import EVAL_CATEGORIES, EVAL_TRAINIDS, ClassScheme, custom_eval_scheme

ROAD, SIDEWALK, CAR, PERSON, VOID = 7, 8, 26, 24, 0


def _erode_reference(mask: np.ndarray, d: int) -> np.ndarray:
    """Cheng et al.'s mask_to_boundary erosion: pad one zero ring, erode d times with a 3x3 kernel."""
    out = np.pad(mask, 1).astype(bool)
    for _ in range(d):
        shifted = [out[1 + dy : out.shape[0] - 1 + dy, 1 + dx : out.shape[1] - 1 + dx]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # fmt: skip
        inner = np.logical_and.reduce(shifted)
        out = np.pad(inner, 1)
    return out[1:-1, 1:-1]


def _boundary_reference(mask: np.ndarray, d: int) -> np.ndarray:
    return mask & ~_erode_reference(mask, d)


def _contour_reference(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 3x3 neighbour inside the image that is not in the mask."""
    out = np.zeros_like(mask)
    for y, x in zip(*np.nonzero(mask), strict=True):
        window = mask[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
        out[y, x] = not window.all()
    return out


def _matched_reference(points: np.ndarray, targets: np.ndarray, theta: int) -> int:
    """How many of `points` have a target within Chebyshev distance theta (brute force)."""
    ps, ts = np.argwhere(points), np.argwhere(targets)
    if len(ts) == 0:
        return 0
    return sum(int(np.abs(ts - p).max(axis=1).min() <= theta) for p in ps)


def _reference(gt_ids, pred_ids, scheme, d, theta):
    lut = scheme.id_to_class()
    gt, pred = lut[gt_ids], lut[pred_ids]
    valid = gt != 255
    rows = []
    for k in range(scheme.num_classes):
        g, p = gt == k, pred == k
        g_d, p_d = _boundary_reference(g, d), _boundary_reference(p, d) & valid
        inter = int((g_d & p_d).sum())
        union = int((g_d | p_d).sum())
        g_c, p_c_all = _contour_reference(g), _contour_reference(p)
        p_c = p_c_all & valid
        rows.append((inter, union, int(p_c.sum()), _matched_reference(p_c, _contour_reference(g), theta),
                     int(g_c.sum()), _matched_reference(g_c, p_c_all, theta)))  # fmt: skip
    return np.array(rows).T


def _check(gt, pred, scheme=EVAL_TRAINIDS, d=2, theta=1):
    counts = boundary_counts(gt, pred, scheme, width=d, tolerance=theta)
    ref = _reference(gt, pred, scheme, d, theta)
    got = np.stack([counts.biou_inter, counts.biou_union, counts.bf_pred, counts.bf_pred_matched,
                    counts.bf_gt, counts.bf_gt_matched])  # fmt: skip
    np.testing.assert_array_equal(got, ref)
    return counts


def _square(shape, y0, x0, y1, x1, value, base=ROAD):
    out = np.full(shape, base, dtype=np.uint8)
    out[y0:y1, x0:x1] = value
    return out


def test_identical_masks_score_one():
    gt = _square((20, 24), 5, 6, 14, 18, CAR)
    scores = boundary_scores(_check(gt, gt.copy()), EVAL_TRAINIDS)
    car = EVAL_TRAINIDS.names.index("car")
    assert scores.boundary_iou[car] == 1.0 and scores.bf[car] == 1.0
    assert math.isnan(scores.boundary_iou[EVAL_TRAINIDS.names.index("sky")])


def test_shifted_square_by_hand():
    # An 8x8 car square shifted right by one pixel, d = 1: boundary rings of 28 pixels each.
    gt = _square((16, 16), 4, 4, 12, 12, CAR)
    pred = _square((16, 16), 4, 5, 12, 13, CAR)
    counts = _check(gt, pred, d=1, theta=0)
    car = EVAL_TRAINIDS.names.index("car")
    # GT ring ∩ pred ring: top and bottom rows share 7 pixels each, the shared column x=11 (GT's right side)
    # is inside pred's interior except its ends; pred's left column x=5 is GT interior except the ends.
    assert counts.biou_inter[car] == 14
    assert counts.biou_union[car] == 28 + 28 - 14
    assert boundary_scores(counts, EVAL_TRAINIDS).boundary_iou[car] == pytest.approx(14 / 42)
    # θ = 1: every contour pixel of one square is within one pixel of the other's contour.
    counts = _check(gt, pred, d=1, theta=1)
    assert counts.bf_pred_matched[car] == counts.bf_pred[car] == 28


@pytest.mark.parametrize("d, theta", [(1, 0), (2, 1), (3, 2), (5, 3)])
def test_hand_made_shapes(d, theta):
    gt = np.full((24, 30), ROAD, dtype=np.uint8)
    gt[3:10, 4:12] = CAR  # a box
    gt[14:22, 2:9] = PERSON
    gt[14:18, 9:13] = PERSON  # an L
    yy, xx = np.mgrid[:24, :30]
    gt[(yy - 12) ** 2 + (xx - 22) ** 2 <= 25] = SIDEWALK  # a disk
    gt[0:3, 24:30] = VOID  # void in a corner: ignored
    gt[20:24, 26:30] = CAR  # a car cut by the image edge
    pred = gt.copy()
    pred[4:11, 5:13] = CAR  # moved
    pred[14:22, 2:9] = CAR  # wrong class
    pred[(yy - 12) ** 2 + (xx - 21) ** 2 <= 16] = SIDEWALK  # smaller disk
    pred[0:5, 22:30] = PERSON  # predicted over the void corner
    _check(gt, pred, d=d, theta=theta)


@pytest.mark.parametrize("seed", range(4))
def test_random_blob_maps(seed):
    rng = np.random.default_rng(seed)
    coarse = rng.choice([VOID, ROAD, SIDEWALK, CAR, PERSON, 9], size=(6, 8))
    gt = np.kron(coarse, np.ones((5, 5), dtype=np.uint8)).astype(np.uint8)
    pred = gt.copy()
    noise = rng.random(gt.shape) < 0.08
    pred[noise] = rng.choice([ROAD, CAR, PERSON, 23], size=int(noise.sum()))
    pred = np.roll(pred, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
    _check(gt, pred, d=int(rng.integers(1, 6)), theta=int(rng.integers(0, 4)))
    _check(gt, pred, EVAL_CATEGORIES, d=3, theta=2)


def test_many_classes_use_several_words():
    # 70 classes: the class bit planes need two 64-bit words.
    names = tuple(f"c{i}" for i in range(70))
    scheme = custom_eval_scheme(ClassScheme("custom:many", names, tuple((i, i, i) for i in range(70))))
    rng = np.random.default_rng(0)
    gt = np.kron(rng.integers(0, 70, size=(6, 6)), np.ones((4, 4), dtype=np.int64)).astype(np.uint8)
    pred = np.roll(gt, 1, axis=1)
    _check(gt, pred, scheme, d=2, theta=1)


def test_defaults_from_image_size():
    assert default_width((1024, 2048), 0.02) == 46  # Boundary IoU: 2 % of the diagonal
    assert default_width((1024, 2048), 0.0075) == 17  # BF: 0.75 % of the diagonal
    assert default_width((10, 10), 0.0075) == 1
    counts = boundary_counts(
        np.full((64, 128), ROAD, np.uint8), np.full((64, 128), ROAD, np.uint8), EVAL_TRAINIDS
    )
    assert (counts.width, counts.tolerance) == (3, 1)


def test_counts_add_up_and_scores_are_pooled():
    rng = np.random.default_rng(5)
    items: list[BoundaryCounts] = []
    for _ in range(3):
        gt = np.kron(rng.choice([ROAD, CAR, PERSON], size=(4, 4)), np.ones((6, 6), np.uint8)).astype(np.uint8)
        items.append(boundary_counts(gt, np.roll(gt, 2, axis=0), EVAL_TRAINIDS, width=2, tolerance=1))
    total = sum_counts(items)
    assert total is not None
    np.testing.assert_array_equal(total.biou_inter, sum(c.biou_inter for c in items))
    scores = boundary_scores(total, EVAL_TRAINIDS)
    car = EVAL_TRAINIDS.names.index("car")
    assert scores.boundary_iou[car] == sum(c.biou_inter[car] for c in items) / sum(
        c.biou_union[car] for c in items
    )
    precision = total.bf_pred_matched[car] / total.bf_pred[car]
    recall = total.bf_gt_matched[car] / total.bf_gt[car]
    assert scores.bf[car] == pytest.approx(2 * precision * recall / (precision + recall))
    per_image_biou, per_image_bf = mean_image_scores(items, EVAL_TRAINIDS)
    expected = np.mean([boundary_scores(c, EVAL_TRAINIDS).mean_boundary_iou for c in items])
    assert per_image_biou == pytest.approx(expected)
    assert per_image_bf == pytest.approx(np.mean([boundary_scores(c, EVAL_TRAINIDS).mean_bf for c in items]))
    data = scores.to_dict()
    assert data["boundary_width_px"] == 2 and data["bf_tolerance_px"] == 1
    assert set(data["classes"]["car"]) == {"boundary_iou", "bf", "bf_precision", "bf_recall"}
    with pytest.raises(ValueError, match="cannot add"):
        _ = items[0] + boundary_counts(gt, gt, EVAL_TRAINIDS, width=3, tolerance=1)


def test_prediction_only_class_scores_zero():
    gt = np.full((12, 12), ROAD, np.uint8)
    pred = _square((12, 12), 3, 3, 8, 8, CAR)
    scores = boundary_scores(_check(gt, pred, d=1, theta=1), EVAL_TRAINIDS)
    car = EVAL_TRAINIDS.names.index("car")
    assert scores.boundary_iou[car] == 0.0 and scores.bf[car] == 0.0


def test_several_models_share_the_ground_truth_side():
    rng = np.random.default_rng(9)
    gt = np.kron(rng.choice([VOID, ROAD, CAR, PERSON], size=(5, 6)), np.ones((5, 5), np.uint8)).astype(
        np.uint8
    )
    preds = [np.roll(gt, s, axis=1) for s in (0, 1, -2)]
    many = boundary_counts_many(gt, preds, EVAL_TRAINIDS, width=3, tolerance=1)
    for pred, counts in zip(preds, many, strict=True):
        single = _check(gt, pred, d=3, theta=1)
        for name in ("biou_inter", "biou_union", "bf_pred", "bf_pred_matched", "bf_gt", "bf_gt_matched"):
            np.testing.assert_array_equal(getattr(counts, name), getattr(single, name))


def test_boundary_bootstrap_matches_naive_resampling():
    from app.analysis.boundary_bootstrap import paired_boundary_bootstrap

    rng = np.random.default_rng(12)
    counts_a, counts_b = [], []
    for _ in range(12):
        gt = np.kron(rng.choice([ROAD, CAR, PERSON, 23], size=(4, 5)), np.ones((6, 6), np.uint8)).astype(
            np.uint8
        )
        counts_a.append(boundary_counts(gt, np.roll(gt, 2, axis=1), EVAL_TRAINIDS, width=2, tolerance=1))
        counts_b.append(boundary_counts(gt, np.roll(gt, 1, axis=0), EVAL_TRAINIDS, width=2, tolerance=1))
    result = paired_boundary_bootstrap(counts_a, counts_b, EVAL_TRAINIDS, resamples=1000, seed=4)
    draws = np.random.default_rng(4).integers(0, 12, size=(1000, 12))
    deltas = []
    for row in draws:
        a = boundary_scores(sum_counts(counts_a[i] for i in row), EVAL_TRAINIDS)
        b = boundary_scores(sum_counts(counts_b[i] for i in row), EVAL_TRAINIDS)
        deltas.append(b.mean_boundary_iou - a.mean_boundary_iou)
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert (result.delta_boundary_iou.low, result.delta_boundary_iou.high) == (low, high)
    total_a = boundary_scores(sum_counts(counts_a), EVAL_TRAINIDS)
    total_b = boundary_scores(sum_counts(counts_b), EVAL_TRAINIDS)
    assert result.delta_boundary_iou.value == total_b.mean_boundary_iou - total_a.mean_boundary_iou
    data = result.to_dict()
    assert set(data["delta_boundary_iou"]) == {"value", "ci95"} and "car" in data["classes"]


def test_label_maps_outside_the_id_space_are_refused():
    gt = np.full((8, 8), ROAD, np.uint8)
    wide = gt.astype(np.int32)
    assert boundary_counts(wide, wide, EVAL_TRAINIDS, width=1, tolerance=1).bf_gt.sum() == 0  # 0..255: fine
    wide[0, 0] = 300
    with pytest.raises(ValueError, match=r"prediction holds values outside 0\.\.255"):
        boundary_counts(gt, wide, EVAL_TRAINIDS)
    with pytest.raises(ValueError, match="ground truth must hold integers"):
        boundary_counts(gt.astype(np.float32), gt, EVAL_TRAINIDS)
