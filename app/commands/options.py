"""The options every evaluating command shares (evaluate, report, gate), parsed into one EvaluationRequest,
so each works the same everywhere: dataset and split, ground-truth scheme, evaluation scheme, image
limit, workers, the prediction cache, running Keras/HF models through ONNX Runtime, and the engine (this
process or a Ray cluster)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.runtime.argtypes import WORKERS_HELP, positive_int, workers_arg

if TYPE_CHECKING:
    from app.core.domain.labels import ClassScheme
    from app.core.io.datasets import Dataset
    from app.evaluation.service import CachePolicy, EvaluationRequest, RayOptions

GT_SCHEME_HELP = (
    "what the ground-truth masks hold: 'labelids' (Cityscapes, default) or a custom scheme JSON "
    '({"classes": [{"name": ..., "color": [r, g, b]}, ...], "ignore_value": 255})'
)


def gt_scheme_from_arg(value: str | None) -> ClassScheme:
    """'labelids' (or nothing) -> Cityscapes labelIds; anything else is a custom scheme JSON file."""
    from app.core.domain.labels import LABELIDS, load_custom_scheme

    if value is None or value.lower() == "labelids":
        return LABELIDS
    return load_custom_scheme(value)


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """--dataset, --split, --gt-scheme, --scheme."""
    parser.add_argument("--dataset", required=True, help="dataset folder (Cityscapes layout or images)")
    parser.add_argument("--split", help="Cityscapes split (default: val)")
    parser.add_argument("--gt-scheme", help=GT_SCHEME_HELP)
    parser.add_argument("--scheme", choices=("trainids", "categories"), help="default: trainids if possible")
    parser.add_argument(
        "--ground-truth",
        choices=("original", "edited"),
        default="original",
        help="count against the dataset's label files (default) or with a project's edited labels",
    )
    parser.add_argument(
        "--project", type=Path, help="the project holding edited labels (default: the dataset's project)"
    )


def add_run_options(
    parser: argparse.ArgumentParser, *, cache_default: bool, analysis_default: bool = False
) -> None:
    """--limit, --workers, --quiet, --onnx-runtime, --analysis and the cache options."""
    parser.add_argument("--limit", type=positive_int, help="evaluate only the first N images")
    parser.add_argument("--workers", type=workers_arg, default=2, help=WORKERS_HELP)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument(
        "--onnx-runtime",
        action="store_true",
        help="run Keras/Hugging Face models through an ONNX export (cached by digest, fidelity checked)",
    )
    parser.add_argument(
        "--analysis",
        action=argparse.BooleanOptionalAction,
        default=analysis_default,
        help="per image: Boundary IoU / BF, likely label errors, missed objects (~80 ms per image at "
        f"1024x2048; default {'on' if analysis_default else 'off'}). The paired bootstrap of B - A is "
        "always computed for two models",
    )
    state = "on" if cache_default else "off"
    parser.add_argument(
        "--cache",
        nargs="?",
        type=Path,
        const=True,
        default=cache_default,
        metavar="DIR",
        help=f"read and write the on-disk prediction cache, in DIR (default: the user cache; {state} "
        "unless asked)",
    )
    parser.add_argument("--no-cache", dest="cache", action="store_false", help="predict every image again")
    parser.add_argument(
        "--cache-max-mb", type=int, default=2048, help="prediction cache bound (default 2048 MB)"
    )
    add_engine_options(parser)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """--engine and the Ray cluster's options (the `ray` extra)."""
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where images are evaluated: this process (default) or a Ray cluster (pip install -e '.[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster (host:port or ray://host:10001); default $RAY_ADDRESS, else a local Ray "
        "with this machine's cores",
    )
    parser.add_argument(
        "--ray-data",
        choices=("auto", "shared", "ship"),
        default="auto",
        help="how workers get the images: read the dataset's path (shared), or bytes sent from here "
        "(ship: no shared filesystem, the model files are sent too); auto (default): ship images to the "
        "workers that do not see the path",
    )
    parser.add_argument(
        "--ray-cpus-per-worker",
        type=int,
        metavar="N",
        help="CPUs (= onnxruntime threads) per Ray worker (default: up to 4; 1 for remote models)",
    )


def ray_options(args: argparse.Namespace) -> RayOptions:
    """The RayOptions of the options add_engine_options added."""
    from app.core.domain.errors import InputError
    from app.evaluation.service import RayOptions

    cpus = args.ray_cpus_per_worker
    if cpus is not None and cpus < 1:
        raise InputError(None, f"--ray-cpus-per-worker must be 1 or more, not {cpus}")
    if args.engine != "ray" and (args.ray_address or cpus is not None or args.ray_data != "auto"):
        raise InputError(None, "the --ray-* options need --engine ray")
    return RayOptions(address=args.ray_address, data=args.ray_data, cpus_per_worker=cpus)


def cache_policy(args: argparse.Namespace) -> CachePolicy:
    """The CachePolicy of the options add_run_options added."""
    from app.evaluation.service import CachePolicy

    folder = args.cache if isinstance(args.cache, Path) else None
    return CachePolicy(use=args.cache is not False, folder=folder, max_bytes=args.cache_max_mb * 1024 * 1024)


def request_from_args(
    args: argparse.Namespace,
    models: list[str],
    predictions: list[str] | None = None,
    *,
    save_predictions: Path | None = None,
    measure_memory: bool = False,
    outcome_predictions: bool = True,
) -> EvaluationRequest:
    """The EvaluationRequest of the shared options plus the command's own model list. Run here, in-process
    models leave one core to decoding and counting ($SEGLENS_INFERENCE_THREADS overrides)."""
    from app.evaluation.service import EvaluationRequest, spare_core_threads

    return EvaluationRequest(
        dataset=args.dataset,
        models=tuple(models),
        predictions=tuple(predictions or ()),
        split=args.split,
        gt_scheme=gt_scheme_from_arg(args.gt_scheme),
        scheme=args.scheme,
        ground_truth=args.ground_truth,
        project=args.project,
        cache=cache_policy(args),
        accelerate=bool(args.onnx_runtime),
        workers=args.workers,
        limit=args.limit,
        save_predictions=save_predictions,
        measure_memory=measure_memory,
        analysis=bool(args.analysis),
        engine=args.engine,
        ray=ray_options(args),
        outcome_predictions=outcome_predictions,
        inference_threads=spare_core_threads() if args.engine == "local" else None,
    )


def check_outputs(*, json_file: Path | None = None, predictions_dir: Path | None = None) -> None:
    """Refuse output targets that could not be written, before any model runs (InputError: exit 2)."""
    from app.core.io.fileutil import check_output_dir, check_output_file

    if json_file is not None:
        check_output_file(json_file, "JSON file")
    if predictions_dir is not None:
        check_output_dir(predictions_dir, "predictions folder")


def print_listing_notes(dataset: Dataset, command: str, *, shown: int = 10) -> None:
    """What the dataset listing skipped, and why images have no labels, on stderr (the first `shown`)."""
    for note in dataset.notes[:shown]:
        print(f"{command}: {note}", file=sys.stderr)
    missing = dataset.missing_labels()
    if missing and len(missing) < len(dataset.refs):  # a dataset without any labels is said by describe()
        for key, reason in list(missing.items())[:shown]:
            print(f"{command}: no labels for {key}: {reason}", file=sys.stderr)
        if len(missing) > shown:
            print(f"{command}: ... and {len(missing) - shown} more images without labels", file=sys.stderr)
