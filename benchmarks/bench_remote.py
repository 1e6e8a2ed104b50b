"""Remote inference, first as the user runs it, then in process.

    .venv/bin/python benchmarks/bench_remote.py [--images 24] [--rounds 3] [--workers 2] [--requests 32]
        [--rest-server seglens|standin] [--mlserver /tmp/mlserver-venv/bin/mlserver] [--skip-in-process]

1. The user's command against its peer, both whole processes on the same server in the same run,
   interleaved, on `seglens serve` and then on the P9 stand-in (tests/hosted_standins.py in a process:
   multipart `image`, JSON with a base64 RGB colour mask at 512x256). Ours: `seglens evaluate --model
   hosted.json --dataset D` (a kind "rest" manifest: load, health and /info, read and PNG-encode each
   image, POST, decode the mask (P9: base64, colours back to classes, 512x256 resized to the image), map
   classes, count, print metrics). The peer: a bare client loop (a fresh python process: httpx posting
   the same PNG files as they are on disk, as the API wants them, with the same number of threads,
   reading the answers, nothing else). Printed: each side's wall time per round, the medians and their
   ratio (evaluate / bare loop).
2. In process (as before):

Model: random-weight convs (hidden 16, depth 2), input 256x512, 19 classes, on a 512x1024 synthetic street
scene. Served three ways, all on 127.0.0.1:
  rest   `python -m app.server` (our API) in a subprocess, PNG up, mask PNG down (Accept: image/png);
         `--rest-server standin` uses the test suite's FastAPI stand-in in this process instead.
  v2     MLServer (subprocess, its own venv) with the test suite's onnxruntime runtime: an FP32 NCHW input
         (normalized floats in JSON) + logits out, and a UINT8 NHWC input + labels out (compact).
Also: what gzip costs on MLServer answers (the default without Accept-Encoding: identity), and how long
JSON encoding of the input tensor takes (what Triton's binary extension would save).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import modelzoo  # noqa: E402

from app.core.domain.labels import TRAINIDS  # noqa: E402
from app.core.scenes.generator import render_scene  # noqa: E402
from app.inference.backends.http_client import ClientSettings, HttpClient  # noqa: E402
from app.inference.backends.onnx_backend import OnnxSegmenter  # noqa: E402
from app.inference.backends.rest_backend import RestSegmenter  # noqa: E402
from app.inference.backends.rest_presets import APP_CLASSES  # noqa: E402
from app.inference.backends.v2_backend import V2Segmenter  # noqa: E402
from app.inference.base import Segmenter  # noqa: E402
from app.inference.manifest import ModelManifest  # noqa: E402

CONCURRENCY = (1, 2, 4, 8)
INPUT = (256, 512)


def run_load(model: Segmenter, image: np.ndarray, concurrency: int, requests: int) -> tuple[float, float]:
    """(images per second, median latency ms) for `requests` predictions from `concurrency` threads."""
    model.predict(image)  # warm-up: connections, first-run allocations
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, requests // concurrency)

    def worker() -> None:
        for _ in range(per_thread):
            start = time.perf_counter()
            model.predict(image)
            with lock:
                latencies.append((time.perf_counter() - start) * 1e3)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return len(latencies) / wall, statistics.median(latencies)


def table(
    title: str,
    model: Segmenter,
    image: np.ndarray,
    requests: int,
    local: dict[int, tuple[float, float]] | None,
) -> dict[int, tuple[float, float]]:
    print(f"\n{title}")
    print("  conc |  img/s | p50 ms" + (" | x local latency | local/remote throughput" if local else ""))
    results = {}
    for conc in CONCURRENCY:
        rate, p50 = run_load(model, image, conc, requests)
        results[conc] = (rate, p50)
        extra = f" | {p50 / local[conc][1]:15.2f} | {local[conc][0] / rate:23.2f}" if local else ""
        print(f"  {conc:4d} | {rate:6.1f} | {p50:6.1f}{extra}")
    return results


@contextmanager
def seglens_server(model_path: Path, port: int) -> Iterator[str]:
    """`python -m app.server` in a subprocess on 127.0.0.1:port (8 prediction slots)."""
    cmd = [
        sys.executable,
        "-m",
        "app.server",
        "--model",
        f"bench={model_path}",
        "--port",
        str(port),
        "--max-concurrency",
        "8",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{url}/health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    for _ in range(240):  # 60 s at most
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after 60 s")


@contextmanager
def standin_server(model: Segmenter) -> Iterator[str]:
    import test_remote

    fake = test_remote.FakeSegLens({"bench": model})
    with test_remote.serve(fake.app) as url:
        yield url


def json_cost(image: np.ndarray) -> None:
    """Encoding time of the input tensor as v2 JSON vs raw bytes (the binary extension)."""
    u8 = np.ascontiguousarray(image[: INPUT[0], : INPUT[1]])
    f32 = u8.astype(np.float32) / 255.0
    for name, tensor in (("UINT8 256x512x3", u8), ("FP32 3x256x512", f32)):
        reps = 5
        start = time.perf_counter()
        for _ in range(reps):
            body = json.dumps(tensor.ravel().tolist(), separators=(",", ":")).encode()
        json_ms = (time.perf_counter() - start) * 1e3 / reps
        start = time.perf_counter()
        for _ in range(reps):
            raw = tensor.tobytes()
        raw_ms = (time.perf_counter() - start) * 1e3 / reps
        print(
            f"  {name}: JSON {json_ms:6.1f} ms, {len(body) / 1e6:5.2f} MB | binary {raw_ms:5.2f} ms, "
            f"{len(raw) / 1e6:5.2f} MB"
        )


P9_MODEL = "segformer_b0_fp32"


def bare_loop(api: str, url: str, dataset: Path, workers: int) -> int:
    """The peer: POST every image file of `dataset` as the API wants it from `workers` threads and read
    the answers (seglens: /predict, mask PNG body; p9: /predict?model=ID, multipart `image`, JSON)."""
    files = sorted(dataset.rglob("*_leftImg8bit.png"))
    chunks = [files[i::workers] for i in range(workers)]
    failures: list[str] = []

    def post(paths: list[Path]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for path in paths:
                if api == "p9":
                    files = {"image": (path.name, path.read_bytes(), "image/png")}
                    answer = client.post("/predict", params={"model": P9_MODEL}, files=files)
                    ok = answer.status_code == 200 and answer.json().get("status") == "success"
                else:
                    files = {"file": (path.name, path.read_bytes(), "image/png")}
                    answer = client.post("/predict", files=files, headers={"Accept": "image/png"})
                    ok = answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
                if not ok:
                    failures.append(f"{path.name}: {answer.status_code}")

    threads = [threading.Thread(target=post, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"bare loop: {len(files)} images, {len(failures)} failures")
    return 1 if failures else 0


def serve_p9(model: Path, port: int) -> int:
    """The test suite's P9 stand-in (tests/hosted_standins.py) over `model`, as a server process."""
    import uvicorn
    from hosted_standins import HostedStandIns

    standins = HostedStandIns(OnnxSegmenter(model), models=(P9_MODEL,))
    uvicorn.run(standins.p9(), host="127.0.0.1", port=port, log_level="warning")
    return 0


