"""P3: `seglens evaluate --predictions` against the official Cityscapes evaluation, both run as users do.

    .venv/bin/python benchmarks/bench_metrics.py [--count 24] [--size 1024x2048] [--rounds 3]

Both sides are whole processes started from the command line, on the same files, timed from start to
exit and interleaved round by round (the order alternates), so machine load hits both alike:

* ours:     `seglens evaluate --dataset D --predictions P --json out.json --quiet`
* official: `python -m cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling` with
            CITYSCAPES_DATASET=D, CITYSCAPES_RESULTS=P and CITYSCAPES_EXPORT_DIR set, as its docs say.
            With numpy >= 2.4 (no np.in1d) it runs through a three-line wrapper that adds np.in1d as a
            flattened np.isin (what tests/cityscapes_oracle.py does) and then runs the same module as
            __main__; the benchmark says which. Its optional Cython extension (addToConfusionMatrix) is
            reported too: the PyPI wheel does not ship it, so the official script counts in numpy.

D is `seglens demo-data` at the given size (RGB, labelIds and instanceIds PNGs); P holds one labelIds PNG
per frame, the ground truth warped and painted with wrong rectangles (void ids, absent classes), written
as 8-bit PNGs like a model's saved output. Every round checks that both report the same numbers (class
IoUs, class iIoUs, category IoU/iIoU and the means, relative 1e-9) and prints the wall-time ratio
official / ours (goal: >= 3x). Only the ratio is meant to travel between machines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

OFFICIAL_MODULE = "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling"
SHIM = (
    "import numpy as np, runpy\n"
    "np.in1d = lambda a, b, invert=False: np.isin(a, b, invert=invert).ravel()\n"
    f"runpy.run_module({OFFICIAL_MODULE!r}, run_name='__main__', alter_sys=True)\n"
)
WRONG_IDS = (0, 4, 9, 31, 7, 26, 24, 11)  # void ids, a class absent from GT (train), common classes


def seglens_command() -> list[str]:
    """The `seglens` console script beside this interpreter, else `python -m app` (the same entry point)."""
    script = Path(sys.executable).with_name("seglens")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def official_command() -> tuple[list[str], str]:
    """The official script's command line and how it is run (plain, or through the np.in1d wrapper)."""
    if hasattr(np, "in1d"):
        return [sys.executable, "-m", OFFICIAL_MODULE], "python -m (unchanged)"
    return [sys.executable, "-c", SHIM], "python -c <np.in1d wrapper; runpy of the module as __main__>"


