"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse

from app.core.io.budget import budget_problem


def parse_size(text: str, *, minimum: int = 1, multiple: int = 1) -> tuple[int, int]:
    """'HEIGHTxWIDTH' (e.g. 512x1024) -> (height, width), with argparse-friendly errors."""
    try:
        h_text, w_text = text.lower().split("x")
        height, width = int(h_text), int(w_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH like 512x1024, not {text!r}") from None
    if height < minimum or width < minimum:
        raise argparse.ArgumentTypeError(f"size {text!r} is too small (at least {minimum}x{minimum})")
    if height % multiple or width % multiple:
        raise argparse.ArgumentTypeError(f"size {text!r}: height and width must be multiples of {multiple}")
    problem = budget_problem(width, height, "size")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return height, width


WORKERS_HELP = "threads that decode and count, and requests in flight to remote models (default 2)"
"""What Evaluator's `workers` means, for the commands' --workers."""

MAX_WORKERS = 64
"""Past this, threads only cost memory (each a stack of 8 MB reserved, two stages of them) and context
switches: decoding and counting are bound by the cores, remote models by the servers' own concurrency."""


def workers_arg(text: str) -> int:
    """--workers: an integer 1..MAX_WORKERS, with argparse-friendly errors saying why."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, not {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range 1..{MAX_WORKERS}: each worker is a thread per pipeline stage (and a "
            "request in flight to remote models); more than the cores or server can serve only costs memory"
        )
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (e.g. --limit: 0 is an error, not 'all'; leave the option out for all)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value} (leave the option out for all)")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (e.g. --max-skipped)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
