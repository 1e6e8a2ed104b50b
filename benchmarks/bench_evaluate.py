"""P5: `seglens evaluate` of the two demo models against a bare onnxruntime script, both whole processes.

    .venv/bin/python benchmarks/bench_evaluate.py [--count 16] [--size 1024x2048] [--rounds 3]

The same images, each side a fresh process started from the command line and timed from start to exit,
interleaved round by round (the order alternates), so that machine load hits both alike:

* ours: `seglens evaluate --dataset D --model models/demo/vgg16-unet-baseline-int8.onnx
         --model models/demo/segformer-b0-int8.onnx --json out.json --quiet`
        (decodes images, labelIds and instanceIds, runs both models, upsamples exactly, counts metrics,
        writes the JSON);
* bare: the minimal script a user would write (BARE_SCRIPT below, run as `python bare.py D A B`): Pillow
        decodes each image, and for each model one image at a time: Pillow resize to the model input,
        normalization, onnxruntime run, argmax at the model's resolution, nearest resize of the labels to
        the image size. No ground truth, no metrics.

D is `seglens demo-data` at the given size. Each run of ours gets an empty cache folder (XDG_CACHE_HOME),
so that no run reuses another's predictions. Printed: each round's wall times and the ratio ours / bare
(goal: <= 0.6). Only the ratio is meant to travel between machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = (ROOT / "models/demo/vgg16-unet-baseline-int8.onnx", ROOT / "models/demo/segformer-b0-int8.onnx")

BARE_SCRIPT = """
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZE = (256, 128)  # (width, height): both demo models take 128x256 RGB inputs

root, model_files = Path(sys.argv[1]), sys.argv[2:]
sessions = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]) for m in model_files]
count = 0
for path in sorted(root.glob("leftImg8bit/*/*/*_leftImg8bit.png")):
    image = Image.open(path).convert("RGB")
    small = np.asarray(image.resize(SIZE, Image.Resampling.BILINEAR), dtype=np.float32)
    pixels = (small / 255.0 - MEAN) / STD
    for session in sessions:
        tensor = session.get_inputs()[0]
        nchw = tensor.shape[1] == 3
        x = (pixels.transpose(2, 0, 1) if nchw else pixels)[None].astype(np.float32)
        scores = session.run(None, {tensor.name: x})[0][0]
        labels = np.argmax(scores, axis=0 if nchw else -1).astype(np.uint8)
        full = Image.fromarray(labels).resize(image.size, Image.Resampling.NEAREST)
    count += 1
print(count, "images")
"""


def seglens_command() -> list[str]:
    """The `seglens` console script beside this interpreter, else `python -m app` (the same entry point)."""
    script = Path(sys.executable).with_name("seglens")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def run_ours(dataset: Path, out_json: Path, cache: Path) -> float:
    cmd = [*seglens_command(), "evaluate", "--dataset", str(dataset)]
    for model in MODELS:
        cmd += ["--model", str(model)]
    cmd += ["--json", str(out_json), "--quiet"]
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_bare(script: Path, dataset: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(script), str(dataset), *map(str, MODELS)], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=16, help="images (default 16)")
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="HxW (default 1024x2048)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        root = Path(tmp)
        dataset = root / "data"
        cmd = [*seglens_command(), "demo-data", "--out", str(dataset), "--count", str(args.count)]
        subprocess.run([*cmd, "--size", "{}x{}".format(*args.size)], check=True, stdout=subprocess.DEVNULL)
        script = root / "bare.py"
        script.write_text(BARE_SCRIPT)
        names = ", ".join(m.name for m in MODELS)
        print(f"{args.count} images at {args.size[0]}x{args.size[1]}; models: {names}")
        times: dict[str, list[float]] = {"bare": [], "seglens": []}
        for round_ in range(args.rounds):
            order = ["bare", "seglens"] if round_ % 2 == 0 else ["seglens", "bare"]
            for side in order:
                if side == "bare":
                    times[side].append(run_bare(script, dataset))
                else:
                    times[side].append(run_ours(dataset, root / "ours.json", root / f"cache{round_}"))
            bare, ours = times["bare"][-1], times["seglens"][-1]
            print(
                f"round {round_ + 1}: bare script {bare:6.2f} s   seglens {ours:6.2f} s   "
                f"ratio {ours / bare:.2f}x"
            )
    bare, ours = statistics.median(times["bare"]), statistics.median(times["seglens"])
    print(
        f"median of {args.rounds}: bare {bare:.2f} s ({bare / args.count * 1e3:.0f} ms/image), "
        f"seglens {ours:.2f} s ({ours / args.count * 1e3:.0f} ms/image)"
    )
    print(f"P5: seglens evaluate takes {ours / bare:.2f}x the bare script's wall time (goal <= 0.6)")


if __name__ == "__main__":
    main()
