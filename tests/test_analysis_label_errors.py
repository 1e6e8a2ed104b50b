"""Likely label errors (app.analysis.label_errors) on generated scenes with planted label errors, and the
connected components under them (app.analysis.morphology) against a flood fill written here."""

from __future__ import annotations

import csv
import io
import json
from collections import deque

import numpy as np
import pytest

from app.analysis.label_errors import (
    find_label_errors,
    label_error_mask,
    label_errors_csv,
    rank_label_errors,
    write_label_errors,
)
from app.analysis.morphology import connected_components, open_mask
from app.core.domain.labels import EVAL_TRAINIDS, LABEL_BY_ID
from app.core.scenes.generator import render_scene

EVALUATED = [i for i in range(34) if not LABEL_BY_ID[i].ignore_in_eval]


def _flood_fill(keys: np.ndarray) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """(key, area, bbox) of every 4-connected equal-key region of keys >= 0, by BFS."""
    h, w = keys.shape
    seen = np.zeros(keys.shape, dtype=bool)
    out = []
    for y in range(h):
        for x in range(w):
            if keys[y, x] < 0 or seen[y, x]:
                continue
            queue, pixels = deque([(y, x)]), []
            seen[y, x] = True
            while queue:
                cy, cx = queue.popleft()
                pixels.append((cy, cx))
                for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                    if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and keys[ny, nx] == keys[y, x]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
            ys, xs = zip(*pixels, strict=True)
            out.append((int(keys[y, x]), len(pixels), (min(xs), min(ys), max(xs) + 1, max(ys) + 1)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_components_match_flood_fill(seed):
    rng = np.random.default_rng(seed)
    keys = rng.integers(-1, 3, size=(17, 23))
    if seed % 2:  # blocky maps: long runs, snakes and holes
        keys = np.kron(rng.integers(-1, 3, size=(6, 7)), np.ones((3, 4), dtype=np.int64))
    comps = connected_components(keys, with_labels=True)
    got = [
        (int(k), int(a), tuple(int(v) for v in b))
        for k, a, b in zip(comps.keys, comps.areas, comps.bboxes, strict=True)
    ]
    assert got == _flood_fill(keys)  # same regions, in raster order of their first pixel
    assert comps.labels is not None
    for index, (key, area, _) in enumerate(got):
        assert int((comps.labels == index).sum()) == area
        assert np.all(keys[comps.labels == index] == key)
    assert np.all((comps.labels < 0) == (keys < 0))


def test_components_of_a_spiral():
    # A one-pixel-wide spiral: one region whose runs join only through a long chain.
    size = 31
    grid = np.full((size, size), -1, dtype=np.int64)
    y, x, dy, dx, length = size // 2, size // 2, 0, 1, 1
    grid[y, x] = 5
    while True:
        for _ in range(2):
            for _ in range(length):
                y, x = y + dy, x + dx
                if not (0 <= y < size and 0 <= x < size):
                    break
                grid[y, x] = 5
            dy, dx = dx, -dy
        length += 2
        if not (0 <= y < size and 0 <= x < size):
            break
    assert connected_components(grid).count == len(_flood_fill(grid)) == 1


def test_open_mask_removes_thin_parts():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 2:12] = True
    mask[15, :] = True  # one pixel thick
    opened = open_mask(mask, 1)
    assert opened[2:12, 2:12].all() and not opened[15].any() and opened.sum() == 100


def _uniform_window(labels: np.ndarray, h: int, w: int, taken: list[tuple[int, int]]) -> tuple[int, int]:
    for y in range(0, labels.shape[0] - h, 4):
        for x in range(0, labels.shape[1] - w, 4):
            window = labels[y : y + h, x : x + w]
            far = all(abs(y - ty) > h + 4 or abs(x - tx) > w + 4 for ty, tx in taken)
            if far and window.min() == window.max() and int(window[0, 0]) in EVALUATED:
                return y, x
    raise AssertionError("no uniform window")


def _noisy(rng: np.random.Generator, labels: np.ndarray, blobs: int, size: int) -> np.ndarray:
    out = labels.copy()
    for _ in range(blobs):
        y, x = rng.integers(0, labels.shape[0] - size), rng.integers(0, labels.shape[1] - size)
        out[y : y + size, x : x + size] = rng.choice(EVALUATED)
    return out


def _dataset():
    """Scenes whose GT has planted wrong labels; models that see the truth, each with its own errors,
    both shifted one pixel against the annotation, and a few small mistakes they share."""
    rng = np.random.default_rng(11)
    images, planted = [], []
    for index in range(4):
        truth = render_scene(index, (192, 384), seed=3).label_ids
        gt = truth.copy()
        taken: list[tuple[int, int]] = []
        for h, w in ((30, 40), (26, 34))[: 2 if index % 2 == 0 else 0]:
            y, x = _uniform_window(truth, h, w, taken)
            taken.append((y, x))
            true_class = int(truth[y, x])
            wrong = next(c for c in (26, 21, 11, 7) if c != true_class)
            gt[y : y + h, x : x + w] = wrong
            planted.append(
                (f"img{index}", LABEL_BY_ID[wrong].name, LABEL_BY_ID[true_class].name, (x, y, x + w, y + h))
            )
        shared = _noisy(rng, truth, 6, 7)  # small errors both models make
        a = np.roll(_noisy(rng, shared, 25, 14), 1, axis=1)
        b = np.roll(_noisy(rng, shared, 25, 14), 1, axis=1)
        images.append((f"img{index}", gt, a, b))
    return images, planted


def test_planted_label_errors_rank_first(tmp_path):
    images, planted = _dataset()
    found = [r for key, gt, a, b in images for r in find_label_errors(gt, a, b, EVAL_TRAINIDS, key=key)]
    ranked = rank_label_errors(found)
    assert len(ranked) > len(planted)  # the shared small mistakes are found too, below
    top = ranked[: len(planted)]
    for region in top:
        same = [p for p in planted if p[:3] == (region.key, region.ground_truth, region.predicted)]
        assert same, region
        match = min(same, key=lambda p: abs(p[3][0] - region.bbox[0]))
        x0, y0, x1, y1 = match[3]
        # The models are shifted one pixel: the region is the planted box moved by up to one pixel.
        assert abs(region.bbox[0] - x0) <= 1 and abs(region.bbox[2] - x1) <= 1
        assert (region.bbox[1], region.bbox[3]) == (y0, y1)
        assert region.area >= 0.6 * (x1 - x0) * (y1 - y0)  # less where one model's own errors fall
    assert {(r.key, r.bbox[1]) for r in top} == {(p[0], p[3][1]) for p in planted}
    assert all(r.area < top[-1].area for r in ranked[len(planted) :])
    # Export: CSV and JSON, atomically written and readable.
    write_label_errors(tmp_path / "errors.csv", ranked, context={})
    rows = list(csv.DictReader(io.StringIO((tmp_path / "errors.csv").read_text())))
    assert (
        rows[0]["rank"] == "1" and rows[0]["key"] == ranked[0].key and int(rows[0]["area"]) == ranked[0].area
    )
    write_label_errors(tmp_path / "errors.json", ranked, context={"models": ["a", "b"], "scheme": "trainids"})
    data = json.loads((tmp_path / "errors.json").read_text())
    assert data["models"] == ["a", "b"] and data["label_errors"][0]["bbox"] == list(ranked[0].bbox)
    assert label_errors_csv(ranked[:1]).count("\n") == 2


def test_models_that_disagree_are_no_label_error():
    gt = np.full((40, 60), 7, dtype=np.uint8)  # road
    a = gt.copy()
    a[10:30, 10:40] = 26  # A says car
    b = gt.copy()
    b[10:30, 10:40] = 24  # B says person
    assert find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x") == ()
    b[10:30, 10:40] = 26
    (region,) = find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x")
    assert (region.ground_truth, region.predicted, region.area, region.bbox) == (
        "road",
        "car",
        600,
        (10, 10, 40, 30),
    )
    gt[10:30, 10:40] = 0  # void in the GT: never an error
    assert find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x") == ()


def test_confidence_filters_when_both_models_give_scores():
    gt = np.full((40, 60), 7, dtype=np.uint8)
    a = gt.copy()
    a[5:15, 5:25] = 26
    a[20:35, 30:55] = 21
    b = a.copy()
    conf_a = np.full(gt.shape, 0.9, dtype=np.float32)
    conf_b = conf_a.copy()
    conf_b[5:15, 5:25] = 0.3  # B unsure about the car
    regions = find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x", scores=(conf_a, conf_b))
    assert [r.predicted for r in regions] == ["vegetation"]
    assert regions[0].confidence == pytest.approx(0.9)
    both = find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x", scores=(conf_a, None))  # one map: no filter
    assert [r.predicted for r in both] == ["vegetation", "car"] and both[0].confidence is None


def test_overlay_mask_covers_the_regions():
    gt = np.full((40, 60), 7, dtype=np.uint8)
    a = gt.copy()
    a[10:30, 10:40] = 26
    a[35, :] = 26  # a one-pixel sliver: opened away
    mask = label_error_mask(gt, a, a.copy(), EVAL_TRAINIDS, key="x")
    assert mask.sum() == 600 and mask[10:30, 10:40].all()
    (region,) = find_label_errors(gt, a, a.copy(), EVAL_TRAINIDS, key="x")
    x0, y0, x1, y1 = region.bbox
    assert mask[y0:y1, x0:x1].sum() == region.area
