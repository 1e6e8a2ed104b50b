"""Ray for tests: one local Ray shared by every test of a run (started once), a real head started with
`ray start` on 127.0.0.1 (stopped by its pid), and how to compare a Ray run with a local one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OBJECT_STORE_BYTES = 300 * 1024**2  # the machine is shared: a small object store
TIMING_KEYS = frozenset({"engine", "wall_seconds", "latency_ms", "memory_bytes"})
"""What a Ray run may report differently from a local one: where and how fast, never what."""


def without_timings(document: Any) -> Any:
    """An evaluation document without its timing fields (and engine name), for exact comparison."""
    if isinstance(document, dict):
        return {k: without_timings(v) for k, v in document.items() if k not in TIMING_KEYS}
    if isinstance(document, list):
        return [without_timings(v) for v in document]
    return document


def start_local_ray() -> Any:
    """ray.init with 2 CPUs, no dashboard and a small object store (token auth off, as on the test head)."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    ray.init(
        address="local",  # never a cluster some `ray start` left on this machine
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        configure_logging=False,
    )
    return ray


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def ray_head(log: Path) -> Iterator[str]:
    """A real Ray head (`ray start --head --block`) on 127.0.0.1 with 2 CPUs; yields its address. Stopped by
    its pid (SIGTERM: it drains and stops the processes it started), killed if it does not stop."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ray = str(Path(sys.executable).with_name("ray"))
    args = [ray, "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    args += ["--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"]
    args += ["--object-store-memory", str(OBJECT_STORE_BYTES), "--temp-dir", temp]
    with log.open("wb") as out:
        head = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while b"block forever" not in log.read_bytes():
            assert head.poll() is None, f"ray start failed:\n{log.read_text(errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, "ray start did not come up in 60 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=45)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
