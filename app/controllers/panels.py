"""What the Models dock and the hover readout show, assembled from plain objects (no widgets touched)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.core.domain.labels import ClassScheme, EvalScheme
from app.evaluation.predictors import SegmenterPredictor, mapping_for
from app.views.metrics_panel import ModelSummary
from app.views.models_panel import ModelCard

SLOTS = ("A", "B")


def model_cards(
    predictors: Sequence[SegmenterPredictor | None],
    summaries: Sequence[ModelSummary | None],
    scheme: EvalScheme,
    gt_scheme: ClassScheme,
) -> list[ModelCard | None]:
    """Facts and class mapping of models A and B for the Models dock."""
    cards: list[ModelCard | None] = []
    for slot, predictor in enumerate(predictors):
        if predictor is None:
            cards.append(None)
            continue
        info = predictor.info
        spec = info.input
        size = f"{spec.height}×{spec.width}" if spec.height and spec.width else "any size"
        summary = summaries[slot] if slot < len(summaries) else None
        latency = summary.latency_ms if summary is not None else math.nan
        mapping = mapping_for(info, gt_scheme)
        to_class = scheme.id_to_class()
        pairs = [
            (name, scheme.names[c] if (c := int(to_class[int(mapping.lut[i])])) < 255 else "not evaluated")
            for i, name in enumerate(info.class_names)
        ]
        fields = {
            "name": info.name,
            "backend": info.backend,
            "source": info.source,
            "classes": str(len(info.class_names)),
            "scheme": info.scheme,
            "input": f"{size}, {spec.layout}, {spec.channel_order}, resize {spec.resize}",
            "output": info.output,
            "file size": "remote" if info.file_size is None else f"{info.file_size / 1e6:.2f} MB",
            "digest": info.digest[:16],
            "latency": "–" if math.isnan(latency) else f"{latency:.0f} ms (p50)",
        }
        cards.append(ModelCard(SLOTS[slot], fields, pairs))
    return cards
