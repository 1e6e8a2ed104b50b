"""`seglens evaluate`: models (or saved predictions) on a dataset, headless; a summary table on stdout and
the full results as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.commands.options import (
    add_dataset_options,
    add_run_options,
    check_outputs,
    print_listing_notes,
    request_from_args,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `evaluate` on the `seglens` parser."""
    p = sub.add_parser("evaluate", help="evaluate models (or saved predictions) on a dataset, headless")
    add_dataset_options(p)
    p.add_argument("--model", action="append", default=[], help="model file; repeat for A and B")
    p.add_argument(
        "--predictions", action="append", default=[], help="folder of labelIds PNGs named like the GT files"
    )
    p.add_argument("--json", type=Path, help="write the full results as JSON here")
    p.add_argument("--save-predictions", type=Path, help="write each model's masks as labelIds PNGs")
    add_run_options(p, cache_default=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0: evaluated; 1: nothing could be evaluated; 2: bad input (raised as SegLensError)."""
    from app.evaluation.document import format_summary, result_document
    from app.evaluation.progress import run_with_progress
    from app.evaluation.service import open_session

    if not args.model and not args.predictions:
        print("seglens evaluate: give at least one --model or --predictions", file=sys.stderr)
        return 2
    check_outputs(json_file=args.json, predictions_dir=args.save_predictions)
    # Nothing here shows the masks: a cluster leaves them on the workers (the driver saves them if asked).
    request = request_from_args(
        args, args.model, args.predictions, save_predictions=args.save_predictions, outcome_predictions=False
    )
    with open_session(request) as session:
        print_listing_notes(session.dataset, "seglens evaluate")
        for note in session.notes:
            print(note, file=sys.stderr)
        scheme = session.scheme.key
        print(f"{session.dataset.root}: {len(session.refs)} images, scheme {scheme}", file=sys.stderr)
        result = run_with_progress(session, quiet=args.quiet)
    for message in result.write_errors:
        print(f"seglens evaluate: not written: {message}", file=sys.stderr)
    not_written = False
    if args.json:
        from app.core.io.fileutil import atomic_write_text

        try:
            atomic_write_text(args.json, json.dumps(result_document(result), indent=2, allow_nan=False))
            print(f"wrote {args.json}", file=sys.stderr)
        except OSError as exc:  # checked at the start, but a disk can fill up: the summary still prints
            why = exc.strerror or exc
            print(f"seglens evaluate: error: {args.json}: not written: {why}", file=sys.stderr)
            not_written = True
    print(format_summary(result))
    if not_written or result.write_errors:
        return 2
    if not any(m.images for m in result.models):
        print("seglens evaluate: nothing could be evaluated", file=sys.stderr)
        return 1
    return 0
