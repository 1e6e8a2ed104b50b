"""Missed objects (app.analysis.instances) on generated Cityscapes scenes with known instances, and the
per-class table (app.analysis.class_table)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.analysis.class_table import class_rows
from app.analysis.instances import compare_instances, instance_recalls, missed_objects_csv, size_limits
from app.core.domain.errors import InputError
from app.core.domain.labels import EVAL_CATEGORIES, EVAL_TRAINIDS
from app.core.domain.metrics import compute_scores, confusion
from app.core.scenes.generator import render_scene

ROAD, CAR, TRUCK, CARAVAN = 7, 26, 27, 29


def _scene(index: int):
    scene = render_scene(index, (192, 384), seed=3)
    return scene.label_ids, scene.instance_ids.astype(np.int32)


def _erase(labels: np.ndarray, instances: np.ndarray, inst_id: int, share: float, value: int = ROAD) -> None:
    """Relabel the first `share` of an instance's pixels (raster order)."""
    where = np.flatnonzero(instances.ravel() == inst_id)
    labels.ravel()[where[: int(share * where.size)]] = value


def _brute_force(instances, prediction, scheme, inst_id):
    lut = scheme.id_to_class()
    mask = instances == inst_id
    cls = lut[inst_id // 1000]
    ys, xs = np.nonzero(mask)
    recall = float(np.mean(lut[prediction][mask] == cls))
    return recall, int(mask.sum()), (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _biggest(instances: np.ndarray, label_id: int, rank: int = 0) -> int:
    ids, counts = np.unique(instances[instances // 1000 == label_id], return_counts=True)
    return int(ids[np.argsort(-counts)][rank])


def test_recalls_and_boxes_match_brute_force():
    labels, instances = _scene(0)
    pred = labels.copy()
    _erase(pred, instances, _biggest(instances, CAR), 0.7)
    _erase(pred, instances, _biggest(instances, CAR, 1), 0.3, TRUCK)
    result = instance_recalls(instances, [labels, pred], EVAL_TRAINIDS, key="img0")
    ids = sorted(int(i) for i in np.unique(instances) if i > 1000)
    assert [r.instance_id for r in result] == ids
    for r in result:
        assert r.key == "img0" and r.recall[0] == 1.0
        recall, area, bbox = _brute_force(instances, pred, EVAL_TRAINIDS, r.instance_id)
        assert (r.recall[1], r.area, r.bbox) == (recall, area, bbox)
        assert r.class_name == {24: "person", 26: "car", 27: "truck", 28: "bus"}[r.instance_id // 1000]


def test_a_finds_b_misses_and_the_reverse():
    scenes = [_scene(i) for i in range(3)]
    recalls = []
    planted_b_misses, planted_a_misses = set(), set()
    for index, (labels, instances) in enumerate(scenes):
        a, b = labels.copy(), labels.copy()
        big = _biggest(instances, CAR)
        _erase(b, instances, big, 1.0)  # B misses the biggest car
        planted_b_misses.add((f"img{index}", big))
        second = _biggest(instances, CAR, 1)
        _erase(b, instances, second, 0.55)  # recall 0.45: missed
        planted_b_misses.add((f"img{index}", second))
        _erase(b, instances, _biggest(instances, CAR, 2), 0.45)  # recall 0.55: still found
        person = _biggest(instances, 24) if (instances // 1000 == 24).any() else _biggest(instances, 25)
        _erase(a, instances, person, 1.0)  # A misses a person B finds
        planted_a_misses.add((f"img{index}", person))
        recalls.extend(instance_recalls(instances, [a, b], EVAL_TRAINIDS, key=f"img{index}"))
    missed = compare_instances(recalls, EVAL_TRAINIDS, models=("a", "b"))
    assert {(r.key, r.instance_id) for r in missed.a_finds_b_misses} == planted_b_misses
    assert {(r.key, r.instance_id) for r in missed.b_finds_a_misses} == planted_a_misses
    areas = [r.area for r in missed.a_finds_b_misses]
    assert areas == sorted(areas, reverse=True)
    assert sum(t.instances for t in missed.tallies) == len(recalls)
    assert sum(t.only_first for t in missed.tallies) == len(planted_b_misses)
    car_cells = [t for t in missed.tallies if t.class_name == "car"]
    assert sum(t.instances - t.found[1] for t in car_cells) == len(planted_b_misses)
    data = missed.to_dict()
    assert data["a_finds_b_misses_total"] == len(planted_b_misses)
    assert {"class", "size", "instances", "found", "recall_rate"} <= set(data["tallies"][0])
    rows = missed_objects_csv(missed).splitlines()
    assert rows[0].startswith("found_by,missed_by,key,instance_id") and rows[0].endswith("recall_a,recall_b")
    assert len(rows) == 1 + len(planted_b_misses) + len(planted_a_misses)
    assert rows[1].startswith(
        f"a,b,{missed.a_finds_b_misses[0].key},{missed.a_finds_b_misses[0].instance_id},car"
    )


def test_crowd_regions_and_ignored_classes_are_no_instances():
    labels, instances = _scene(1)
    assert ((instances == CAR) & (labels == CAR)).any()  # this scene has a crowd of cars (id 26, no number)
    instances = instances.copy()
    instances[0:6, 0:10] = CARAVAN * 1000 + 1  # a caravan: not evaluated by trainids
    result = instance_recalls(instances, [labels], EVAL_TRAINIDS, key="x")
    assert all(r.instance_id > 1000 and r.instance_id // 1000 != CARAVAN for r in result)
    assert len(result) == len([i for i in np.unique(instances) if i > 1000]) - 1


def test_scheme_decides_what_counts_as_found():
    labels, instances = _scene(0)
    big = _biggest(instances, CAR)
    pred = labels.copy()
    _erase(pred, instances, big, 1.0, TRUCK)  # the car predicted as a truck
    by_class = {r.instance_id: r for r in instance_recalls(instances, [pred], EVAL_TRAINIDS, key="x")}
    by_category = {r.instance_id: r for r in instance_recalls(instances, [pred], EVAL_CATEGORIES, key="x")}
    assert by_class[big].recall == (0.0,) and by_category[big].recall == (1.0,)
    assert by_category[big].class_name == "vehicle"


def test_size_buckets_scale_with_the_image():
    assert size_limits((1024, 2048)) == pytest.approx((102.4**2, 307.2**2))
    assert size_limits((512, 1024)) == pytest.approx((51.2**2, 153.6**2))
    labels, instances = _scene(0)
    small, large = size_limits(labels.shape)
    for r in instance_recalls(instances, [labels], EVAL_TRAINIDS, key="x"):
        assert r.size == ("small" if r.area < small else "medium" if r.area < large else "large")


def test_bad_instance_maps_are_refused_with_the_image_named():
    labels, instances = _scene(0)
    instances = instances.copy()
    instances[0, 0] = 40001
    with pytest.raises(InputError, match="img7"):
        instance_recalls(instances, [labels], EVAL_TRAINIDS, key="img7")
    with pytest.raises(InputError, match="shape"):
        instance_recalls(instances[:10], [labels], EVAL_TRAINIDS, key="img7")


def test_class_table_rows():
    labels, _ = _scene(0)
    worse = labels.copy()
    worse[:, :100] = ROAD
    scores_a = compute_scores(confusion(labels, worse, 34), EVAL_TRAINIDS)
    scores_b = compute_scores(confusion(labels, labels, 34), EVAL_TRAINIDS)
    rows = class_rows([scores_a, scores_b])
    assert [r.name for r in rows] == list(EVAL_TRAINIDS.names)
    assert sum(r.pixel_share for r in rows) == pytest.approx(1.0)
    road = rows[0]
    valid = np.isin(labels, EVAL_TRAINIDS.evaluated_ids())
    assert road.pixel_share == np.sum(labels == ROAD) / valid.sum()
    for row, a, b in zip(rows, scores_a.iou, scores_b.iou, strict=True):
        if math.isnan(a):
            assert math.isnan(row.improvement)
        else:
            assert row.iou == (a, b) and row.improvement == b - a
            assert math.isnan(row.relative) if a == 0 else row.relative == pytest.approx((b - a) / a)
    assert rows[0].to_dict()["iou"] == [scores_a.iou[0], 1.0]
