"""Metrics against the official Cityscapes evaluation (cityscapesscripts 2.3.0) and against hand counts."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cityscapes_oracle import official_evaluate, random_scene, write_pair
from PIL import Image

from app.core.domain import metrics
from app.core.domain.errors import InputError
from app.core.domain.labels import (
    AVG_CLASS_SIZE,
    CATEGORY_REPRESENTATIVE_ID,
    EVAL_CATEGORIES,
    EVAL_TRAINIDS,
    LABEL_BY_ID,
    NUM_LABEL_IDS,
    ClassScheme,
    custom_eval_scheme,
)
from app.core.domain.metrics import (
    INSTANCE_CATEGORIES,
    INSTANCE_CATEGORY_IDS,
    INSTANCE_CLASS_IDS,
    ConfusionAccumulator,
    InstanceCounts,
    Scores,
    compute_scores,
    confusion,
    instance_counts,
)

REL = 1e-12
H, W = 128, 256


def same(ours: float, official: float) -> bool:
    """Equal to REL, NaN only where the other is NaN."""
    if math.isnan(official) or math.isnan(ours):
        return math.isnan(official) and math.isnan(ours)
    return math.isclose(ours, official, rel_tol=REL, abs_tol=0.0)


def assert_same(ours: float, official: float, what: str) -> None:
    assert same(float(ours), float(official)), f"{what}: ours {ours!r} != official {official!r}"


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


@pytest.fixture(params=["runs", "pixels"])
def counting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through both counting paths: per run of equal pixels, and per pixel (noisy maps)."""
    if request.param == "pixels":
        monkeypatch.setattr(metrics, "_MIN_MEAN_RUN", 10**12)
    return str(request.param)


def evaluate_files(
    pred_files: list[Path], gt_files: list[Path], counting: str = "runs"
) -> ConfusionAccumulator:
    """Our path over the same files the official tool reads."""
    acc = ConfusionAccumulator(NUM_LABEL_IDS)
    for pred_file, gt_file in zip(pred_files, gt_files, strict=True):
        inst_file = Path(str(gt_file).replace("labelIds", "instanceIds"))
        gt, pred, inst = read_png(gt_file), read_png(pred_file), read_png(inst_file).astype(np.int32)
        runs = metrics._run_starts(gt.ravel(), pred.ravel())
        assert (runs is not None) == (counting == "runs"), "the test must take the path it names"
        acc.add(gt, pred, inst)
    return acc


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path], dict]:
    """Four random frames in the Cityscapes layout and the official result on them."""
    root = tmp_path_factory.mktemp("cs")
    rng = np.random.default_rng(2024)
    files = [write_pair(root, "ulm", i, *random_scene(rng, H, W)) for i in range(4)]
    pred_files, gt_files = [p for p, _ in files], [g for _, g in files]
    return pred_files, gt_files, official_evaluate(pred_files, gt_files)


def test_scenes_cover_the_hard_cases(dataset: tuple[list[Path], list[Path], dict]) -> None:
    # Guards the generator: without these cases the oracle comparisons below would prove much less.
    pred_files, gt_files, _ = dataset
    gt = np.concatenate([read_png(g) for g in gt_files])
    pred = np.concatenate([read_png(p) for p in pred_files])
    inst = np.concatenate([read_png(Path(str(g).replace("labelIds", "instanceIds"))) for g in gt_files])
    valid = np.isin(gt, EVAL_TRAINIDS.evaluated_ids())
    assert np.isin(gt, [0, 1, 4]).any(), "ignored ids in GT"
    assert np.isin(pred[valid], [0, 9, 29]).any(), "ignored ids predicted on evaluated pixels"
    assert 31 in pred and 31 not in gt, "a class predicted but absent from GT"
    assert ((inst == 26) & (gt == 26)).any(), "crowd car pixels"
    labels = np.unique(inst[inst > 1000]) // 1000
    assert {24, 26}.issubset(labels) and ({29, 30} & set(labels.tolist())), labels


def test_matrix_equals_official(dataset: tuple[list[Path], list[Path], dict], counting: str) -> None:
    pred_files, gt_files, official = dataset
    matrix = evaluate_files(pred_files, gt_files, counting).matrix
    np.testing.assert_array_equal(matrix[:, :NUM_LABEL_IDS], np.array(official["confMatrix"], dtype=np.int64))
    assert matrix[:, NUM_LABEL_IDS].sum() == 0


