"""Running a session as the headless commands do: a progress bar on stderr, each skipped image written
above it, and Ctrl-C cancelling the workers before KeyboardInterrupt propagates."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from app.evaluation.engine import ImageCallback
from app.evaluation.results import EvaluationResult, SampleOutcome
from app.evaluation.service import EvaluationSession


def run_with_progress(
    session: EvaluationSession,
    *,
    quiet: bool = False,
    report_skipped: bool = True,
    on_image: ImageCallback | None = None,
) -> EvaluationResult:
    """session.run() with a progress bar (hidden when `quiet`); every skipped image or failed prediction
    written above it when `report_skipped`; `on_image` called per finished image."""
    write = _plain_write
    bar = None
    if not quiet:  # tqdm (and importlib.metadata behind it) costs ~20 ms of start-up: only for a bar
        from tqdm import tqdm

        bar = tqdm(total=len(session.refs), unit="img", file=sys.stderr)
        write = tqdm.write

    def on_outcome(outcome: SampleOutcome) -> None:
        if bar is not None:
            bar.update(1)
        if on_image is not None:
            on_image(outcome)
        for message in (outcome.sample_error, *outcome.errors):
            if message and report_skipped:
                write(f"skipped: {message}", file=sys.stderr)

    cancel = threading.Event()
    try:
        return session.run(on_outcome, cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        if bar is not None:
            bar.close()


def _plain_write(text: str, file: TextIO = sys.stderr) -> None:
    print(text, file=file)
