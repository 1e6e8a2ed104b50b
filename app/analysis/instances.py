"""Missed objects: per ground-truth instance, each model's recall, and which instances one model finds
and the other misses, by class and size.

Instances are the Cityscapes instanceIds > 1000 (id // 1000 is the labelId), as the official evaluation
counts them: smaller ids are crowd regions ("cars" as one group) or stuff and never form an instance, and
instances of classes the EvalScheme does not evaluate (caravan, trailer) are skipped. Recall is the share of
the instance's pixels a model predicts as the instance's class (in the scheme's classes: on the categories
scheme a car predicted as truck is 'vehicle', found). An instance is found when recall >= `threshold`.

Size buckets scale COCO's (area < 32², < 96² at COCO's ~640-pixel images) with the image's longer side:
small < (32 s)², medium < (96 s)², large above, s = max(H, W) / 640; at 1024x2048 that is 10,486 and
94,372 pixels, and an object is in the same bucket whether it is evaluated at full or half resolution.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis.classes import class_map
from app.core.domain.errors import InputError
from app.core.domain.labels import IGNORE, NUM_LABEL_IDS, EvalScheme

INSTANCE_DIVISOR = 1000
DEFAULT_THRESHOLD = 0.5
SIZE_BUCKETS = ("small", "medium", "large")


def size_limits(shape: tuple[int, int]) -> tuple[float, float]:
    """(small below, large from) in pixels for an image of `shape` (see the module docstring)."""
    scale = max(shape) / 640
    return (32 * scale) ** 2, (96 * scale) ** 2


@dataclass(frozen=True)
class InstanceRecall:
    """One ground-truth instance and every model's recall on it."""

    key: str  # the image
    instance_id: int  # Cityscapes instanceId (labelId * 1000 + k)
    class_name: str  # its class in the EvalScheme
    area: int
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1; x1 and y1 exclusive
    size: str  # 'small', 'medium' or 'large'
    recall: tuple[float, ...]  # per model, in the order the predictions were given

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "key": self.key,
            "instance_id": self.instance_id,
            "class": self.class_name,
            "area": self.area,
            "bbox": list(self.bbox),
            "size": self.size,
            "recall": list(self.recall),
        }


def instance_recalls(
    instances: np.ndarray, predictions: Sequence[np.ndarray], scheme: EvalScheme, *, key: str
) -> tuple[InstanceRecall, ...]:
    """Every counted instance of one image with each model's recall (predictions in labelIds)."""
    if not scheme.is_cityscapes:
        raise ValueError("instances need the Cityscapes id space (instanceIds name labelIds)")
    if instances.ndim != 2 or any(p.shape != instances.shape for p in predictions):
        raise InputError(key, f"instance map {instances.shape} and predictions differ in shape")
    if instances.dtype.kind not in "iu":
        raise InputError(key, f"instance map must hold integers, got {instances.dtype}")
    height, width = instances.shape
    lut = scheme.id_to_class()
    where, inverse, inst_ids, classes = _index_instances(instances.ravel(), lut, key)
    count = inst_ids.size
    if count == 0:
        return ()
    areas = np.bincount(inverse, minlength=count)
    recalls = []
    for prediction in predictions:
        predicted = class_map(prediction.ravel()[where], scheme, what=f"{key}: prediction")
        hit = predicted == classes[inverse]
        recalls.append(np.bincount(inverse, weights=hit, minlength=count) / areas)
    rows, cols = np.divmod(where, width)
    y0, y1 = _extent(inverse, rows, count, height)
    x0, x1 = _extent(inverse, cols, count, width)
    small, large = size_limits((height, width))
    names = scheme.names
    return tuple(
        InstanceRecall(
            key=key,
            instance_id=int(inst_ids[i]),
            class_name=names[int(classes[i])],
            area=int(areas[i]),
            bbox=(int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])),
            size=_bucket(int(areas[i]), small, large),
            recall=tuple(float(r[i]) for r in recalls),
        )
        for i in range(count)
    )


def _index_instances(
    flat: np.ndarray, lut: np.ndarray, key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixel indices of counted instances, their instance index, instance ids, instance classes)."""
    where = np.flatnonzero(flat > INSTANCE_DIVISOR)
    ids = flat[where].astype(np.int64)
    empty = np.zeros(0, dtype=np.int64)
    if where.size == 0:
        return empty, empty, empty, empty
    if int(ids.max()) >= NUM_LABEL_IDS * INSTANCE_DIVISOR:
        raise InputError(key, f"instance id {int(ids.max())} names an unknown labelId")
    low = int(ids.min())
    present = np.flatnonzero(np.bincount(ids - low))
    inst_ids = present + low
    classes = lut[inst_ids // INSTANCE_DIVISOR]
    counted = classes != IGNORE
    index_of = np.full(int(present[-1]) + 1, -1, dtype=np.int64)
    index_of[present[counted]] = np.arange(int(counted.sum()))
    inverse = index_of[ids - low]
    keep = inverse >= 0
    return where[keep], inverse[keep], inst_ids[counted], classes[counted]


def _extent(groups: np.ndarray, coords: np.ndarray, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last coordinate per group, from a (group, coordinate) presence table."""
    seen = np.bincount(groups * size + coords, minlength=count * size).reshape(count, size) > 0
    first = np.argmax(seen, axis=1)
    last = size - np.argmax(seen[:, ::-1], axis=1)
    return first, last


