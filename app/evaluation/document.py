"""An EvaluationResult at the file boundary: the JSON document of `seglens evaluate --json` (also embedded
by report and gate), and the plain-text summary the commands print. Nothing else turns results into dicts."""

from __future__ import annotations

import math

from app import __version__
from app.evaluation.results import EvaluationResult, ModelResult, nan_to_none


def result_document(result: EvaluationResult) -> dict[str, object]:
    """The JSON document (NaN written as null)."""
    dataset = result.dataset
    return {
        "seglens_version": __version__,
        "dataset": {
            "root": str(dataset.root),
            "kind": dataset.kind,
            "split": dataset.split,
            "images": result.images_total,
        },
        "scheme": result.scheme.key,
        "classes": list(result.scheme.names),
        "ground_truth": {
            "kind": result.ground_truth.kind,
            "project": None if result.ground_truth.project is None else str(result.ground_truth.project),
            "edited_images": result.ground_truth.edited_images,
        },
        "basis": result.basis(),
        "engine": result.engine,
        "cancelled": result.cancelled,
        "wall_seconds": round(result.wall_s, 3),
        "sample_errors": dict(result.sample_errors),
        "skipped": [{"key": s.key, "model": s.model, "reason": s.reason} for s in result.skipped()],
        "images_without_labels": result.unlabelled(),
        "write_errors": list(result.write_errors),
        "models": [model_document(m, _boundary_iou(result, i)) for i, m in enumerate(result.models)],
        **_analysis_sections(result),
    }


def _analysis_sections(result: EvaluationResult) -> dict[str, object]:
    """`comparison` (paired bootstrap of B - A), `boundary`, `label_errors`, `missed_objects`: null or
    empty when not computed (one model; --no-analysis)."""
    if result.analysis is None:
        return {"comparison": None, "boundary": {}, "label_errors": [], "missed_objects": None}
    return result.analysis.to_dict()


def model_document(model: ModelResult, boundary_iou: float | None = None) -> dict[str, object]:
    """One model's entry in the document (`boundary_iou`: mean over classes, from the run's analysis)."""
    info = model.info
    names = model.scheme.names
    per_image = [
        {
            "key": key,
            "miou": nan_to_none(r.miou),
            "pixel_accuracy": nan_to_none(r.pixel_accuracy),
            "latency_ms": round(r.timings.total_ms, 3),
            "iou": (
                {name: nan_to_none(float(v)) for name, v in zip(names, r.iou, strict=True)}
                if r.iou is not None
                else None
            ),
        }
        for key, r in model.images.items()
    ]
    return {
        "name": info.name,
        "backend": info.backend,
        "source": info.source,
        "digest": info.digest,
        "file_size": info.file_size,
        "class_names": list(info.class_names),
        "model_scheme": info.scheme,
        "mapping": [list(pair) for pair in model.mapping.describe()],
        "images_evaluated": model.images_evaluated,
        "errors": dict(model.errors),
        "metrics": model.scores.to_dict(),
        "boundary_iou": boundary_iou,
        "latency_ms": model.latency.to_dict(),
        "memory_bytes": model.memory_bytes,
        "cache": None if model.cache is None else {"hits": model.cache.hits, "misses": model.cache.misses},
        "per_image": per_image,
    }


def _boundary_iou(result: EvaluationResult, index: int) -> float | None:
    if result.analysis is None or index >= len(result.analysis.boundary):
        return None
    scores = result.analysis.boundary[index]
    return None if scores is None else nan_to_none(scores.mean_boundary_iou)


def format_summary(result: EvaluationResult) -> str:
    """A plain-text table: one column per model, B-A for two models, and the line saying what the
    numbers were computed on."""
    models = result.models
    names = [_short(m.info.name, 18) for m in models]
    header = f"{'class':<16}" + "".join(f"{n:>19}" for n in names)
    two = len(models) == 2
    if two:
        header += f"{'B-A':>9}"
    lines = [header, "-" * len(header)]

    def row(label: str, values: list[float]) -> str:
        text = f"{label:<16}" + "".join(f"{_pct(v):>19}" for v in values)
        if two and not math.isnan(values[0]) and not math.isnan(values[1]):
            text += f"{(values[1] - values[0]) * 100:>+9.2f}"
        return text

    for k, cls in enumerate(result.scheme.names):
        lines.append(row(_short(cls, 15), [float(m.scores.iou[k]) for m in models]))
    lines.append("-" * len(header))
    lines.append(row("mIoU", [m.scores.miou for m in models]))
    lines.append(row("iIoU", [m.scores.miiou for m in models]))
    lines.append(row("pixel acc.", [m.scores.pixel_accuracy for m in models]))
    lines.append(row("category mIoU", [m.scores.mean_category_iou for m in models]))
    lat = "".join(f"{_ms(m.latency.p50):>19}" for m in models)
    lines.append(f"{'latency p50':<16}{lat}")
    if result.analysis is not None and result.analysis.bootstrap is not None:
        from app.analysis.bootstrap import summary

        lines.append(summary(result.analysis.bootstrap))
    lines.append(f"computed on: {result.basis()}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