def check_cityscapes_extras(scores: Scores, official: dict) -> None:
    for c, name in enumerate(scores.category_names):
        assert_same(scores.category_iou[c], official["categoryScores"][name], f"category IoU {name}")
        assert_same(scores.category_iiou[c], official["categoryInstScores"][name], f"category iIoU {name}")
    assert_same(scores.mean_category_iou, official["averageScoreCategories"], "mean category IoU")
    assert_same(scores.mean_category_iiou, official["averageScoreInstCategories"], "mean category iIoU")


def test_trainids_scores_equal_official(dataset: tuple[list[Path], list[Path], dict], counting: str) -> None:
    pred_files, gt_files, official = dataset
    scores = evaluate_files(pred_files, gt_files, counting).scores(EVAL_TRAINIDS)
    assert scores.class_names == EVAL_TRAINIDS.names and len(scores.iou) == 19
    for k, name in enumerate(scores.class_names):
        assert_same(scores.iou[k], official["classScores"][name], f"IoU {name}")
        assert_same(scores.iiou[k], official["classInstScores"][name], f"iIoU {name}")
    assert_same(scores.miou, official["averageScoreClasses"], "mIoU")
    assert_same(scores.miiou, official["averageScoreInstClasses"], "miIoU")
    check_cityscapes_extras(scores, official)
    # The comparison must have seen defined and undefined values alike.
    train, motorcycle = scores.class_names.index("train"), scores.class_names.index("motorcycle")
    assert scores.iou[train] == 0.0 and math.isnan(scores.iou[motorcycle])
    assert np.isfinite(scores.iiou).sum() >= 4 and 0 < scores.miou < 1
    doc = json.loads(json.dumps(scores.to_dict(), allow_nan=False))
    assert doc["classes"]["car"]["iiou"] == scores.iiou[scores.class_names.index("car")]
    assert doc["categories"]["void"] == {"iou": None, "iiou": None}
    assert doc["categories"]["vehicle"]["iiou"] == official["categoryInstScores"]["vehicle"]
    assert len(doc["confusion"]["matrix"]) == 19 and len(doc["confusion"]["matrix"][0]) == 20


def test_categories_scores_equal_official(
    dataset: tuple[list[Path], list[Path], dict], counting: str
) -> None:
    pred_files, gt_files, official = dataset
    scores = evaluate_files(pred_files, gt_files, counting).scores(EVAL_CATEGORIES)
    assert scores.class_names == EVAL_CATEGORIES.names
    for k, name in enumerate(scores.class_names):
        assert_same(scores.iou[k], official["categoryScores"][name], f"category IoU {name}")
        assert_same(scores.iiou[k], official["categoryInstScores"][name], f"category iIoU {name}")
    assert_same(scores.miou, official["averageScoreCategories"], "mean category IoU")
    assert_same(scores.miiou, official["averageScoreInstCategories"], "mean category iIoU")
    check_cityscapes_extras(scores, official)
    assert math.isnan(scores.iou[0]) and np.isfinite(scores.iou[1:]).all()


def test_category_level_prediction_equals_official(
    dataset: tuple[list[Path], list[Path], dict], tmp_path: Path
) -> None:
    # A category model writes each category as its representative labelId (car for vehicle, person for human).
    to_rep = np.zeros(256, dtype=np.uint8)
    for label_id, label in LABEL_BY_ID.items():
        to_rep[label_id] = CATEGORY_REPRESENTATIVE_ID[label.category]
    pred_files, gt_files, _ = dataset
    cat_files = []
    for pred_file in pred_files:
        cat_file = tmp_path / pred_file.name
        Image.fromarray(to_rep[read_png(pred_file)]).save(cat_file)
        cat_files.append(cat_file)
    official = official_evaluate(cat_files, gt_files)
    scores = evaluate_files(cat_files, gt_files).scores(EVAL_CATEGORIES)
    for k, name in enumerate(scores.class_names):
        assert_same(scores.iou[k], official["categoryScores"][name], f"category IoU {name}")
        assert_same(scores.iiou[k], official["categoryInstScores"][name], f"category iIoU {name}")
    assert_same(scores.miou, official["averageScoreCategories"], "mean category IoU")
    assert_same(scores.miiou, official["averageScoreInstCategories"], "mean category iIoU")
    # Class-level scores of such a model are poor (rider predicted as person); category ones are not.
    assert scores.miou > compute_scores(evaluate_files(cat_files, gt_files).matrix, EVAL_TRAINIDS).miou


