"""The bounded thread pipeline evaluation runs on: every item through every stage, bounded, stoppable."""

from __future__ import annotations

import threading
import time

import pytest

from app.core.runtime.pipeline import Stage, run_pipeline


def _live_pipeline_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_every_item_passes_every_stage_once() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    lock = threading.Lock()

    def stage(tag: str, add: int):
        def fn(x: int) -> int:
            with lock:
                seen[tag].append(x)
            return x + add

        return fn

    out = list(run_pipeline(range(50), [Stage(stage("a", 1000), 2), Stage(stage("b", 1), 3)], name="t-all"))
    assert sorted(out) == [x + 1001 for x in range(50)]
    assert sorted(seen["a"]) == list(range(50))
    assert sorted(seen["b"]) == [x + 1000 for x in range(50)]
    assert not _live_pipeline_threads("t-all")


def test_stages_overlap_on_different_items() -> None:
    # Two stages of 50 ms on 6 items: one after the other that is 0.6 s; overlapped ~0.35 s. Asserted as
    # an event, not a time: the second stage works on an item while the first works on a later one.
    active: set[str] = set()
    overlapped = threading.Event()
    lock = threading.Lock()

    def busy(tag: str):
        def fn(x: int) -> int:
            with lock:
                active.add(tag)
                if len(active) == 2:
                    overlapped.set()
            time.sleep(0.05)
            with lock:
                active.discard(tag)
            return x

        return fn

    assert sorted(run_pipeline(range(6), [Stage(busy("load")), Stage(busy("infer"))])) == list(range(6))
    assert overlapped.is_set()


def test_a_fast_source_never_runs_far_ahead() -> None:
    taken = []

    def source():
        for i in range(100):
            taken.append(i)
            yield i

    gate = threading.Event()

    def slow(x: int) -> int:
        gate.wait(5)
        return x

    it = run_pipeline(source(), [Stage(lambda x: x, 1), Stage(slow, 1)], depth=2, name="t-bound")
    first = None
    try:
        time.sleep(0.3)  # let the first stage fill every queue it can
        # stage0 holds 1, its outbox 2, stage1 holds 1 (blocked): never the whole source.
        assert len(taken) <= 6
        gate.set()
        first = next(it)
    finally:
        it.close()
    assert first is not None
    assert not _live_pipeline_threads("t-bound")


def test_an_unexpected_error_stops_the_run_and_reaches_the_consumer() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise RuntimeError("stage bug on 3")
        return x

    with pytest.raises(RuntimeError, match="stage bug on 3"):
        list(run_pipeline(range(20), [Stage(lambda x: x, 2), Stage(boom, 2)], name="t-err"))
    assert not _live_pipeline_threads("t-err")


def test_cancel_stops_taking_items_but_finishes_those_inside() -> None:
    cancel = threading.Event()
    done = []
    for x in run_pipeline(range(1000), [Stage(lambda x: x, 1), Stage(lambda x: x, 1)], cancel=cancel):
        done.append(x)
        if len(done) == 3:
            cancel.set()
    assert 3 <= len(done) < 20


def test_leaving_early_stops_every_thread() -> None:
    it = run_pipeline(range(10_000), [Stage(lambda x: x, 2), Stage(lambda x: x, 2)], name="t-early")
    assert next(it) is not None
    it.close()
    assert not _live_pipeline_threads("t-early")


def test_no_stage_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one stage"):
        list(run_pipeline([1], []))