@contextmanager
def p9_server(model: Path, port: int) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-p9", str(model), str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{url}/health")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed ({done.returncode}): {done.stderr[-1500:]}")
    return elapsed


def user_command_vs_bare_loop(tmp: Path, models: dict[str, Path], args: argparse.Namespace) -> None:
    """Section 1: `seglens evaluate` on a hosted manifest vs a bare httpx loop, same server, interleaved;
    once on `seglens serve` (our API) and once on the P9 stand-in (base64 colour masks at 512x256)."""
    from app.core.scenes.generator import generate

    dataset = generate(tmp / "data", args.images, size=(256, 512), seed=21)
    command = Path(sys.executable).with_name("seglens")  # the installed entry point, as users run it
    launcher = [str(command)] if command.is_file() else [sys.executable, "-m", "app"]
    for api in ("seglens", "p9"):
        port = free_port()
        server = (
            seglens_server(models["seglens"], port) if api == "seglens" else p9_server(models["p9"], port)
        )
        with server as url:
            options = {"api": "p9", "model": P9_MODEL} if api == "p9" else {}
            manifest = tmp / f"hosted-{api}.json"
            document = {"name": f"hosted-{api}", "kind": "rest", "url": url, "options": options}
            manifest.write_text(json.dumps(document), encoding="utf-8")
            evaluate = [*launcher, "evaluate", "--model", str(manifest), "--dataset", str(dataset)]
            evaluate += ["--workers", str(args.workers), "--quiet"]
            if api == "p9":
                evaluate += ["--scheme", "categories"]
            bare = [sys.executable, __file__, "--bare-loop", api, url, str(dataset), str(args.workers)]
            ours: list[float] = []
            peer: list[float] = []
            print(f"  {api}: {url}")
            for round_ in range(args.rounds):
                env = {**os.environ, "SEGLENS_CACHE": str(tmp / f"cache-{api}-{round_}")}  # nothing cached
                ours.append(timed(evaluate, env))
                peer.append(timed(bare, env))
                print(
                    f"    round {round_ + 1}: seglens evaluate {ours[-1]:6.2f} s | "
                    f"bare httpx loop {peer[-1]:6.2f} s"
                )
        a, b = statistics.median(ours), statistics.median(peer)
        print(
            f"    median: seglens evaluate {a:.2f} s ({args.images / a:.1f} img/s) | bare loop {b:.2f} s "
            f"({args.images / b:.1f} img/s) | ratio evaluate/bare {a / b:.2f}"
        )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--bare-loop":
        return bare_loop(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]))
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-p9":
        return serve_p9(Path(sys.argv[2]), int(sys.argv[3]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24, help="images in the section-1 dataset")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of section 1")
    parser.add_argument("--workers", type=int, default=2, help="evaluate --workers = bare-loop threads")
    parser.add_argument("--skip-in-process", action="store_true", help="section 1 only")
    parser.add_argument("--requests", type=int, default=32, help="predictions per concurrency level")
    parser.add_argument("--rest-server", choices=("seglens", "standin"), default="seglens")
    parser.add_argument(
        "--mlserver", default=os.environ.get("SEGLENS_MLSERVER", "/tmp/mlserver-venv/bin/mlserver")
    )
    args = parser.parse_args()
    import test_remote

    image = render_scene(0, (512, 1024)).image
    with tempfile.TemporaryDirectory() as tmp:
        common = {"input_size": INPUT, "hidden": 16, "depth": 2}
        logits = modelzoo.make_onnx_segmenter(Path(tmp) / "logits.onnx", TRAINIDS.names, **common)
        labels = modelzoo.make_onnx_segmenter(
            Path(tmp) / "labels_u8.onnx",
            TRAINIDS.names,
            output="labels",
            input_dtype="uint8",
            layout="NHWC",
            **common,
        )
        print(
            f"1. the user's command vs a bare client loop: {args.images} images 256x512, model input "
            f"{INPUT[0]}x{INPUT[1]}, {args.workers} workers/threads, servers on 127.0.0.1"
        )
        app8 = modelzoo.make_onnx_segmenter(Path(tmp) / "app8.onnx", APP_CLASSES, **common)
        user_command_vs_bare_loop(Path(tmp), {"seglens": logits, "p9": app8}, args)
        if args.skip_in_process:
            return 0
        print("\n2. in process")
        local = OnnxSegmenter(logits)
        local_labels = OnnxSegmenter(labels)
        print(
            f"image 512x1024, model input {INPUT[0]}x{INPUT[1]}, {args.requests} requests per level, "
            f"{os.cpu_count()} cores"
        )
        base = table("local OnnxSegmenter (logits)", local, image, args.requests, None)
        base_u8 = table(
            "local OnnxSegmenter (uint8 in, labels out)", local_labels, image, args.requests, None
        )

        settings = ClientSettings(max_concurrency=8, read_timeout=60)
        port = test_remote._free_port()
        server = seglens_server(logits, port) if args.rest_server == "seglens" else standin_server(local)
        with server as url:
            remote = RestSegmenter(url, client=HttpClient(url, settings=settings))
            table(f"rest ({args.rest_server}): PNG up, mask PNG down", remote, image, args.requests, base)
            remote.close()

        if not Path(args.mlserver).is_file():
            print(f"\nMLServer not found at {args.mlserver}: v2 skipped")
        else:
            bench_v2(Path(tmp), args, {"logits": logits, "labels_u8": labels}, image, base, base_u8)
    print("\nJSON vs binary tensor encoding (client side, per request)")
    json_cost(image)
    return 0


def bench_v2(
    tmp: Path,
    args: argparse.Namespace,
    paths: dict[str, Path],
    image: np.ndarray,
    base: dict[int, tuple[float, float]],
    base_u8: dict[int, tuple[float, float]],
) -> None:
    import test_remote

    os.environ["SEGLENS_MLSERVER"] = args.mlserver
    tensors = {
        "logits": {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 3, *INPUT]}]},
        "labels_u8": {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, *INPUT, 3]}]},
    }
    port = test_remote._free_port()
    repo = test_remote.write_mlserver_repo(tmp / "mlserver", {n: (paths[n], tensors[n]) for n in paths}, port)
    settings = ClientSettings(max_concurrency=8, read_timeout=60)
    with test_remote.run_mlserver(repo, port, list(paths)) as url:
        for name, reference in (("logits", base), ("labels_u8", base_u8)):
            manifest = ModelManifest(name=name, kind="v2", url=url, scheme="trainids")
            headers = {"Accept-Encoding": "identity"}
            model = V2Segmenter(url, manifest, client=HttpClient(url, settings=settings, headers=headers))
            table(f"v2 MLServer {name} (JSON, identity)", model, image, args.requests, reference)
            model.close()
        manifest = ModelManifest(name="logits", kind="v2", url=url, scheme="trainids")
        gzip = V2Segmenter(
            url, manifest, client=HttpClient(url, settings=settings, headers={"Accept-Encoding": "gzip"})
        )
        rate, p50 = run_load(gzip, image, 1, args.requests)
        print(f"\nv2 MLServer logits, Accept-Encoding: gzip, 1 at a time: {rate:.1f} img/s, p50 {p50:.1f} ms")
        gzip.close()


if __name__ == "__main__":
    raise SystemExit(main())