def test_per_image_matrices_sum_to_dataset(dataset: tuple[list[Path], list[Path], dict]) -> None:
    pred_files, gt_files, _ = dataset
    acc = ConfusionAccumulator(NUM_LABEL_IDS)
    per_image = [acc.add(read_png(g), read_png(p)) for p, g in zip(pred_files, gt_files, strict=True)]
    assert acc.images == 4 and acc.instances is None
    np.testing.assert_array_equal(np.sum(per_image, axis=0), acc.matrix)
    stacked = confusion(
        np.concatenate([read_png(g) for g in gt_files]),
        np.concatenate([read_png(p) for p in pred_files]),
        NUM_LABEL_IDS,
    )
    np.testing.assert_array_equal(stacked, acc.matrix)
    # Per-image class-level matrices (K x K+1) sum too, since aggregation is linear.
    parts = [compute_scores(m, EVAL_TRAINIDS).matrix for m in per_image]
    np.testing.assert_array_equal(np.sum(parts, axis=0), acc.scores(EVAL_TRAINIDS).matrix)


def test_accumulator_from_worker_threads(dataset: tuple[list[Path], list[Path], dict]) -> None:
    pred_files, gt_files, _ = dataset
    triples = [
        (read_png(g), read_png(p), read_png(Path(str(g).replace("labelIds", "instanceIds"))))
        for p, g in zip(pred_files, gt_files, strict=True)
    ] * 8
    serial, threaded = ConfusionAccumulator(NUM_LABEL_IDS), ConfusionAccumulator(NUM_LABEL_IDS)
    for triple in triples:
        serial.add(*triple)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda t: threaded.add(*t), triples))
    assert threaded.images == serial.images == threaded.instance_images == 32
    np.testing.assert_array_equal(threaded.matrix, serial.matrix)
    assert threaded.instances is not None and serial.instances is not None
    np.testing.assert_allclose(threaded.instances.class_tp_w, serial.instances.class_tp_w, rtol=1e-12)
    np.testing.assert_array_equal(threaded.instances.cat_fn, serial.instances.cat_fn)
    with pytest.raises(ValueError, match="matrix"):
        serial.merge(np.zeros((19, 20), np.int64))
    with pytest.raises(ValueError, match="labelIds"):
        ConfusionAccumulator(19).add(*triples[0])


