"""The demo the window opens by default: the synthetic validation set (generated on first use into the
cache folder) and the shipped demo model pairing (models/demo/demo.json)."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.io.paths import cache_dir, models_dir

DEMO_VERSION = 1
DEMO_COUNT = 20
DEMO_SIZE = (512, 1024)
DEMO_SEED = 20261124  # the validation seed; training data uses other seeds


def demo_dataset_dir() -> Path:
    """Where the synthetic demo set lives (generated on first use)."""
    return cache_dir() / f"demo-v{DEMO_VERSION}"


def ensure_demo_dataset() -> Path:
    """Generate the demo set if it is missing or incomplete. Takes a few seconds the first time."""
    from app.core.scenes.generator import generate

    root = demo_dataset_dir()
    marker = root / ".complete"
    if not marker.exists():
        generate(root, DEMO_COUNT, size=DEMO_SIZE, seed=DEMO_SEED, split="val")
        marker.write_text(json.dumps({"count": DEMO_COUNT, "seed": DEMO_SEED}))
    return root


def demo_models() -> dict[str, str]:
    """The shipped demo pairing (models/demo/demo.json: {"a": ..., "b": ..., "scheme": ...}), if any."""
    root = models_dir()
    if root is None or not (root / "demo" / "demo.json").is_file():
        return {}
    spec = json.loads((root / "demo" / "demo.json").read_text(encoding="utf-8"))
    out = {k: str(root / "demo" / v) for k, v in spec.items() if k in ("a", "b")}
    # More shipped models for the Leaderboard dock (e.g. an FP32 model beside its INT8): "a|b|c".
    extra = spec.get("leaderboard", [])
    if isinstance(extra, list) and extra:
        out["leaderboard"] = "|".join(str(root / "demo" / str(v)) for v in extra)
    if "scheme" in spec:
        out["scheme"] = str(spec["scheme"])
    return out
