"""`seglens report`: evaluate model A and model B on a dataset and write the comparison report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.options import add_dataset_options, add_run_options, print_listing_notes, request_from_args
from app.core.domain.errors import SegLensError

if TYPE_CHECKING:
    from app.evaluation.results import EvaluationResult
    from app.report.data import MaskSource

DEFAULT_OUT = Path("seglens-report.html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglens report",
        description="Evaluate model A and model B on a dataset and write a comparison report "
        "(self-contained HTML, PDF, CSV, JSON).",
    )
    add_dataset_options(parser)
    parser.add_argument("--model", action="append", default=[], help="model file; give A first, then B")
    parser.add_argument(
        "--predictions", action="append", default=[], help="folder of labelIds PNGs (after the --model ones)"
    )
    parser.add_argument("--out", type=Path, help=f"HTML report (default {DEFAULT_OUT} if nothing else asked)")
    parser.add_argument("--pdf", type=Path, help="PDF report (needs the 'report' extra: fpdf2)")
    parser.add_argument("--csv", type=Path, metavar="DIR", help="folder for per_class.csv and per_image.csv")
    parser.add_argument("--json", type=Path, help="full results and findings as JSON")
    parser.add_argument("--top", type=int, default=5, help="regressions/improvements to show (default 5)")
    add_run_options(parser, cache_default=True, analysis_default=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `seglens report`. 0: written; 1: nothing could be evaluated; 2: bad input."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    try:
        return _run(args, args_list)
    except SegLensError as exc:
        print(f"seglens report: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from app.evaluation.document import format_summary
    from app.evaluation.progress import run_with_progress
    from app.evaluation.service import open_session
    from app.report.run import TopMasks, reproduce_settings

    count = len(args.model) + len(args.predictions)
    if not 1 <= count <= 2:
        print(
            "seglens report: give model A and model B (--model or --predictions, two in all)", file=sys.stderr
        )
        return 2
    if args.top < 0:
        print("seglens report: --top must be 0 or more", file=sys.stderr)
        return 2
    _check_targets(args)  # a target that cannot be written is refused before minutes of inference
    if args.pdf:
        from app.report.writer import pdf_writer

        pdf_writer()  # a missing extra is reported before minutes of inference, not after
    request = request_from_args(args, args.model, args.predictions, measure_memory=True)
    keeper = TopMasks(args.top)
    with open_session(request) as session:
        print_listing_notes(session.dataset, "seglens report")
        for note in session.notes:
            print(note, file=sys.stderr)
        print(f"{session.dataset.root}: {len(session.refs)} images", file=sys.stderr)
        result = run_with_progress(session, quiet=args.quiet, report_skipped=not args.quiet, on_image=keeper)
    if not any(m.images for m in result.models):
        print("seglens report: nothing could be evaluated", file=sys.stderr)
        return 1
    settings = reproduce_settings("seglens report", argv)
    for path in _write(args, result, keeper.mask, settings):
        print(f"wrote {path}", file=sys.stderr)
    print(format_summary(result))
    return 0


def _check_targets(args: argparse.Namespace) -> None:
    from app.core.io.fileutil import check_output_dir, check_output_file

    out = args.out if args.out or args.pdf or args.csv or args.json else DEFAULT_OUT
    for path, what in ((out, "HTML report"), (args.pdf, "PDF report"), (args.json, "JSON file")):
        if path is not None:
            check_output_file(path, what)
    if args.csv is not None:
        check_output_dir(args.csv, "CSV folder")


def _write(
    args: argparse.Namespace,
    result: EvaluationResult,
    masks: MaskSource,
    settings: dict[str, str],
) -> list[Path]:
    from app.report.data import build_report_data
    from app.report.figures import build_figures
    from app.report.writer import write_json

    out = args.out if args.out or args.pdf or args.csv or args.json else DEFAULT_OUT
    data = build_report_data(result, top_n=args.top, settings=settings, masks=masks)
    written: list[Path] = []
    if out or args.pdf:
        figures = build_figures(data)
        if out:
            from app.report.html import write_html

            written.append(write_html(data, figures, out))
        if args.pdf:
            from app.report.writer import pdf_writer

            written.append(pdf_writer()(data, figures, args.pdf))
    if args.csv:
        from app.report.tables import write_csv

        written += write_csv(data, args.csv)
    if args.json:
        written.append(write_json(data, args.json))
    return written
