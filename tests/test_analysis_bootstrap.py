"""Paired bootstrap (app.analysis.bootstrap) against a naive resampling loop written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.bootstrap import (
    PairedBootstrap,
    paired_bootstrap,
    paired_by_key,
    significant_drop,
    summary,
)
from app.core.domain.labels import EVAL_CATEGORIES, EVAL_TRAINIDS, NUM_LABEL_IDS
from app.core.domain.metrics import SparseCounts, compute_scores, confusion

# labelIds the fake images use: evaluated classes, plus void (0) and an ignored id (parking, 9).
_IDS = np.array([0, 7, 8, 9, 11, 21, 23, 24, 26, 33])


def _image(rng: np.random.Generator, shape=(12, 16)) -> np.ndarray:
    # Blocky maps (a few classes per image, some classes absent): per-image IoUs vary, some are NaN.
    coarse = rng.choice(_IDS[: rng.integers(4, len(_IDS) + 1)], size=(3, 4))
    return np.kron(coarse, np.ones((shape[0] // 3, shape[1] // 4), dtype=np.int64)).astype(np.uint8)


def _corrupt(rng: np.random.Generator, gt: np.ndarray, rate: float) -> np.ndarray:
    pred = gt.copy()
    wrong = rng.random(gt.shape) < rate
    pred[wrong] = rng.choice(_IDS, size=int(wrong.sum()))
    return pred


def _matrices(
    seed: int, n: int, rate_a: float, rate_b: float
) -> tuple[list[SparseCounts], list[SparseCounts]]:
    rng = np.random.default_rng(seed)
    a, b = [], []
    for _ in range(n):
        gt = _image(rng)
        a.append(SparseCounts.from_dense(confusion(gt, _corrupt(rng, gt, rate_a), NUM_LABEL_IDS)))
        b.append(SparseCounts.from_dense(confusion(gt, _corrupt(rng, gt, rate_b), NUM_LABEL_IDS)))
    return a, b


def _naive(a, b, scheme, resamples: int, seed: int):
    """The textbook loop: draw n images with replacement, sum their matrices, score with compute_scores."""
    n = len(a)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    dense_a, dense_b = [m.dense() for m in a], [m.dense() for m in b]
    miou, classes = [], []
    for row in draws:
        total_a = np.zeros_like(dense_a[0])
        total_b = np.zeros_like(dense_b[0])
        for i in row:
            total_a += dense_a[i]
            total_b += dense_b[i]
        score_a, score_b = compute_scores(total_a, scheme), compute_scores(total_b, scheme)
        miou.append(score_b.miou - score_a.miou)
        classes.append(score_b.iou - score_a.iou)
    return np.array(miou), np.array(classes)


@pytest.mark.parametrize("scheme", [EVAL_TRAINIDS, EVAL_CATEGORIES], ids=lambda s: s.key)
def test_matches_naive_resampling_exactly(scheme):
    a, b = _matrices(1, 25, 0.3, 0.2)
    result = paired_bootstrap(a, b, scheme, resamples=1000, seed=7, names=("base", "cand"))
    miou, classes = _naive(a, b, scheme, 1000, 7)
    lo, hi = np.percentile(miou, [2.5, 97.5])
    assert (result.delta_miou.low, result.delta_miou.high) == (lo, hi)
    assert np.array_equal(result.samples, np.sort(miou))
    total_a = sum(m.dense() for m in a)
    total_b = sum(m.dense() for m in b)
    point = compute_scores(total_b, scheme).miou - compute_scores(total_a, scheme).miou
    assert result.delta_miou.value == point
    for k, interval in enumerate(result.classes):
        column = classes[:, k]
        defined = column[~np.isnan(column)]
        assert interval.defined == defined.size / column.size
        if defined.size:
            assert (interval.low, interval.high) == tuple(np.percentile(defined, [2.5, 97.5]))
        else:
            assert math.isnan(interval.low)
    np.testing.assert_array_equal(result.class_samples, classes)


def test_pooled_and_per_image_mean_are_both_reported():
    a, b = _matrices(2, 12, 0.3, 0.1)
    result = paired_bootstrap(a, b, EVAL_TRAINIDS, resamples=1000)
    per_image_a = [compute_scores(m.dense(), EVAL_TRAINIDS).miou for m in a]
    per_image_b = [compute_scores(m.dense(), EVAL_TRAINIDS).miou for m in b]
    assert result.mean_image_miou == pytest.approx((np.mean(per_image_a), np.mean(per_image_b)), abs=1e-15)
    assert result.pooled_miou[0] == compute_scores(sum(m.dense() for m in a), EVAL_TRAINIDS).miou
    assert result.mean_image_miou[0] != result.pooled_miou[0]  # they are different statistics
    # The per-image-mean interval, from the same resamples, against a loop.
    draws = np.random.default_rng(0).integers(0, 12, size=(1000, 12))
    deltas = [np.mean(np.array(per_image_b)[row]) - np.mean(np.array(per_image_a)[row]) for row in draws]
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert result.delta_mean_image_miou.low == pytest.approx(low, abs=1e-12)
    assert result.delta_mean_image_miou.high == pytest.approx(high, abs=1e-12)


def test_json_shape_of_the_issue():
    a, b = _matrices(3, 10, 0.3, 0.2)
    data = paired_bootstrap(a, b, EVAL_TRAINIDS, resamples=1000).to_dict()
    assert set(data["delta_miou"]) == {"value", "ci95"}
    assert len(data["delta_miou"]["ci95"]) == 2
    assert list(data["classes"]) == list(EVAL_TRAINIDS.names)
    assert set(data["classes"]["car"]) == {"value", "ci95"}
    assert data["classes"]["wall"] == {"value": None, "ci95": [None, None]}  # never in GT nor predicted
    assert data["resamples"] == 1000 and data["images"] == 10


def test_significant_drop_and_no_drop():
    a, b = _matrices(4, 40, 0.05, 0.5)  # B is much worse
    result = paired_bootstrap(a, b, EVAL_TRAINIDS)
    verdict = significant_drop(result, 0.95)
    assert result.resamples == 2000
    assert verdict.fails and verdict.status == "significant_drop"
    assert verdict.high < 0 and "significant drop" in verdict.message
    improved = paired_bootstrap(b, a, EVAL_TRAINIDS)
    assert not significant_drop(improved).fails
    same = paired_bootstrap(a, a, EVAL_TRAINIDS)
    assert (same.delta_miou.low, same.delta_miou.high) == (0.0, 0.0)
    assert significant_drop(same).status == "no_significant_drop" and not same.too_small
    by_class = significant_drop(result, 0.99, class_name="road")
    assert by_class.fails and "road" in by_class.message


def test_too_small_to_tell():
    a, b = _matrices(5, 4, 0.05, 0.5)
    result = paired_bootstrap(a, b, EVAL_TRAINIDS)
    assert result.too_small and "4 image" in (result.reason or "")
    verdict = significant_drop(result)
    assert verdict.status == "too_small" and not verdict.fails
    assert "too small to tell" in verdict.message


def test_refuses_unpaired_or_few_resamples():
    a, b = _matrices(6, 6, 0.1, 0.1)
    with pytest.raises(ValueError, match="same images"):
        paired_bootstrap(a, b[:-1], EVAL_TRAINIDS)
    with pytest.raises(ValueError, match="1000 resamples"):
        paired_bootstrap(a, b, EVAL_TRAINIDS, resamples=200)


def test_paired_by_key_aligns_and_drops_unpaired():
    a, b = _matrices(7, 3, 0.1, 0.1)
    keys, left, right = paired_by_key({"x": a[0], "y": a[1], "z": None}, {"y": b[1], "x": b[0], "w": b[2]})
    assert keys == ["x", "y"] and left == [a[0], a[1]] and right == [b[0], b[1]]


def test_seed_reproducible_and_different_seed_differs():
    a, b = _matrices(8, 15, 0.2, 0.3)
    first: PairedBootstrap = paired_bootstrap(a, b, EVAL_TRAINIDS, seed=3)
    again = paired_bootstrap(a, b, EVAL_TRAINIDS, seed=3)
    other = paired_bootstrap(a, b, EVAL_TRAINIDS, seed=4)
    assert first.to_dict() == again.to_dict()
    assert not np.array_equal(first.samples, other.samples)


def test_class_in_few_images_is_too_small_to_tell():
    a, b = _matrices(9, 30, 0.05, 0.5)
    # 'train' (labelId 31) only in the first image's GT and predictions.
    extra = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS + 1), dtype=np.int64)
    extra[31, 31] = 50
    a[0] = SparseCounts.from_dense(a[0].dense() + extra)
    b[0] = SparseCounts.from_dense(b[0].dense() + extra // 2)
    result = paired_bootstrap(a, b, EVAL_TRAINIDS)
    train = result.classes[EVAL_TRAINIDS.names.index("train")]
    assert 0.5 < train.defined < 0.8  # 1 - (29/30)**30 of the resamples draw image 0
    verdict = significant_drop(result, class_name="train")
    assert verdict.status == "too_small" and "'train' is in only" in verdict.message
    assert significant_drop(result).fails  # the mIoU drop is still significant


def test_unstable_interval_is_too_small_to_tell():
    from app.analysis.bootstrap import _too_small

    rng = np.random.default_rng(0)
    steady = rng.normal(0.01, 0.002, size=2000)
    assert _too_small(50, steady, 0.95) == (False, None)
    drifting = np.concatenate([steady[:1000], steady[1000:] + 0.01])  # halves disagree by 2.5 widths
    small, reason = _too_small(50, drifting, 0.95)
    assert small and "unstable" in (reason or "")


def test_summary_line_quotes_the_interval():
    a, b = _matrices(10, 20, 0.3, 0.1)
    result = paired_bootstrap(a, b, EVAL_TRAINIDS, names=("unet", "segformer"))
    line = summary(result)
    value = 100 * result.delta_miou.value
    assert line.startswith(f"segformer − unet: {value:+.1f} mIoU points (95 % interval ")
    assert f"{100 * result.delta_miou.low:+.1f} to {100 * result.delta_miou.high:+.1f}" in line
    assert "20 images, 2000 resamples, trainids" in line and "too small" not in line
    assert "too small to tell" in summary(paired_bootstrap(a[:3], b[:3], EVAL_TRAINIDS))
