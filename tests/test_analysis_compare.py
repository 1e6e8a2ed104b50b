"""The per-image / per-dataset entry points (app.analysis.compare) end to end on generated scenes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.analysis.bootstrap import paired_bootstrap
from app.analysis.boundary import boundary_counts, boundary_scores, sum_counts
from app.analysis.compare import ComparisonCollector, analyze_image
from app.core.domain.labels import EVAL_TRAINIDS, NUM_LABEL_IDS
from app.core.domain.metrics import SparseCounts, confusion
from app.core.scenes.generator import render_scene


def _images(count: int):
    rng = np.random.default_rng(2)
    out = []
    for i in range(count):
        scene = render_scene(i, (128, 256), seed=5)
        truth = scene.label_ids
        a = np.roll(truth, 1, axis=1)
        b = truth.copy()
        b[rng.random(truth.shape) < 0.02] = 7
        b[40:60, 100:140] = 21  # a block B gets wrong
        gt = truth.copy()
        gt[100:120, 20:60] = 33  # a planted label error: 'bicycle' where both models see the truth
        out.append((f"img{i}", gt, scene.instance_ids.astype(np.int32), a, b))
    return out


def test_collector_matches_the_functions_it_wraps():
    images = _images(6)
    collector = ComparisonCollector(EVAL_TRAINIDS, ("a", "b"))
    with ThreadPoolExecutor(2) as pool:  # images finish in any order, from worker threads
        analyses = list(pool.map(lambda it: analyze_image(it[0], it[1], [it[3], it[4]], EVAL_TRAINIDS,
                                                          instances=it[2]), images))  # fmt: skip
    for analysis in reversed(analyses):
        collector.add(analysis)
    counts = [
        {key: SparseCounts.from_dense(confusion(gt, pred, NUM_LABEL_IDS)) for key, gt, _, *preds in images
         for pred in [preds[m]]}
        for m in (0, 1)
    ]  # fmt: skip
    counts[1]["img9"] = None  # an image B has no matrix for: left out and reported
    result = collector.result(counts, resamples=1000, seed=1)
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # NaN written as null everywhere
    direct = paired_bootstrap(
        [counts[0][k] for k, *_ in images], [counts[1][k] for k, *_ in images], EVAL_TRAINIDS,
        names=("a", "b"), resamples=1000, seed=1,
    )  # fmt: skip
    assert data["comparison"]["delta_miou"] == direct.to_dict()["delta_miou"]
    assert data["comparison"]["unpaired_images"] == 1
    assert set(data["comparison"]["boundary"]["delta_boundary_iou"]) == {"value", "ci95"}
    total = sum_counts(boundary_counts(gt, b, EVAL_TRAINIDS) for _, gt, _, _, b in images)
    assert total is not None
    assert data["boundary"]["b"]["boundary_iou"] == pytest.approx(
        boundary_scores(total, EVAL_TRAINIDS).mean_boundary_iou
    )
    assert set(data["boundary"]) == {"a", "b"} and "mean_image_bf" in data["boundary"]["a"]
    row = analyses[0].to_dict(EVAL_TRAINIDS)
    assert row["key"] == "img0" and len(row["boundary_iou"]) == 2 and row["label_errors"] >= 1
    assert row["instances_missed"][0] == sum(r.recall[0] < 0.5 for r in analyses[0].instances)
    json.dumps(row, allow_nan=False)
    top = data["label_errors"][:6]
    assert sorted(r["key"] for r in top) == [k for k, *_ in images]
    assert all(r["ground_truth"] == "bicycle" and r["area"] >= 0.8 * 800 for r in top)
    missed = data["missed_objects"]
    assert missed is not None and missed["models"] == ["a", "b"]
    assert sum(t["instances"] for t in missed["tallies"]) == sum(len(a.instances) for a in analyses)


def test_one_model_has_no_pairwise_sections():
    ((key, gt, inst, a, _),) = _images(1)
    collector = ComparisonCollector(EVAL_TRAINIDS, ("a",))
    collector.add(analyze_image(key, gt, [a], EVAL_TRAINIDS, instances=inst))
    data = collector.result().to_dict()
    assert data["comparison"] is None and data["missed_objects"] is None and data["label_errors"] == []
    assert data["boundary"]["a"]["boundary_width_px"] == 6  # 2 % of the 128x256 diagonal
    with pytest.raises(ValueError, match="2 models analyzed"):
        collector.add(analyze_image(key, gt, [a, a], EVAL_TRAINIDS))
