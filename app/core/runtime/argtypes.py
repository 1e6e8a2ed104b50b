"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse


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
    return height, width


WORKERS_HELP = "threads that decode and count, and requests in flight to remote models (default 2)"
"""What Evaluator's `workers` means, for the commands' --workers."""