def naive_instance_counts(instances: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """evaluatePair's loop: one mask per instance."""
    stats = {LABEL_BY_ID[i].name: dict.fromkeys(("tp", "fn", "tpw", "fnw"), 0.0) for i in INSTANCE_CLASS_IDS}
    stats.update({cat: dict.fromkeys(("tp", "fn", "tpw", "fnw"), 0.0) for cat in INSTANCE_CATEGORIES})
    cat_ids = dict(zip(INSTANCE_CATEGORIES, INSTANCE_CATEGORY_IDS, strict=True))
    for inst_id in np.unique(instances[instances > 1000]):
        label = LABEL_BY_ID[int(inst_id) // 1000]
        if label.ignore_in_eval:
            continue
        mask = instances == inst_id
        size = int(mask.sum())
        weight = AVG_CLASS_SIZE[label.name] / size
        tp = int((pred[mask] == label.id).sum())
        cat_tp = int(np.isin(pred[mask], cat_ids[label.category]).sum())
        for key, hit in ((label.name, tp), (label.category, cat_tp)):
            stats[key]["tp"] += hit
            stats[key]["fn"] += size - hit
            stats[key]["tpw"] += hit * weight
            stats[key]["fnw"] += (size - hit) * weight
    return stats


def test_instance_counts_equal_per_instance_loop(counting: str) -> None:
    rng = np.random.default_rng(7)
    _gt, inst, pred = random_scene(rng, H, W, things=25)
    assert (metrics._run_starts(inst.ravel(), pred.ravel()) is not None) == (counting == "runs")
    counts = instance_counts(inst.astype(np.int32), pred)
    expected = naive_instance_counts(inst, pred)
    names = [LABEL_BY_ID[i].name for i in INSTANCE_CLASS_IDS]
    for arrays, keys in (
        ((counts.class_tp, counts.class_fn, counts.class_tp_w, counts.class_fn_w), names),
        ((counts.cat_tp, counts.cat_fn, counts.cat_tp_w, counts.cat_fn_w), INSTANCE_CATEGORIES),
    ):
        for i, key in enumerate(keys):
            got = [float(a[i]) for a in arrays]
            want = [expected[key][f] for f in ("tp", "fn", "tpw", "fnw")]
            assert all(same(g, w) for g, w in zip(got, want, strict=True)), (key, got, want)
    assert counts.class_tp.sum() > 0 and counts.class_fn.sum() > 0
    # uint16 input (as PIL decodes the PNG) gives the same result.
    assert np.array_equal(instance_counts(inst, pred).class_tp_w, counts.class_tp_w)


@pytest.mark.parametrize("block", [1, 16])
def test_instance_counts_by_hand(block: int) -> None:
    inst = np.array([[26001, 26001, 26001, 26001], [24002, 24002, 26, 29001]], dtype=np.int32)
    pred = np.array([[26, 26, 27, 255], [25, 24, 26, 26]], dtype=np.uint8)  # 255: outside labelIds
    inst, pred = (
        np.kron(inst, np.ones((block, block), np.int32)),
        np.kron(pred, np.ones((block, block), np.uint8)),
    )
    assert (metrics._run_starts(inst.ravel(), pred.ravel()) is not None) == (block > 1)
    counts = instance_counts(inst, pred)
    px = block * block
    car, person = INSTANCE_CLASS_IDS.index(26), INSTANCE_CLASS_IDS.index(24)
    assert counts.class_tp[car] == 2 * px and counts.class_fn[car] == 2 * px
    assert counts.class_tp[person] == px and counts.class_fn[person] == px
    assert math.isclose(counts.class_tp_w[car], 2 * px * (AVG_CLASS_SIZE["car"] / (4 * px)), rel_tol=REL)
    vehicle, human = INSTANCE_CATEGORIES.index("vehicle"), INSTANCE_CATEGORIES.index("human")
    assert counts.cat_tp[vehicle] == 3 * px and counts.cat_fn[vehicle] == px  # truck counts as vehicle
    assert counts.cat_tp[human] == 2 * px and counts.cat_fn[human] == 0  # rider counts as human
    # Crowd (26) and caravan (29001, ignored) pixels count nowhere.
    assert counts.class_tp.sum() + counts.class_fn.sum() == 6 * px
    total = counts + counts + InstanceCounts.zeros()
    assert total.class_tp[car] == 4 * px and math.isclose(
        total.cat_fn_w[vehicle], 2 * counts.cat_fn_w[vehicle]
    )


def test_bad_instances_name_the_file() -> None:
    pred = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(InputError, match=r"frame_instanceIds\.png.*road"):
        instance_counts(np.full((2, 2), 7001, np.int32), pred, path="frame_instanceIds.png")
    with pytest.raises(InputError, match="40001"):
        instance_counts(np.full((2, 2), 40001, np.int32), pred, path="x.png")
    with pytest.raises(InputError, match=r"x\.png"):
        instance_counts(np.zeros((2, 3), np.int32), pred, path="x.png")
    with pytest.raises(InputError, match=r"pred\.png.*\(2, 3\)"):
        confusion(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 34, path="pred.png")


def reference_confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    g, p = gt.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    keep = (g >= 0) & (g < n)
    p = np.where((p < 0) | (p > n), n, p)
    out = np.zeros((n, n + 1), dtype=np.int64)
    np.add.at(out, (g[keep], p[keep]), 1)
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
@pytest.mark.parametrize("n", [1, 34, 255])
def test_confusion_blocky_and_noisy_maps(n: int, dtype: type) -> None:
    rng = np.random.default_rng(n)
    small_gt = rng.integers(0, 256, (40, 50)).astype(dtype)
    small_pred = rng.integers(0, 256, (40, 50)).astype(dtype)
    blocky_gt, blocky_pred = (
        np.kron(small_gt, np.ones((6, 10), dtype)),
        np.kron(small_pred, np.ones((6, 10), dtype)),
    )
    assert metrics._run_starts(blocky_gt.ravel(), blocky_pred.ravel()) is not None
    assert metrics._run_starts(small_gt.ravel(), small_pred.ravel()) is None
    for gt, pred in ((blocky_gt, blocky_pred), (small_gt, small_pred)):
        got = confusion(gt, pred, n)
        assert got.dtype == np.int64 and got.shape == (n, n + 1)
        np.testing.assert_array_equal(got, reference_confusion(gt, pred, n))


def test_confusion_by_hand_and_dtype_paths() -> None:
    gt = np.array([[0, 1, 2, 255], [1, 1, 3, 0]], dtype=np.uint8)
    pred = np.array([[0, 2, 2, 1], [1, 255, 3, 9]], dtype=np.uint8)
    expected = np.zeros((4, 5), dtype=np.int64)
    for g, p in zip(gt.ravel(), pred.ravel(), strict=True):
        if g < 4:
            expected[g, min(p, 4)] += 1
    got = confusion(gt, pred, 4)
    assert got.dtype == np.int64 and got.shape == (4, 5)
    np.testing.assert_array_equal(got, expected)
    assert got[0, 4] == 1 and got[1, 4] == 1 and got.sum() == 7
    np.testing.assert_array_equal(confusion(gt.astype(np.int32), pred.astype(np.int64), 4), expected)
    # Negative or too large values: never a GT row, always the 'outside' column.
    signed_gt, signed_pred = gt.astype(np.int16), pred.astype(np.int16)
    signed_gt[0, 0], signed_pred[0, 1], signed_pred[1, 0] = -1, -3, 300
    got = confusion(signed_gt, signed_pred, 4)
    assert got[0, 0] == 0 and got[1, 4] == 3 and got[1, 1] == 0 and got.sum() == 6
    with pytest.raises(InputError, match="integers"):
        confusion(gt.astype(np.float32), pred, 4)


def test_precision_recall_f1_by_hand() -> None:
    scheme = custom_eval_scheme(ClassScheme("custom:abc", ("a", "b", "c"), ((1, 1, 1),) * 3, 255))
    matrix = np.array([[5, 1, 0, 2], [2, 3, 1, 0], [0, 0, 0, 0]], dtype=np.int64)
    s = compute_scores(matrix, scheme)
    # a: tp 5 fp 2 fn 3; b: tp 3 fp 1 fn 3; c: tp 0 fp 1 fn 0 (predicted, never in GT).
    np.testing.assert_allclose(s.iou, [5 / 10, 3 / 7, 0.0], rtol=REL)
    np.testing.assert_allclose(s.precision, [5 / 7, 3 / 4, 0.0], rtol=REL)
    np.testing.assert_allclose(s.recall[:2], [5 / 8, 3 / 6], rtol=REL)
    assert math.isnan(s.recall[2])
    f1 = [2 * p * r / (p + r) for p, r in ((5 / 7, 5 / 8), (3 / 4, 3 / 6))]
    np.testing.assert_allclose(s.f1, [*f1, 0.0], rtol=REL)
    assert math.isclose(s.miou, (0.5 + 3 / 7 + 0.0) / 3, rel_tol=REL)
    assert math.isclose(s.pixel_accuracy, 8 / 14, rel_tol=REL)
    np.testing.assert_array_equal(s.matrix, matrix)
    assert s.category_names == () and s.category_iou.size == 0 and math.isnan(s.mean_category_iou)
    assert np.isnan(s.iiou).all() and math.isnan(s.miiou)


def test_nan_handling() -> None:
    scheme = custom_eval_scheme(ClassScheme("custom:ab", ("a", "b"), ((1, 1, 1),) * 2, 255))
    empty = compute_scores(np.zeros((2, 3), np.int64), scheme)
    assert np.isnan(empty.iou).all() and math.isnan(empty.miou) and math.isnan(empty.pixel_accuracy)
    assert np.isnan(empty.precision).all() and np.isnan(empty.f1).all()
    only_a = compute_scores(np.array([[3, 0, 1], [0, 0, 0]], np.int64), scheme)
    assert only_a.iou[0] == 0.75 and math.isnan(only_a.iou[1]) and only_a.miou == 0.75
    doc = only_a.to_dict()
    text = json.dumps(doc, allow_nan=False)  # raises if a NaN slipped through
    assert json.loads(text)["classes"]["b"] == dict.fromkeys(("iou", "precision", "recall", "f1", "iiou"))
    assert doc["classes"]["a"]["iou"] == 0.75 and doc["miiou"] is None
    assert doc["confusion"]["matrix"] == [[3, 0, 1], [0, 0, 0]]
    # Without instance counts a Cityscapes scheme has no iIoU at all (not zeros).
    cs = compute_scores(np.eye(NUM_LABEL_IDS, NUM_LABEL_IDS + 1, dtype=np.int64), EVAL_TRAINIDS)
    assert np.isnan(cs.iiou).all() and np.isnan(cs.category_iiou).all() and cs.miou == 1.0


@pytest.mark.parametrize("block", [1, 12])
def test_custom_scheme_matches_hand_counts(block: int) -> None:
    scheme = custom_eval_scheme(ClassScheme("custom:xyz", ("x", "y", "z"), ((1, 1, 1),) * 3, 255))
    rng = np.random.default_rng(11)
    ones = np.ones((block, block), np.uint8)
    gt = np.kron(rng.choice(np.array([0, 1, 2, 255], np.uint8), (60, 80)), ones)
    pred = np.kron(rng.choice(np.array([0, 1, 255], np.uint8), (60, 80)), ones)  # never z; 255: no class
    s = compute_scores(confusion(gt, pred, 3), scheme)
    for k in range(3):
        valid = gt != 255
        tp = np.sum((gt == k) & (pred == k))
        fp = np.sum(valid & (gt != k) & (pred == k))
        fn = np.sum((gt == k) & (pred != k))
        assert math.isclose(s.iou[k], tp / (tp + fp + fn), rel_tol=REL), k
    assert s.iou[2] == 0.0 and s.matrix[:, 3].sum() == np.sum((gt != 255) & (pred == 255))
    d = s.to_dict()
    assert set(d["classes"]) == {"x", "y", "z"} and d["categories"] == {}


def test_official_square_matrix_is_accepted(dataset: tuple[list[Path], list[Path], dict]) -> None:
    _, _, official = dataset
    square = np.array(official["confMatrix"], dtype=np.uint64)
    scores = compute_scores(square, EVAL_TRAINIDS)
    for k, name in enumerate(scores.class_names):
        assert_same(scores.iou[k], official["classScores"][name], name)
    with pytest.raises(ValueError, match="34, 35"):
        compute_scores(np.zeros((19, 20), np.int64), EVAL_TRAINIDS)


def test_sparse_counts_round_trip_and_sum_exactly() -> None:
    from app.core.domain.metrics import SparseCounts

    rng = np.random.default_rng(3)
    dense = np.zeros((34, 35), dtype=np.int64)
    cells = rng.choice(dense.size, 40, replace=False)
    dense.ravel()[cells] = rng.integers(1, 2**40, 40)  # beyond int32: no silent narrowing
    sparse = SparseCounts.from_dense(dense)
    assert sparse.cells.size == 40 and sparse.cells.dtype == np.uint16
    np.testing.assert_array_equal(sparse.dense(), dense)
    total = np.ones_like(dense)
    sparse.add_to(total)
    sparse.add_to(total)
    np.testing.assert_array_equal(total, 1 + 2 * dense)
    with pytest.raises(ValueError, match="cannot add"):
        sparse.add_to(np.zeros((19, 20), dtype=np.int64))
    big = np.zeros((255, 256), dtype=np.int64)  # a 255-class custom scheme still fits uint16 cells
    big[254, 255] = 7
    assert SparseCounts.from_dense(big).dense()[254, 255] == 7
    empty = SparseCounts.from_dense(np.zeros((3, 4), dtype=np.int64))
    assert empty.cells.size == 0 and not empty.dense().any()