def _bucket(area: int, small: float, large: float) -> str:
    return "small" if area < small else "medium" if area < large else "large"


@dataclass(frozen=True)
class Tally:
    """Instances of one (class, size) cell and how many each model found."""

    class_name: str
    size: str
    instances: int
    found: tuple[int, ...]  # per model
    only_first: int  # found by model 0, missed by model 1
    only_second: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "class": self.class_name,
            "size": self.size,
            "instances": self.instances,
            "found": list(self.found),
            "recall_rate": [f / self.instances for f in self.found],
            "a_finds_b_misses": self.only_first,
            "b_finds_a_misses": self.only_second,
        }


@dataclass(frozen=True)
class MissedObjects:
    """A against B on every instance: the instances only one of them finds, and tallies by class and size."""

    models: tuple[str, str]
    threshold: float
    a_finds_b_misses: tuple[InstanceRecall, ...]  # largest first
    b_finds_a_misses: tuple[InstanceRecall, ...]
    tallies: tuple[
        Tally, ...
    ]  # by class (scheme order), then size (small, medium, large); empty cells left out

    def to_dict(self, limit: int = 200) -> dict[str, object]:
        """JSON: the tallies and the first `limit` instances of each list (their full lengths too)."""
        return {
            "models": list(self.models),
            "threshold": self.threshold,
            "size_buckets": "small < (32 s)^2 <= medium < (96 s)^2 <= large px, s = longer side / 640",
            "tallies": [t.to_dict() for t in self.tallies],
            "a_finds_b_misses_total": len(self.a_finds_b_misses),
            "b_finds_a_misses_total": len(self.b_finds_a_misses),
            "a_finds_b_misses": [r.to_dict() for r in self.a_finds_b_misses[:limit]],
            "b_finds_a_misses": [r.to_dict() for r in self.b_finds_a_misses[:limit]],
        }


def compare_instances(
    recalls: Iterable[InstanceRecall],
    scheme: EvalScheme,
    *,
    models: tuple[str, str] = ("A", "B"),
    threshold: float = DEFAULT_THRESHOLD,
) -> MissedObjects:
    """Which instances model 0 finds and model 1 misses (and the reverse), with tallies by class and size."""
    items = list(recalls)
    if any(len(r.recall) < 2 for r in items):
        raise ValueError("every instance needs the recall of two models")
    cells: dict[tuple[str, str], list[InstanceRecall]] = {}
    for item in items:
        cells.setdefault((item.class_name, item.size), []).append(item)
    order = {name: k for k, name in enumerate(scheme.names)}
    tallies = []
    for (name, size), members in sorted(
        cells.items(), key=lambda c: (order[c[0][0]], SIZE_BUCKETS.index(c[0][1]))
    ):
        found = [[r.recall[m] >= threshold for r in members] for m in (0, 1)]
        tallies.append(
            Tally(
                name,
                size,
                len(members),
                (sum(found[0]), sum(found[1])),
                sum(a and not b for a, b in zip(*found, strict=True)),
                sum(b and not a for a, b in zip(*found, strict=True)),
            )
        )

    def largest_first(selected: list[InstanceRecall]) -> tuple[InstanceRecall, ...]:
        return tuple(sorted(selected, key=lambda r: (-r.area, r.key, r.instance_id)))

    only_a = [r for r in items if r.recall[0] >= threshold > r.recall[1]]
    only_b = [r for r in items if r.recall[1] >= threshold > r.recall[0]]
    return MissedObjects(models, threshold, largest_first(only_a), largest_first(only_b), tuple(tallies))


def missed_objects_csv(missed: MissedObjects) -> str:
    """Both lists as CSV text: which model finds the instance, then the instance (bbox x1, y1 exclusive)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    a, b = missed.models
    writer.writerow(["found_by", "missed_by", "key", "instance_id", "class", "size", "area", "x0", "y0", "x1",
                     "y1", f"recall_{a}", f"recall_{b}"])  # fmt: skip
    for found, lost, items in ((a, b, missed.a_finds_b_misses), (b, a, missed.b_finds_a_misses)):
        for r in items:
            writer.writerow([found, lost, r.key, r.instance_id, r.class_name, r.size, r.area, *r.bbox,
                             f"{r.recall[0]:.4f}", f"{r.recall[1]:.4f}"])  # fmt: skip
    return out.getvalue()
