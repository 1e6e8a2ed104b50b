"""Confusion drill-down without Qt: the images of an evaluation ranked by one confusion (GT class as
predicted class), for the metrics panel's drill list."""

from __future__ import annotations

from app.core.domain.metrics import aggregate
from app.evaluation.results import ModelAccumulator


def rank_images(evaluation: ModelAccumulator, gt: int, pred: int, limit: int = 200) -> list[tuple[str, int]]:
    """(image key, pixels of GT class `gt` predicted as `pred`), most first, images without any left out."""
    members = evaluation.scheme.members
    ranked = []
    for key, image in evaluation.images.items():
        if image.matrix is None:
            continue
        count = int(aggregate(image.matrix, members)[gt, pred])
        if count:
            ranked.append((key, count))
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked[:limit]
