"""Evaluation results (`seglens evaluate --json`) attached to a served model for GET /metrics/{model}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.domain.errors import InputError
from app.inference.base import ModelInfo, Segmenter

# Left out of /metrics: large (the confusion matrix, per-image rows) and available in the file itself.
_DROPPED_METRICS = ("confusion",)


def load_evaluation(path: str | Path, served_name: str, info: ModelInfo) -> dict[str, Any]:
    """The summary of the entry for this model in an evaluate results file. Raises InputError.

    The entry is the one with the model's file digest, else the one with its name (served or own), else
    the only entry; `digest_matches` tells the client whether the numbers are for this exact file.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(source, f"cannot read evaluation results: {exc}") from exc
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise InputError(source, "not a `seglens evaluate --json` results file (no 'models' list)")
    entry = _pick_entry(entries, served_name, info)
    if entry is None:
        names = ", ".join(str(e.get("name")) for e in entries)
        raise InputError(source, f"no results for model {served_name!r} ({info.name}); the file has: {names}")
    return entry_summary(document, entry, info, source.name)


def entry_summary(
    document: dict[str, Any], entry: dict[str, Any], info: ModelInfo, source: str
) -> dict[str, Any]:
    """What /metrics/{model} shows of one model's entry in an evaluate document."""
    metrics = entry.get("metrics")
    if not isinstance(metrics, dict):
        metrics = {}
    return {
        "source": source,
        "evaluated_model": entry.get("name"),
        "digest_matches": entry.get("digest") == info.digest,
        "dataset": document.get("dataset"),
        "scheme": document.get("scheme"),
        "images_evaluated": entry.get("images_evaluated"),
        "metrics": {k: v for k, v in metrics.items() if k not in _DROPPED_METRICS},
        "latency_ms": entry.get("latency_ms"),
    }



def evaluate_served(
    models: dict[str, Segmenter], dataset: str | Path, *, limit: int | None = None
) -> dict[str, dict[str, Any]]:
    """Evaluate the served models on `dataset` with the evaluation service (one run, one scheme for all,
    the same numbers as `seglens evaluate`), as /metrics/{model} summaries keyed by served name."""
    from app.core.io.datasets import open_dataset
    from app.evaluation.document import result_document
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor, choose_scheme

    data = open_dataset(dataset)
    if not data.refs:
        raise InputError(data.root, "the dataset has no images")
    names = list(models)
    predictors = [SegmenterPredictor(models[name]) for name in names]
    scheme = choose_scheme(None, predictors, data.gt_scheme)
    refs = data.refs[:limit] if limit else data.refs
    document = result_document(Evaluator(data, predictors, scheme).run(refs))
    entries: list[dict[str, Any]] = document["models"]  # type: ignore[assignment]
    source = f"evaluated at start-up on {data.root} ({document['basis']})"
    return {
        name: entry_summary(document, entry, models[name].info, source)
        for name, entry in zip(names, entries, strict=True)
    }


def _pick_entry(entries: list[dict[str, Any]], served_name: str, info: ModelInfo) -> dict[str, Any] | None:
    for entry in entries:
        if entry.get("digest") == info.digest:
            return entry
    for entry in entries:
        if entry.get("name") in (served_name, info.name):
            return entry
    return entries[0] if len(entries) == 1 else None
