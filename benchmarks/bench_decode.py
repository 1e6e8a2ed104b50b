"""PNG decoders on real-size Cityscapes-like files: speed, equality with Pillow, and their use of the GIL.

    .venv/bin/python benchmarks/bench_decode.py [--repeats 7]

In-process (a kernel comparison behind the choice in app/core/io/pngdecode.py; bench_metrics.py and
bench_evaluate.py time the commands). Files, all 2048x1024: a `seglens demo-data` RGB frame, a noisier
photo-like RGB frame (smooth shading plus sensor noise, saved by Pillow), the frame's labelIds (8-bit
grey), instanceIds (16-bit grey) and its labelIds as a palette PNG. Decoders: Pillow (Image.open +
np.asarray), imagecodecs.png_decode (libpng + zlib-ng), pyspng, cv2.imdecode(IMREAD_UNCHANGED) with
BGR -> RGB; each only if installed. Printed per file: best-of-N ms and whether the array equals Pillow's
(palette files: Pillow gives the indices, the others the colours). Then each decoder decodes the photo
in one thread while a pure-Python loop runs in another: a decoder that releases the GIL for the whole
decode runs at its own speed and lets the loop run (on a second free core); one that holds it starves
the loop; one that takes the GIL back often (Pillow, between 64 KiB blocks) is slowed down many times.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Decoder = Callable[[bytes], np.ndarray]


def decoders() -> dict[str, Decoder]:
    found: dict[str, Decoder] = {}

    def pillow(data: bytes) -> np.ndarray:
        import io

        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img)

    found["pillow"] = pillow
    try:
        import imagecodecs

        found["imagecodecs"] = imagecodecs.png_decode
    except ImportError:
        pass
    try:
        import pyspng

        found["pyspng"] = pyspng.load
    except ImportError:
        pass
    try:
        import cv2

        cv2.setNumThreads(1)

        def opencv(data: bytes) -> np.ndarray:
            out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if out.ndim == 3 else out

        found["opencv"] = opencv
    except ImportError:
        pass
    return found


def make_files(folder: Path) -> dict[str, Path]:
    script = Path(sys.executable).with_name("seglens")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "app"]
    data = folder / "data"
    subprocess.run([*cmd, "demo-data", "--out", str(data), "--count", "1", "--size", "1024x2048"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    files = {
        "rgb (demo-data)": next(data.glob("leftImg8bit/*/*/*.png")),
        "labelIds (8-bit grey)": next(data.glob("gtFine/*/*/*_labelIds.png")),
        "instanceIds (16-bit grey)": next(data.glob("gtFine/*/*/*_instanceIds.png")),
    }
    rng = np.random.default_rng(0)
    with Image.open(files["rgb (demo-data)"]) as img:
        base = np.asarray(img).astype(np.float32)
    yy, xx = np.mgrid[0:1024, 0:2048].astype(np.float32)
    photo = (
        base * 0.8 + (20 * np.sin(xx / 37.0) * np.cos(yy / 23.0))[..., None] + rng.normal(0, 6, base.shape)
    )
    files["rgb (photo-like)"] = folder / "photo.png"
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(files["rgb (photo-like)"])
    with Image.open(files["labelIds (8-bit grey)"]) as img:
        labels = np.asarray(img)
    palette = Image.frombytes("P", (2048, 1024), labels.tobytes())
    palette.putpalette([int(v) for v in rng.integers(0, 256, 768)])
    files["labelIds (palette)"] = folder / "palette.png"
    palette.save(files["labelIds (palette)"])
    return files


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def gil_share(decode: Decoder, data: bytes, count: int = 8) -> tuple[float, float]:
    """(share of the wall time a pure-Python thread ran while `decode` ran `count` times in another,
    the decodes' wall time then / alone)."""
    start = time.perf_counter()
    for _ in range(count):
        decode(data)
    alone = time.perf_counter() - start
    stop = threading.Event()
    got: list[float] = []

    def spin() -> None:
        start = time.thread_time()
        while not stop.is_set():
            pass
        got.append(time.thread_time() - start)

    spinner = threading.Thread(target=spin)
    spinner.start()
    start = time.perf_counter()
    for _ in range(count):
        decode(data)
    wall = time.perf_counter() - start
    stop.set()
    spinner.join()
    return got[0] / wall, wall / alone


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    found = decoders()
    tmp = Path(tempfile.mkdtemp(prefix="bench-decode-"))
    try:
        files = make_files(tmp)
        print(f"best-of-{args.repeats} ms per 2048x1024 file (= : same array as Pillow)")
        print(f"  {'file':<28}" + "".join(f"{name:>16}" for name in found))
        for what, path in files.items():
            data = path.read_bytes()
            reference = found["pillow"](data)
            cells = []
            for decode in found.values():
                try:
                    same = np.array_equal(decode(data), reference)
                    ms = best_ms(lambda d=decode, b=data: d(b), args.repeats)  # type: ignore[misc]
                    cells.append(f"{ms:9.1f} {'=' if same else 'DIFF'}")
                except Exception as exc:  # a decoder that cannot read the kind
                    cells.append(f"{type(exc).__name__:>12}")
            print(f"  {what:<28}" + "".join(f"{c:>16}" for c in cells))
        photo = files["rgb (photo-like)"].read_bytes()
        print("beside a busy Python thread: its share of the wall time, and the decoder's slowdown")
        for name, decode in found.items():
            share, slowdown = gil_share(decode, photo)
            print(
                f"  {name:<14} Python thread ran {share:5.0%} of the time, decoding {slowdown:5.1f}x slower"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