def official_uses_cython() -> bool:
    try:
        from cityscapesscripts.evaluation import addToConfusionMatrix  # noqa: F401
    except ImportError:
        return False
    return True


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def make_dataset(root: Path, count: int, size: tuple[int, int], seed: int) -> None:
    cmd = [*seglens_command(), "demo-data", "--out", str(root), "--count", str(count)]
    cmd += ["--size", f"{size[0]}x{size[1]}", "--seed", str(seed), "--workers", "2"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def make_predictions(dataset: Path, out: Path, seed: int) -> int:
    """A labelIds PNG per GT frame: the GT shifted by a few pixels with wrong rectangles on it."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted((dataset / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    for gt_file in files:
        with Image.open(gt_file) as img:
            gt = np.asarray(img)
        h, w = gt.shape
        pred = np.roll(gt, (int(rng.integers(-6, 7)), int(rng.integers(-12, 13))), axis=(0, 1))
        for _ in range(12):
            rh, rw = int(rng.integers(8, h // 5)), int(rng.integers(8, w // 5))
            y, x = int(rng.integers(0, h - rh)), int(rng.integers(0, w - rw))
            pred[y : y + rh, x : x + rw] = rng.choice(WRONG_IDS)
        frame = gt_file.name.replace("_gtFine_labelIds.png", "")
        Image.fromarray(pred).save(out / f"{frame}_pred.png")
    return len(files)


def run_ours(dataset: Path, predictions: Path, out_json: Path) -> float:
    cmd = [*seglens_command(), "evaluate", "--dataset", str(dataset), "--predictions", str(predictions)]
    cmd += ["--json", str(out_json), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_official(dataset: Path, predictions: Path, export_dir: Path) -> float:
    env = dict(os.environ, CITYSCAPES_DATASET=str(dataset), CITYSCAPES_RESULTS=str(predictions))
    env["CITYSCAPES_EXPORT_DIR"] = str(export_dir)
    start = time.perf_counter()
    subprocess.run(official_command()[0], check=True, env=env, stdout=subprocess.DEVNULL, cwd=export_dir)
    return time.perf_counter() - start


def compare(ours_json: Path, official_json: Path) -> int:
    """Number of values compared; raises AssertionError on the first that differs."""
    ours = json.loads(ours_json.read_text())["models"][0]["metrics"]
    official = json.loads(official_json.read_text())
    pairs: list[tuple[str, object, object]] = []
    for name, scores in ours["classes"].items():
        pairs.append((f"IoU {name}", scores["iou"], official["classScores"][name]))
        pairs.append((f"iIoU {name}", scores["iiou"], official["classInstScores"][name]))
    for name, scores in ours["categories"].items():
        pairs.append((f"category IoU {name}", scores["iou"], official["categoryScores"][name]))
        pairs.append((f"category iIoU {name}", scores["iiou"], official["categoryInstScores"][name]))
    pairs += [
        ("mIoU", ours["miou"], official["averageScoreClasses"]),
        ("iIoU", ours["miiou"], official["averageScoreInstClasses"]),
        ("category mIoU", ours["mean_category_iou"], official["averageScoreCategories"]),
        ("category iIoU", ours["mean_category_iiou"], official["averageScoreInstCategories"]),
    ]
    for what, a, b in pairs:
        x = math.nan if a is None else float(a)  # type: ignore[arg-type]
        y = math.nan if b is None else float(b)  # type: ignore[arg-type]
        if not ((math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)):
            raise AssertionError(f"{what}: seglens {a!r}, official {b!r}")
    return len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=24, help="images (default 24)")
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="HxW (default 1024x2048)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        root = Path(tmp)
        dataset, predictions, export = root / "data", root / "results", root / "official"
        export.mkdir()
        t0 = time.perf_counter()
        make_dataset(dataset, args.count, args.size, args.seed)
        n = make_predictions(dataset, predictions, args.seed)
        print(f"{n} frames at {args.size[0]}x{args.size[1]} generated in {time.perf_counter() - t0:.1f} s")
        print(f"official: {official_command()[1]}; Cython extension used: {official_uses_cython()}")
        print(f"seglens:  {' '.join(seglens_command())} evaluate --predictions (whole process)")
        times: dict[str, list[float]] = {"official": [], "seglens": []}
        for round_ in range(args.rounds):
            order = ["official", "seglens"] if round_ % 2 == 0 else ["seglens", "official"]
            for side in order:
                if side == "official":
                    times[side].append(run_official(dataset, predictions, export))
                else:
                    times[side].append(run_ours(dataset, predictions, root / "ours.json"))
            compared = compare(root / "ours.json", export / "resultPixelLevelSemanticLabeling.json")
            official_s, ours_s = times["official"][-1], times["seglens"][-1]
            print(
                f"round {round_ + 1}: official {official_s:6.2f} s   seglens {ours_s:6.2f} s   "
                f"ratio {official_s / ours_s:4.2f}x   ({compared} numbers identical)"
            )
    official, ours = statistics.median(times["official"]), statistics.median(times["seglens"])
    print(
        f"median of {args.rounds}: official {official:.2f} s ({official / n * 1e3:.0f} ms/image), "
        f"seglens {ours:.2f} s ({ours / n * 1e3:.0f} ms/image)"
    )
    print(
        f"P3: seglens evaluate --predictions is {official / ours:.2f}x as fast as the official script "
        "(goal >= 3x)"
    )


if __name__ == "__main__":
    main()
