"""`seglens serve`: load models, build the API and run it with uvicorn.

Arguments are checked before anything heavy is imported or loaded, so a typo fails in milliseconds
with a message that says what to write instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import SegLensError
from app.core.runtime.argtypes import positive_int

if TYPE_CHECKING:
    from app.inference.base import Segmenter

log = logging.getLogger("seglens.server")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Served names appear in URL paths (/switch/{model}): keep them plain."""
_SPEC_HELP = "NAME=PATH, NAME of letters, digits, '.', '_' or '-' (e.g. segformer=models/b0.onnx)"
# Caps open connections (uvicorn answers 503 beyond it): uploads are spooled per connection, so an
# unbounded number of slow uploaders would be unbounded disk and memory.
_CONNECTION_LIMIT = 64


class UsageError(SegLensError):
    """A command-line argument that cannot work; the message says which and why."""


@dataclass(frozen=True)
class ServeOptions:
    """`seglens serve` arguments, parsed and checked (the API key itself is read only when serving)."""

    models: tuple[tuple[str, Path], ...]
    metrics: tuple[tuple[str, Path], ...]
    host: str
    port: int
    api_key_env: str | None
    max_concurrency: int
    max_upload_bytes: int
    max_pixels: int
    log_level: str
    evaluate: str | None = None  # a dataset to evaluate the served models on at start-up
    evaluate_limit: int | None = None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `seglens serve`. Returns the exit status (2 for usage and input errors)."""
    try:
        options = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    except UsageError as exc:
        print(f"seglens serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(options)
    except SegLensError as exc:
        print(f"seglens serve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl+C while the models load (uvicorn itself handles it by shutting down gracefully).
        print("seglens serve: stopped", file=sys.stderr)
        return 130


def parse_args(argv: Sequence[str] | None = None) -> ServeOptions:
    """Parse and check the arguments. Raises UsageError (or SystemExit from argparse)."""
    from app.server.codec import parse_pixels

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    models = tuple(_spec(s, "--model") for s in args.model)
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        raise UsageError(f"--model names must be unique, got {', '.join(names)}")
    metrics = tuple(_spec(s, "--metrics") for s in args.metrics)
    for name, _ in metrics:
        if name not in names:
            raise UsageError(f"--metrics {name}=...: no --model named {name!r} (served: {', '.join(names)})")
    try:
        max_pixels = parse_pixels(args.max_pixels)
    except ValueError as exc:
        raise UsageError(f"--max-pixels: {exc}") from None
    if args.max_concurrency < 1:
        raise UsageError("--max-concurrency must be at least 1")
    if not 0 < args.max_upload_mb <= 1024:
        raise UsageError("--max-upload-mb must be within 0..1024")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be within 0..65535, got {args.port}")
    return ServeOptions(
        models=models,
        metrics=metrics,
        host=args.host,
        port=args.port,
        api_key_env=args.api_key_env,
        max_concurrency=args.max_concurrency,
        max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
        max_pixels=max_pixels,
        log_level=args.log_level,
        evaluate=args.evaluate,
        evaluate_limit=args.evaluate_limit,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglens serve",
        description="Serve segmentation models over HTTP (the SegLens REST API; OpenAPI docs at /docs).",
    )
    parser.add_argument(
        "--model", action="append", required=True, metavar="NAME=PATH", help=f"a model to serve: {_SPEC_HELP}"
    )
    parser.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="NAME=RESULTS.json",
        help="`seglens evaluate --json` results to show in /metrics/NAME",
    )
    parser.add_argument(
        "--evaluate",
        metavar="DATASET",
        help="evaluate every served model on DATASET at start-up (the evaluation service, one scheme for "
        "all) and show the numbers in /metrics/NAME",
    )
    parser.add_argument(
        "--evaluate-limit", type=positive_int, metavar="N", help="with --evaluate: only the first N images"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, local only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require the API key held in environment variable VAR (Bearer or X-API-Key header)",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=2, help="predictions at once; more get 429 (default 2)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="request size limit (default 20)")
    parser.add_argument(
        "--max-pixels", default="4096x4096", help="largest image, WIDTHxHEIGHT in pixels (default 4096x4096)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    return parser


def _spec(text: str, option: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise UsageError(f"{option} {text!r}: expected {_SPEC_HELP}")
    if not _NAME.fullmatch(name):
        raise UsageError(f"{option} {text!r}: bad name {name!r}; expected {_SPEC_HELP}")
    return name, Path(path)


def read_api_key(env_var: str | None) -> str | None:
    """The API key from environment variable `env_var` (None when no variable is named)."""
    if env_var is None:
        return None
    key = os.environ.get(env_var, "")
    if not key.strip():
        # Name the variable, never its value.
        raise UsageError(f"--api-key-env {env_var}: the environment variable is unset or empty")
    return key.strip()


def serve(options: ServeOptions) -> int:
    """Load the models, build the app and run uvicorn until interrupted. Closes the models on exit."""
    try:
        import uvicorn

        from app.server.app import create_app
    except ImportError as exc:
        raise UsageError(
            f"{exc.name} is missing: install the server extra (pip install 'seglens[server]')"
        ) from exc

    api_key = read_api_key(options.api_key_env)
    if api_key is None and not _is_loopback(options.host):
        print(
            f"seglens serve: warning: listening on {options.host} without an API key; "
            "anyone who can reach this machine can use the models (see --api-key-env)",
            file=sys.stderr,
        )
    models = load_models(options.models)
    try:
        evaluations = _load_evaluations(options, models)
        if options.evaluate is not None:
            from app.server.evaluations import evaluate_served

            print(f"seglens serve: evaluating the served models on {options.evaluate} ...", file=sys.stderr)
            evaluated = evaluate_served(models, options.evaluate, limit=options.evaluate_limit)
            evaluations = {**evaluated, **evaluations}  # a results file given by name wins
        app = create_app(
            models,
            api_key=api_key,
            max_concurrency=options.max_concurrency,
            max_upload_bytes=options.max_upload_bytes,
            max_pixels=options.max_pixels,
            evaluations=evaluations,
        )
        uvicorn.run(
            app,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            limit_concurrency=_CONNECTION_LIMIT,
            server_header=False,
        )
    finally:
        for model in models.values():
            model.close()
    return 0


def load_models(specs: Sequence[tuple[str, Path]]) -> dict[str, Segmenter]:
    """Open every NAME=PATH model; on a failure the ones already open are closed before raising."""
    from app.inference.registry import load_model

    models: dict[str, Segmenter] = {}
    try:
        for name, path in specs:
            models[name] = load_model(path)
            print(f"seglens serve: loaded {name} = {path}", file=sys.stderr)
    except BaseException:
        for model in models.values():
            model.close()
        raise
    return models


def _load_evaluations(options: ServeOptions, models: dict[str, Segmenter]) -> dict[str, dict[str, Any]]:
    from app.server.evaluations import load_evaluation

    return {name: load_evaluation(path, name, models[name].info) for name, path in options.metrics}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
