"""The `seglens` command. With no argument it opens the window on the demo set.

Heavy imports (Qt, onnxruntime) happen inside the sub-command that needs them, so `seglens --help` and
the headless commands start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app import __version__
from app.commands.options import GT_SCHEME_HELP, gt_scheme_from_arg
from app.core.domain.errors import SegLensError
from app.core.runtime.memory import manage_memory


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
    "demo-data": ("app.core.scenes.generator", "write synthetic street scenes in the Cityscapes layout"),
    "export": (
        "app.inference.tools.export",
        "export a Keras or Hugging Face model to ONNX (fidelity checked)",
    ),
    "quantize": ("app.tools.quantize_cli", "INT8 static quantization of an ONNX model, measured"),
    "benchmark": ("app.tools.benchmark", "latency, throughput, size, memory (and accuracy) per model"),
    "serve": ("app.server.cli", "host models behind the SegLens REST API"),
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
    p_open.add_argument("--gt-scheme", help=GT_SCHEME_HELP)
    p_open.set_defaults(func=_cmd_open)

    from app.commands import evaluate

    evaluate.add_parser(sub)

    for command, (_, summary) in _DELEGATED.items():
        sub.add_parser(command, help=summary, add_help=False)
    return parser


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
