"""Try a hosted model before it is saved: open it from its manifest (which checks the server's health and
the model's description), run one prediction, and report what came back. Runs on a worker thread.

The manifest is written to a private temporary folder for the check only. A key typed by the user (not
yet in the OS keyring) is handed over in a process environment variable named by the temporary
manifest and removed again at once: it never reaches a file, a log or the report.
"""

from __future__ import annotations

import colorsys
import json
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.labels import BUILTIN_SCHEMES, normalize_name


@dataclass(frozen=True)
class ConnectionCheck:
    """What one trial prediction gave: enough for the user to judge before saving."""

    name: str
    backend: str
    source: str
    class_names: tuple[str, ...]
    found: tuple[tuple[str, float], ...]  # (class, share of the image's pixels), most pixels first
    image_size: tuple[int, int]  # (height, width) of the image sent
    round_trip_ms: float  # the whole predict() call as measured here
    server_ms: float | None  # what the server says it spent, when it says
    preview: np.ndarray  # HxWx3 uint8: the mask in the classes' colours

    def describe(self) -> str:
        """A few lines for the dialog: classes found (share of pixels) and the timing."""
        h, w = self.image_size
        classes = ", ".join(f"{name} {share:.0%}" for name, share in self.found[:8])
        more = f" and {len(self.found) - 8} more" if len(self.found) > 8 else ""
        server = f"; the server reports {self.server_ms:.0f} ms" if self.server_ms is not None else ""
        return (
            f"{self.name} ({self.backend}) at {self.source}\n"
            f"{len(self.class_names)} classes; on a {w}x{h} test image found: {classes}{more}\n"
            f"round trip {self.round_trip_ms:.0f} ms{server}"
        )


def try_connection(manifest: Mapping[str, Any], image: np.ndarray, key: str | None = None) -> ConnectionCheck:
    """Open the model `manifest` describes, predict `image` once, close it. Raises what loading or the
    prediction raises (ModelLoadError, PredictError), with their messages naming the endpoint."""
    from app.inference.registry import load_model

    document = json.loads(json.dumps(dict(manifest)))
    variable = None
    if key:
        variable = f"SEGLENS_TRIAL_KEY_{secrets.token_hex(8)}"
        options = document.setdefault("options", {})
        options.pop("keyring_service", None)
        options["api_key_env"] = variable
        os.environ[variable] = key
    try:
        with tempfile.TemporaryDirectory(prefix="seglens-check-") as folder:
            path = Path(folder) / "manifest.json"
            path.write_text(json.dumps(document), encoding="utf-8")
            model = load_model(path)
    finally:
        if variable is not None:
            os.environ.pop(variable, None)
    try:
        start = time.perf_counter()
        prediction = model.predict(image)
        elapsed = (time.perf_counter() - start) * 1e3
        info = model.info
    finally:
        model.close()
    timings = prediction.timings
    reported = bool(getattr(timings, "server_reported", False))
    labels = prediction.labels
    counts = np.bincount(labels.ravel(), minlength=len(info.class_names))
    order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    return ConnectionCheck(
        name=info.name,
        backend=info.backend,
        source=info.source,
        class_names=info.class_names,
        found=tuple(
            (info.class_names[i] if i < len(info.class_names) else str(i), float(counts[i] / labels.size))
            for i in order
        ),
        image_size=(int(labels.shape[0]), int(labels.shape[1])),
        round_trip_ms=elapsed,
        server_ms=float(timings.inference_ms) if reported else None,
        preview=class_colours(info.class_names, info.scheme)[labels],
    )


def class_colours(names: tuple[str, ...], scheme: str) -> np.ndarray:
    """A 256x3 palette for a model's classes: its builtin scheme's colours, else colours of builtin
    classes of the same name (the apps' categories), else evenly spread hues."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    if scheme in BUILTIN_SCHEMES:
        return BUILTIN_SCHEMES[scheme].palette()
    known = {
        normalize_name(n): c for s in BUILTIN_SCHEMES.values() for n, c in zip(s.names, s.colors, strict=True)
    }
    for index, name in enumerate(names):
        colour = known.get(normalize_name(name))
        if colour is None:
            r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.65, 0.95)
            colour = (int(r * 255), int(g * 255), int(b * 255))
        palette[index] = colour
    return palette
