"""What the Models dock and the hover readout show, assembled from plain objects (no widgets touched)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.core.domain.labels import ClassScheme, EvalScheme
from app.evaluation.frames import Frame
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


def panel_titles(
    predictors: Sequence[SegmenterPredictor | None],
    refused: Sequence[str | None],
    frame: Frame | None,
    scheme_key: str,
    truth: str,
) -> list[tuple[str, str]]:
    """(title, tooltip) of panels A and B: the model, and this image's mIoU on the scheme and ground truth
    (or why the model is not scored)."""
    titles: list[tuple[str, str]] = []
    for slot, predictor in enumerate(predictors[:2]):
        if predictor is None:
            titles.append((f"{SLOTS[slot]}: no model — use Model {SLOTS[slot]}… or drop an .onnx file", ""))
            continue
        text, tip = f"{SLOTS[slot]}: {predictor.info.name}", predictor.info.source
        if refused[slot]:
            text += f"   not scored on {scheme_key}"
            tip = str(refused[slot])
        elif frame is not None and slot in frame.slots:
            image_eval = frame.evals[frame.slots.index(slot)]
            if image_eval is not None and image_eval.evaluated:
                text += f"   mIoU {image_eval.miou * 100:.1f}   {image_eval.timings.total_ms:.0f} ms"
                tip = f"this image, scheme {scheme_key}, {truth}"
        titles.append((text, tip))
    return titles
