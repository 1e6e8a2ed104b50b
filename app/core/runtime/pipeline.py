"""A bounded multi-stage thread pipeline: each stage runs on its own threads, joined by small queues.

Evaluation uses it so that decoding and counting of some images overlap the inference of another, with
inference itself kept on one lane (an in-process model already uses every core: two concurrent runs only
fight over them). The queues are bounded, so a fast stage never runs far ahead of a slow one and memory
stays at a few images whatever the dataset size.

Stage functions handle the errors they expect and return them as data; anything else they raise ends the
run: every thread stops and the exception is re-raised to the consumer.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

_POLL_S = 0.05  # how often a blocked thread looks at the stop flag


@dataclass(frozen=True)
class Stage:
    """One step: `fn` maps an item to the next stage's item, on `threads` threads."""

    fn: Callable[[Any], Any]
    threads: int = 1
    name: str = "stage"
    background: bool = False  # run at the lowest CPU priority: only on cores the others leave idle


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


_END = object()


def lower_thread_priority() -> bool:
    """Give the calling thread the lowest CPU priority (Linux: threads are tasks with their own nice
    value). Returns False where that is not possible; the thread then simply runs at normal priority."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError:
        return False
    return True


def run_pipeline(
    items: Iterable[Any],
    stages: Sequence[Stage],
    *,
    depth: int = 2,
    cancel: threading.Event | None = None,
    name: str = "seglens-pipe",
) -> Iterator[Any]:
    """Push `items` through `stages` in order and yield the last stage's results as they finish (not
    necessarily in input order). At most `depth` items wait between two stages per consuming thread.
    Setting `cancel` stops taking new items; those already inside finish and are yielded. Leaving the
    iteration early (break, exception) stops every thread before returning."""
    if not stages:
        raise ValueError("a pipeline needs at least one stage")
    stop = threading.Event()
    source = iter(items)
    source_lock = threading.Lock()
    inboxes: list[queue.Queue[Any]] = [queue.Queue(maxsize=depth * max(1, s.threads)) for s in stages[1:]]
    out: queue.Queue[Any] = queue.Queue()
    outboxes = [*inboxes, out]
    remaining = [max(1, s.threads) for s in stages]
    count_lock = threading.Lock()

    def put(box: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def take(k: int) -> Any:
        if k == 0:
            if stop.is_set() or (cancel is not None and cancel.is_set()):
                return _END
            with source_lock:
                return next(source, _END)
        while not stop.is_set():
            try:
                return inboxes[k - 1].get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def worker(k: int) -> None:
        stage = stages[k]
        if stage.background:
            lower_thread_priority()
        try:
            while True:
                item = take(k)
                if item is _END:
                    break
                if not put(outboxes[k], stage.fn(item)):
                    break
        except BaseException as exc:  # handed to the consumer, which re-raises it
            stop.set()
            out.put(_Failure(exc))
        finally:
            with count_lock:
                remaining[k] -= 1
                last = remaining[k] == 0
            if last:
                # The next stage's threads each need their own end marker; the consumer needs one.
                if k + 1 < len(stages):
                    for _ in range(max(1, stages[k + 1].threads)):
                        put(outboxes[k], _END)
                else:
                    out.put(_END)

    threads = [
        threading.Thread(target=worker, args=(k,), name=f"{name}-{stage.name}-{i}", daemon=True)
        for k, stage in enumerate(stages)
        for i in range(max(1, stage.threads))
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()
