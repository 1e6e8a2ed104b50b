"""What the server remembers between requests: the models, the active one, the prediction slots and the
per-model request statistics. Free of FastAPI so it can be tested and reasoned about on its own."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.inference.base import Segmenter

LATENCY_WINDOW = 1000
"""Latencies kept per model for the percentiles: enough for stable P99, bounded memory."""


class UnknownModelError(KeyError):
    """A model name the server does not serve."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"no model named {self.name!r}; served: {', '.join(self.known)}"


class Slots:
    """A non-blocking counting semaphore: either a prediction slot is free now, or the caller is told to
    come back later (429). Never queues, so a burst cannot pile up unbounded work or memory."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._busy = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take a slot if one is free; False when all are busy."""
        with self._lock:
            if self._busy >= self.capacity:
                return False
            self._busy += 1
            return True

    def release(self) -> None:
        """Give back a slot taken by try_acquire."""
        with self._lock:
            if self._busy <= 0:
                raise RuntimeError("release() without a matching try_acquire()")
            self._busy -= 1

    @property
    def busy(self) -> int:
        """Slots in use right now."""
        with self._lock:
            return self._busy


@dataclass
class ModelStats:
    """Request counters and a bounded window of latencies (ms) of successful predictions."""

    requests: int = 0
    errors: int = 0
    rejected: int = 0  # answered 429 because every slot was busy (also counted in errors)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def to_dict(self) -> dict[str, Any]:
        """Counters plus P50/P95/P99 over the latency window (None before the first success)."""
        values = np.fromiter(self.latencies_ms, dtype=np.float64, count=len(self.latencies_ms))
        latency: dict[str, Any] = {"window": LATENCY_WINDOW, "count": int(values.size)}
        if values.size:
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            latency.update(p50=float(p50), p95=float(p95), p99=float(p99), mean=float(values.mean()))
        else:
            latency.update(p50=None, p95=None, p99=None, mean=None)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rejected_busy": self.rejected,
            "latency_ms": latency,
        }


class ServerState:
    """The served models (by served name), which one is active, and their statistics. Thread-safe."""

    def __init__(
        self,
        models: Mapping[str, Segmenter],
        *,
        active: str | None = None,
        evaluations: Mapping[str, Mapping[str, Any]] | None = None,
        max_concurrency: int = 2,
    ) -> None:
        if not models:
            raise ValueError("the server needs at least one model")
        self.models: dict[str, Segmenter] = dict(models)
        self.evaluations: dict[str, Mapping[str, Any]] = dict(evaluations or {})
        for name in self.evaluations:
            self.get(name)  # a typo in a metrics file's model name should fail at start-up
        self._active = active if active is not None else next(iter(self.models))
        self.get(self._active)
        self._stats = {name: ModelStats() for name in self.models}
        self._lock = threading.Lock()
        self.slots = Slots(max_concurrency)

    @property
    def names(self) -> list[str]:
        """Served model names, in the order given."""
        return list(self.models)

    @property
    def active(self) -> str:
        """The name of the model /predict uses."""
        with self._lock:
            return self._active

    def get(self, name: str) -> Segmenter:
        """The model served as `name`; UnknownModelError otherwise."""
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(name, self.names) from None

    def active_model(self) -> tuple[str, Segmenter]:
        """(name, model) of the active model, read together so a concurrent switch cannot split them."""
        with self._lock:
            return self._active, self.models[self._active]

    def switch(self, name: str) -> None:
        """Make `name` the active model; UnknownModelError if it is not served."""
        self.get(name)
        with self._lock:
            self._active = name

    def record(self, name: str, *, ok: bool, latency_ms: float | None = None, rejected: bool = False) -> None:
        """Count one prediction request answered for model `name`."""
        with self._lock:
            stats = self._stats[name]
            stats.requests += 1
            if not ok:
                stats.errors += 1
            if rejected:
                stats.rejected += 1
            if ok and latency_ms is not None:
                stats.latencies_ms.append(latency_ms)

    def stats(self, name: str) -> dict[str, Any]:
        """A JSON-ready snapshot of the statistics of model `name`."""
        self.get(name)
        with self._lock:
            return self._stats[name].to_dict()
