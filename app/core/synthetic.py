"""Procedural street scenes in the exact Cityscapes layout (the demo data and the tests' data). STUB."""

from __future__ import annotations

from pathlib import Path


def generate(
    out: str | Path,
    count: int,
    size: tuple[int, int] = (512, 1024),
    seed: int = 0,
    split: str = "val",
) -> Path:
    """Write `count` scenes of size (height, width) under out/leftImg8bit/<split>/<city>/ and
    out/gtFine/<split>/<city>/; deterministic for a given seed. Returns `out`."""
    raise NotImplementedError
