"""The `seglens` command. With no argument it opens the window on the demo set.

Heavy imports (Qt, onnxruntime) happen inside the sub-command that needs them, so `seglens --help` and
the headless commands start fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import __version__
from app.core.argtypes import WORKERS_HELP, positive_int, workers_arg
from app.core.errors import SegLensError
from app.core.memory import manage_memory

if TYPE_CHECKING:
    from app.core.labels import ClassScheme
    from app.inference.evaluate import SamplePredictor


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `seglens` console script and `python -m app`."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    manage_memory()  # large arrays reused without page faults; free pages given back every few seconds
    if not args_list or (args_list[0] not in _COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "open")
    if args_list[0] in _DELEGATED:
        return _delegate(args_list[0], args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    try:
        return int(args.func(args))
    except SegLensError as exc:
        print(f"seglens: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seglens: interrupted", file=sys.stderr)
        return 130


# Sub-commands implemented by their own module's main(argv), imported only when used.
_DELEGATED: dict[str, tuple[str, str]] = {
    "demo-data": ("app.core.synthetic", "write synthetic street scenes in the Cityscapes layout"),
    "export": ("app.inference.export", "export a Keras or Hugging Face model to ONNX (fidelity checked)"),
    "quantize": ("app.inference.quantize", "INT8 static quantization of an ONNX model, measured"),
    "benchmark": ("app.inference.benchmark", "latency, throughput, size, memory (and accuracy) per model"),
    "serve": ("app.server.app", "host models behind the SegLens REST API"),
    "report": ("app.report.cli", "evaluate A and B and write a comparison report (HTML, PDF, CSV, JSON)"),
    "gate": ("app.gate", "QA gate for CI: candidate vs reference with thresholds, JUnit output"),
    "train": ("app.training.cli", "fine-tune SegFormer or the VGG16-UNet baseline on Cityscapes-layout data"),
}
_COMMANDS = ("open", "evaluate", *_DELEGATED)


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    module_name, _ = _DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"seglens {command}: unavailable ({exc}); install the matching extra", file=sys.stderr)
        return 2
    try:
        return int(module.main(argv))
    except SegLensError as exc:
        print(f"seglens {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed after the checks (disk full): named, not a traceback
        print(f"seglens {command}: error: {exc}", file=sys.stderr)
        return 2


_GT_SCHEME_HELP = (
    "what the ground-truth masks hold: 'labelids' (Cityscapes, default) or a custom scheme JSON "
    '({"classes": [{"name": ..., "color": [r, g, b]}, ...], "ignore_value": 255})'
)


def gt_scheme_from_arg(value: str | None) -> ClassScheme:
    """'labelids' (or nothing) -> Cityscapes labelIds; anything else is a custom scheme JSON file."""
    from app.core.labels import LABELIDS, load_custom_scheme

    if value is None or value.lower() == "labelids":
        return LABELIDS
    return load_custom_scheme(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglens",
        description="Compare semantic-segmentation models image by image and pixel by pixel.",
    )
    parser.add_argument("--version", action="version", version=f"SegLens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_open = sub.add_parser("open", help="open the window (default; without a dataset: the demo set)")
    p_open.add_argument("dataset", nargs="?", help="dataset folder (Cityscapes layout or images)")
    p_open.add_argument("--model-a", "-a", help="model A (ONNX file or manifest)")
    p_open.add_argument("--model-b", "-b", help="model B (ONNX file or manifest)")
    p_open.add_argument("--split", help="Cityscapes split (default: val)")
    p_open.add_argument("--scheme", choices=("trainids", "categories"), help="evaluation scheme")
    p_open.add_argument("--no-evaluate", action="store_true", help="do not start evaluating at once")
    p_open.add_argument("--gt-scheme", help=_GT_SCHEME_HELP)
    p_open.set_defaults(func=_cmd_open)

    p_eval = sub.add_parser("evaluate", help="evaluate models (or saved predictions) on a dataset, headless")
    p_eval.add_argument("--dataset", required=True, help="dataset folder")
    p_eval.add_argument("--split", help="Cityscapes split (default: val)")
    p_eval.add_argument("--model", action="append", default=[], help="model file; repeat for A and B")
    p_eval.add_argument(
        "--predictions", action="append", default=[], help="folder of labelIds PNGs named like the GT files"
    )
    p_eval.add_argument("--scheme", choices=("trainids", "categories"), help="default: trainids if possible")
    p_eval.add_argument("--gt-scheme", help=_GT_SCHEME_HELP)
    p_eval.add_argument("--json", type=Path, help="write the full results as JSON here")
    p_eval.add_argument("--save-predictions", type=Path, help="write each model's masks as labelIds PNGs")
    p_eval.add_argument("--limit", type=positive_int, help="evaluate only the first N images")
    p_eval.add_argument("--workers", type=workers_arg, default=2, help=WORKERS_HELP)
    p_eval.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p_eval.add_argument(
        "--onnx-runtime",
        action="store_true",
        help="run Keras/Hugging Face models through an ONNX export (cached by digest, fidelity checked)",
    )
    p_eval.set_defaults(func=_cmd_evaluate)

    for command, (_, summary) in _DELEGATED.items():
        sub.add_parser(command, help=summary, add_help=False)
    return parser


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from app.core.datasets import open_dataset
    from app.inference.evaluate import (
        Evaluator,
        FolderPredictions,
        SegmenterPredictor,
        choose_scheme,
        run_with_progress,
    )
    from app.inference.registry import load_model

    if not args.model and not args.predictions:
        print("seglens evaluate: give at least one --model or --predictions", file=sys.stderr)
        return 2
    check_outputs(json_file=args.json, predictions_dir=args.save_predictions)
    dataset = open_dataset(args.dataset, split=args.split, gt_scheme=gt_scheme_from_arg(args.gt_scheme))
    print_listing_notes(dataset, "seglens evaluate")
    segmenters = [load_model(m) for m in args.model]
    if args.onnx_runtime:
        from app.inference.accelerate import accelerated

        for i, (source, native) in enumerate(zip(args.model, segmenters, strict=True)):
            segmenters[i], note = accelerated(source, native)
            print(note, file=sys.stderr)
    predictors: list[SamplePredictor] = [SegmenterPredictor(s) for s in segmenters]
    predictors += [FolderPredictions(p, dataset.gt_scheme) for p in args.predictions]
    scheme = choose_scheme(args.scheme, predictors, dataset.gt_scheme)
    evaluator = Evaluator(
        dataset, predictors, scheme, workers=args.workers, save_predictions=args.save_predictions
    )
    refs = dataset.refs[: args.limit] if args.limit else dataset.refs
    print(f"{dataset.root}: {len(refs)} images, scheme {scheme.key}", file=sys.stderr)

    try:
        result = run_with_progress(evaluator, refs, quiet=args.quiet)
    finally:
        for predictor in predictors:
            if isinstance(predictor, SegmenterPredictor):
                predictor.segmenter.close()
    document = result.to_dict()
    for message in evaluator.write_errors:
        print(f"seglens evaluate: not written: {message}", file=sys.stderr)
    not_written = False
    if args.json:
        from app.core.fileutil import atomic_write_text

        try:
            atomic_write_text(args.json, json.dumps(document, indent=2, allow_nan=False))
            print(f"wrote {args.json}", file=sys.stderr)
        except OSError as exc:  # checked at the start, but a disk can fill up: the summary still prints
            print(
                f"seglens evaluate: error: {args.json}: not written: {exc.strerror or exc}", file=sys.stderr
            )
            not_written = True
    print(format_summary(document))
    if not_written or evaluator.write_errors:
        return 2
    if not any(m.images for m in result.models):
        print("seglens evaluate: nothing could be evaluated", file=sys.stderr)
        return 1
    return 0


def check_outputs(*, json_file: Path | None = None, predictions_dir: Path | None = None) -> None:
    """Refuse output targets that could not be written, before any model runs (InputError: exit 2)."""
    from app.core.fileutil import check_output_dir, check_output_file

    if json_file is not None:
        check_output_file(json_file, "JSON file")
    if predictions_dir is not None:
        check_output_dir(predictions_dir, "predictions folder")


def print_listing_notes(dataset: Any, command: str, *, shown: int = 10) -> None:
    """What the dataset listing skipped, and why images have no labels, on stderr (the first `shown`)."""
    for note in dataset.notes[:shown]:
        print(f"{command}: {note}", file=sys.stderr)
    missing = dataset.missing_labels()
    if missing and len(missing) < len(dataset.refs):  # a dataset without any labels is said by describe()
        for key, reason in list(missing.items())[:shown]:
            print(f"{command}: no labels for {key}: {reason}", file=sys.stderr)
        if len(missing) > shown:
            print(f"{command}: ... and {len(missing) - shown} more images without labels", file=sys.stderr)


def format_summary(document: dict[str, Any]) -> str:
    """A plain-text table of the JSON document: one column per model, deltas for two models."""
    models: list[dict[str, Any]] = document["models"]
    classes: list[str] = document["classes"]
    names = [str(m["name"])[:18] for m in models]
    header = f"{'class':<16}" + "".join(f"{n:>19}" for n in names)
    two = len(models) == 2
    if two:
        header += f"{'B-A':>9}"
    lines = [header, "-" * len(header)]

    def row(label: str, values: list[float | None]) -> str:
        text = f"{label:<16}" + "".join(f"{_pct(v):>19}" for v in values)
        if two and values[0] is not None and values[1] is not None:
            text += f"{(values[1] - values[0]) * 100:>+9.2f}"
        return text

    for cls in classes:
        lines.append(row(cls, [m["metrics"]["classes"][cls]["iou"] for m in models]))
    lines.append("-" * len(header))
    for label, key in (("mIoU", "miou"), ("iIoU", "miiou"), ("pixel acc.", "pixel_accuracy")):
        lines.append(row(label, [m["metrics"][key] for m in models]))
    lines.append(row("category mIoU", [m["metrics"].get("mean_category_iou") for m in models]))
    lat = "".join(f"{_ms(m['latency_ms']['p50']):>19}" for m in models)
    lines.append(f"{'latency p50':<16}{lat}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _cmd_open(args: argparse.Namespace) -> int:
    from app.controllers.app_launch import launch

    return launch(
        dataset=args.dataset,
        model_a=args.model_a,
        model_b=args.model_b,
        split=args.split,
        scheme=args.scheme,
        evaluate=not args.no_evaluate,
        gt_scheme=gt_scheme_from_arg(args.gt_scheme),
    )
