"""Procedural street scenes in the exact Cityscapes layout (the demo data and the tests' data).

Cityscapes itself cannot be redistributed, so the app ships this generator instead. A scene is a small
3-D world (a straight street seen by a pinhole camera: road, sidewalks, buildings, trees, poles, signs,
vehicles, people) painted far to near, so every label and instance mask holds visible pixels only. The
image is then textured (grain per class, lighting, shadows, colour temperature, blur, sensor noise) so that
colour alone does not give the class. The drawing lives in `app.core.scenes.street`; this module
textures it, writes the files and runs the CLI.

Scene i depends only on (seed, split, i): generating 5 scenes then 10 shares the first 5 byte for byte.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from app.core.domain.labels import LABELIDS
from app.core.io.fileutil import atomic_write_bytes
from app.core.runtime.argtypes import parse_size, positive_int, workers_arg
from app.core.scenes.paint import Painter
from app.core.scenes.street import (
    BUS,
    CAR,
    EGO,
    GROUND,
    PARKING,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    TRUCK,
    VEG,
    SceneBuilder,
    smooth_noise,
)

DEFAULT_CITIES: tuple[str, ...] = ("synthburg", "pixelstadt", "rendercity")
FRAME_NB = 19  # Cityscapes annotates the 20th frame of each snippet: <city>_<seq>_000019

# Grain strength per labelId: foliage and grass are rough, sky and paint are smooth.
_GRAIN = np.full(256, 0.05, dtype=np.float32)
_GRAIN[[SKY, EGO]] = 0.015
_GRAIN[[VEG]] = 0.24
_GRAIN[[TERRAIN, GROUND]] = 0.16
_GRAIN[[CAR, TRUCK, BUS]] = 0.03
_GRAIN[[ROAD, SIDEWALK, PARKING]] = 0.07


@dataclass(frozen=True)
class SyntheticScene:
    """One generated frame, in memory."""

    city: str
    frame: str  # e.g. "synthburg_000000_000019"
    image: np.ndarray  # HxWx3 uint8 RGB
    label_ids: np.ndarray  # HxW uint8 Cityscapes labelIds
    instance_ids: np.ndarray  # HxW uint16 instanceIds (labelId*1000+k for instances)


def frame_name(index: int, cities: Sequence[str] = DEFAULT_CITIES) -> tuple[str, str]:
    """(city, frame) of scene `index`: cities take turns, the sequence number counts per city."""
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_{FRAME_NB:06d}"


def _finish(rng: np.random.Generator, paint: Painter, labels: np.ndarray) -> np.ndarray:
    """Lighting, grain, colour grading, blur and sensor noise over the flat-shaded drawing."""
    h, w = labels.shape
    img = np.asarray(paint.rgb, dtype=np.float32)
    shade = np.asarray(paint.shade.filter(ImageFilter.GaussianBlur(max(1.0, w / 600))), np.float32) / 255
    light = shade * (1 + rng.uniform(0.04, 0.12) * smooth_noise(rng, h, w, (4, 8)))
    grain_small = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32)
    grain = np.asarray(Image.fromarray(grain_small, "F").resize((w, h), Image.Resampling.BILINEAR))
    light *= 1 + grain * _GRAIN[labels]
    img *= light[..., None]
    temp = rng.uniform(-1, 1) * 0.09
    img *= np.array([1 + temp, 1.0, 1 - temp], dtype=np.float32) * np.float32(rng.uniform(0.72, 1.18))
    contrast = np.float32(rng.uniform(0.8, 1.15))
    img = (img - 110) * contrast + 110
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9) * max(w / 1024, 0.5)))
    noisy = np.asarray(out, dtype=np.float32)
    noisy += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(1.5, 4.5))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _renumber(inst: np.ndarray) -> np.ndarray:
    """Instance k counts from 0 per class over the instances that are still visible (as Cityscapes)."""
    lut = np.arange(34 * 1000, dtype=np.uint16)
    ids = np.unique(inst[inst >= 1000])
    for cls in np.unique(ids // 1000):
        members = ids[ids // 1000 == cls]
        lut[members] = cls * 1000 + np.arange(len(members))
    return lut[inst]


def _scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    # The split is part of the seed so that "train" and "val" with the same seed never share scenes.
    return np.random.default_rng([seed, zlib.crc32(split.encode("utf-8")), index])


def render_scene(
    index: int,
    size: tuple[int, int] = (512, 1024),
    seed: int = 0,
    split: str = "val",
    cities: Sequence[str] = DEFAULT_CITIES,
) -> SyntheticScene:
    """Render scene `index` of the (seed, split) stream in memory; size is (height, width)."""
    height, width = size
    if height < 16 or width < 16:
        raise ValueError(f"scene size {height}x{width} is too small (at least 16x16)")
    rng = _scene_rng(seed, split, index)
    builder = SceneBuilder(rng, height, width)
    builder.build()
    labels = np.asarray(builder.paint.lab, dtype=np.uint8)
    instances = _renumber(np.asarray(builder.paint.inst, dtype=np.int32))
    image = _finish(rng, builder.paint, labels)
    city, frame = frame_name(index, cities)
    return SyntheticScene(city, frame, image, labels, instances)


def _png(array: np.ndarray, mode: str) -> bytes:
    image = Image.fromarray(array)  # the dtype picks the mode: uint16 -> "I;16", 16-bit greyscale PNG
    if image.mode != mode:
        raise AssertionError(f"expected a {mode} image, got {image.mode}")
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=2)
    return buf.getvalue()


def _write_scene(out: Path, split: str, scene: SyntheticScene) -> None:
    img_dir = out / "leftImg8bit" / split / scene.city
    gt_dir = out / "gtFine" / split / scene.city
    color = LABELIDS.palette()[scene.label_ids]
    atomic_write_bytes(img_dir / f"{scene.frame}_leftImg8bit.png", _png(scene.image, "RGB"))
    atomic_write_bytes(gt_dir / f"{scene.frame}_gtFine_labelIds.png", _png(scene.label_ids, "L"))
    atomic_write_bytes(gt_dir / f"{scene.frame}_gtFine_instanceIds.png", _png(scene.instance_ids, "I;16"))
    atomic_write_bytes(gt_dir / f"{scene.frame}_gtFine_color.png", _png(color, "RGB"))


def generate(
    out: str | Path,
    count: int,
    size: tuple[int, int] = (512, 1024),
    seed: int = 0,
    split: str = "val",
    *,
    cities: Sequence[str] = DEFAULT_CITIES,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Path:
    """Write `count` scenes of size (height, width) under out/leftImg8bit/<split>/<city>/ and
    out/gtFine/<split>/<city>/; deterministic for a given seed. Returns `out`.

    Scene i depends only on (seed, split, i). `progress(done, count)` is called after each scene, in
    order, on the calling thread. `workers` threads render in parallel (default 1: drawing holds the GIL,
    so on 2 cores two threads measured no faster).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if not cities or any(not c or "_" in c or "/" in c for c in cities):
        raise ValueError(f"city names must be non-empty and contain no '_' or '/': {list(cities)}")
    if not split or "/" in split:
        raise ValueError(f"bad split name {split!r}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> None:
        _write_scene(root, split, render_scene(index, size, seed, split, cities))

    n_workers = max(1, min(workers or 1, max(count, 1)))
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for done, _ in enumerate(pool.map(one, range(count)), start=1):
            if progress is not None:
                progress(done, count)
    return root


def _parse_size(text: str) -> tuple[int, int]:
    return parse_size(text, minimum=16)


def main(argv: list[str] | None = None) -> int:
    """`seglens demo-data`: write a synthetic Cityscapes-layout data set. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="seglens demo-data", description="Write procedural street scenes in the Cityscapes layout."
    )
    parser.add_argument("--out", type=Path, required=True, help="root folder (gets leftImg8bit/ and gtFine/)")
    parser.add_argument("--count", type=positive_int, default=20, help="number of scenes (default 20)")
    parser.add_argument("--size", type=_parse_size, default=(512, 1024), help="HxW (default 512x1024)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val")
    parser.add_argument("--workers", type=workers_arg, default=None, help="render threads (default 1)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    start = time.perf_counter()
    try:
        generate(args.out, args.count, args.size, args.seed, args.split, workers=args.workers)
    except (OSError, ValueError) as exc:
        print(f"seglens demo-data: error: {exc}", file=sys.stderr)
        return 1
    h, w = args.size
    print(
        f"wrote {args.count} scenes ({h}x{w}, seed {args.seed}, split {args.split}) to {args.out} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
