"""The Ray engine's cost against a local run, whole process, on this machine; and a simulated multi-node
cluster (ray.cluster_utils.Cluster) giving the local numbers exactly.

    .venv/bin/python benchmarks/bench_ray.py [--images 24] [--repeats 3] [--size 512x1024]

1. `seglens evaluate` and `seglens evaluate --engine ray` (a local Ray started by the command, as a user
   without a cluster gets it) as subprocesses, interleaved, on the first N/3 and N images of the same
   synthetic Cityscapes data with a random-weight ONNX model: the per-image time of each (the slope
   between the two sizes), the Ray path's per-image overhead and ratio, and its fixed start-up cost.
2. The same in one process with a warm Ray (as with a long-lived cluster: only the run's actors start),
   interleaved with the local engine: per-image time of each, and the fixed cost of starting the actors.
3. A two-node cluster of one CPU each in this process (Cluster: two raylets), the same evaluation with data
   read from the path and shipped as bytes: wall time, where the actors ran, and the confusion matrices
   compared with the local run (they must be equal).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import modelzoo  # noqa: E402

from app.core.domain.labels import TRAINIDS  # noqa: E402
from app.core.scenes.generator import generate  # noqa: E402


def _seconds(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=900)
    return time.perf_counter() - start


def whole_process(data: Path, model: Path, images: int, repeats: int) -> None:
    """Part 1: the command a user runs, local and on Ray, interleaved, at two sizes."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    base = [sys.executable, "-m", "app", "evaluate", "--dataset", str(data), "--model", str(model), "-q"]
    sizes = (max(2, images // 3), images)
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for n in sizes:
            for engine in ("local", "ray"):
                args = [*base, "--limit", str(n), *(["--engine", "ray"] if engine == "ray" else [])]
                times.setdefault((engine, n), []).append(_seconds(args, env))
    med = {key: statistics.median(values) for key, values in times.items()}
    small, large = sizes
    print(f"whole process, median of {repeats} (s):")
    for engine in ("local", "ray"):
        print(
            f"  {engine:5}  {small:3} images {med[(engine, small)]:7.2f}   "
            f"{large:3} images {med[(engine, large)]:7.2f}"
        )
    slope = {e: (med[(e, large)] - med[(e, small)]) / (large - small) for e in ("local", "ray")}
    fixed = {e: med[(e, small)] - slope[e] * small for e in ("local", "ray")}
    print(f"  per image: local {slope['local'] * 1000:.1f} ms, ray {slope['ray'] * 1000:.1f} ms")
    print(
        f"  Ray per-image overhead {1000 * (slope['ray'] - slope['local']):+.1f} ms "
        f"(ratio {slope['ray'] / slope['local']:.2f}x); "
        f"fixed start-up {fixed['ray'] - fixed['local']:+.1f} s (Ray started by the command)"
    )
    print(f"  whole run of {large} images: ray / local = {med[('ray', large)] / med[('local', large)]:.2f}x")


def warm_cluster(data: Path, model: Path, images: int, repeats: int) -> None:
    """Part 2: a Ray already running (a cluster's case); the engines interleaved in one process."""
    import ray

    from app.evaluation.service import EvaluationRequest, evaluate

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=300 * 1024**2,
        log_to_driver=False,
    )
    request = EvaluationRequest(dataset=data, models=(str(model),), outcome_predictions=False)
    sizes = (max(2, images // 3), images)
    times: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(repeats):
            for n in sizes:
                for engine in ("local", "ray"):
                    result = evaluate(replace(request, engine=engine, limit=n))
                    times.setdefault((engine, n), []).append(result.wall_s)
    finally:
        ray.shutdown()
    med = {key: statistics.median(values) for key, values in times.items()}
    small, large = sizes
    slope = {e: (med[(e, large)] - med[(e, small)]) / (large - small) for e in ("local", "ray")}
    fixed = {e: med[(e, small)] - slope[e] * small for e in ("local", "ray")}
    print(f"warm Ray, in one process, median of {repeats}:")
    print(
        f"  per image: local {slope['local'] * 1000:.1f} ms, ray {slope['ray'] * 1000:.1f} ms: overhead "
        f"{1000 * (slope['ray'] - slope['local']):+.1f} ms ({slope['ray'] / slope['local']:.2f}x); "
        f"starting the run's actors {fixed['ray'] - fixed['local']:+.2f} s"
    )


def multi_node(data: Path, model: Path, images: int) -> None:
    """Part 3: two one-CPU nodes (two raylets) in this process; numbers equal to the local run."""
    import numpy as np
    import ray
    from ray.cluster_utils import Cluster

    from app.evaluation.service import EvaluationRequest, RayOptions, evaluate, open_session

    os.environ["RAY_AUTH_MODE"] = "disabled"
    request = EvaluationRequest(dataset=data, models=(str(model),), limit=images)
    start = time.perf_counter()
    local = evaluate(request)
    local_s = time.perf_counter() - start
    store = 150 * 1024**2
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, object_store_memory=store)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        print(f"simulated cluster: {len(ray.nodes())} nodes, {ray.cluster_resources().get('CPU')} CPUs")
        for data_mode in ("shared", "ship"):
            options = RayOptions(address=cluster.address, data=data_mode, cpus_per_worker=1)
            with open_session(replace(request, engine="ray", ray=options)) as s:
                start = time.perf_counter()
                result = s.run()
                seconds = time.perf_counter() - start
                workers = s.evaluator.engine.workers  # type: ignore[attr-defined]
            nodes = len({w["node_id"] for w in workers})
            same = all(
                np.array_equal(a.matrix, b.matrix) for a, b in zip(result.models, local.models, strict=True)
            )
            print(
                f"  data {data_mode:6}: {len(workers)} actors on {nodes} nodes, {images} images in "
                f"{seconds:.2f} s (local in-process {local_s:.2f} s); matrices equal to local: {same}"
            )
            assert same, "the cluster's numbers differ from the local run"
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="512x1024", help="image HxW")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        data = generate(root / "data", args.images, size=(height, width), seed=3)
        model = modelzoo.make_onnx_segmenter(
            root / "m.onnx", TRAINIDS.names, input_size=(256, 512), hidden=32, depth=4, seed=1
        )
        print(
            f"load: {os.getloadavg()[0]:.2f}; {args.images} images {width}x{height}, "
            f"model {model.stat().st_size} B"
        )
        whole_process(data, model, args.images, args.repeats)
        warm_cluster(data, model, args.images, args.repeats)
        multi_node(data, model, args.images)


if __name__ == "__main__":
    main()
