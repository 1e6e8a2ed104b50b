"""Pick a backend for a model file or manifest. Adding a backend = one module + one line in BACKENDS.

Backends are named by "module:function" and imported only when a model of their kind is opened, so that
opening an ONNX model never imports TensorFlow or torch. A loader is called as
`loader(path_or_url, manifest_or_None) -> Segmenter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from app.core.domain.errors import InputError, ModelLoadError
from app.inference.base import Segmenter
from app.inference.manifest import MANIFEST_SUFFIXES, ModelManifest, find_manifest, load_manifest

Loader = Callable[[Path | str, ModelManifest | None], Segmenter]


@dataclass(frozen=True)
class Backend:
    """One model backend: the manifest `kind`, the file suffixes it opens, and its loader."""

    kind: str
    suffixes: tuple[str, ...]  # lower case, with the dot; () for manifest-only backends (remote)
    loader: str  # "module:function"
    description: str
    markers: tuple[str, ...] = ()  # files that make a directory this backend's model (HF: config.json)
    weights: tuple[str, ...] = ()  # glob patterns, one of which a model directory must also match


BACKENDS: tuple[Backend, ...] = (
    Backend("onnx", (".onnx",), "app.inference.backends.onnx_backend:load_onnx", "ONNX model"),
    Backend(
        "keras", (".keras", ".h5", ".hdf5"), "app.inference.backends.keras_backend:load_keras", "Keras model"
    ),
    Backend(
        "hf",
        (),
        "app.inference.backends.hf_backend:load_hf",
        "transformers checkpoint folder",
        ("config.json",),
        ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json"),
    ),
    Backend(
        "rest", (), "app.inference.backends.rest_backend:load_rest", "SegLens REST server (manifest url)"
    ),
    Backend(
        "v2",
        (),
        "app.inference.backends.v2_backend:load_v2",
        "Open Inference Protocol v2 server (manifest url)",
    ),
    Backend(
        "http",
        (),
        "app.inference.backends.http_backend:load_http",
        "any JSON/PNG API described by its manifest",
    ),
    Backend(
        "azureml",
        (),
        "app.inference.backends.azureml_backend:load_azureml",
        "Azure ML online endpoint (/score)",
    ),
)


def supported_suffixes() -> list[str]:
    """Every suffix load_model() accepts (model files, then manifests), for file dialogs."""
    suffixes = [s for backend in BACKENDS for s in backend.suffixes]
    return sorted(set(suffixes)) + [s for s in MANIFEST_SUFFIXES if s not in suffixes]


def backend_for_kind(kind: str) -> Backend | None:
    """The backend registered for a manifest `kind`, or None."""
    return next((b for b in BACKENDS if b.kind == kind.lower()), None)


def backend_for_suffix(suffix: str) -> Backend | None:
    """The backend that opens files ending in `suffix` (".onnx"), or None."""
    return next((b for b in BACKENDS if suffix.lower() in b.suffixes), None)


def is_model_path(path: str | Path) -> bool:
    """Would load_model() take `path` as a model? A file with a backend's suffix (.onnx, .keras, .h5, ...)
    or a manifest's (.json, .yaml, .yml), or a folder holding a backend's marker files and weights (a
    Hugging Face checkpoint: config.json + *.safetensors / *.bin). Looks at names only, opens nothing;
    a folder of images without config.json is not a model (the window opens it as a dataset)."""
    source = Path(path)
    if source.is_dir():
        return any(_is_model_dir(backend, source) for backend in BACKENDS if backend.markers)
    suffix = source.suffix.lower()
    return backend_for_suffix(suffix) is not None or suffix in MANIFEST_SUFFIXES


def _is_model_dir(backend: Backend, folder: Path) -> bool:
    if not all((folder / marker).is_file() for marker in backend.markers):
        return False
    return not backend.weights or any(next(folder.glob(pattern), None) for pattern in backend.weights)


def load_model(path: str | Path) -> Segmenter:
    """Open a model file (or a manifest .json/.yaml beside or instead of it). Raises ModelLoadError.

    A model file is opened with the manifest found beside it (<stem>.json/.yaml/.yml/.manifest.json), if
    any; a manifest file opens the model it points to (path or url) with its settings.
    """
    source = Path(path)
    if not source.exists():
        raise ModelLoadError(source, "no such file")
    if source.is_dir():
        marked = (b for b in BACKENDS if b.markers and all((source / m).is_file() for m in b.markers))
        folder = next(marked, None)
        if folder is None:
            raise ModelLoadError(source, "a folder opens only as a transformers checkpoint (config.json)")
        return _call(folder, source, _manifest_beside(source))
    suffix = source.suffix.lower()
    backend = backend_for_suffix(suffix)
    if backend is not None:
        return _call(backend, source, _manifest_beside(source))
    if suffix in MANIFEST_SUFFIXES:
        manifest = _load_manifest(source)
        backend = backend_for_kind(manifest.kind)
        if backend is None:
            kinds = ", ".join(b.kind for b in BACKENDS)
            raise ModelLoadError(source, f"unknown model kind {manifest.kind!r}; supported kinds: {kinds}")
        return _call(backend, manifest.path if manifest.path is not None else manifest.location, manifest)
    raise ModelLoadError(
        source,
        f"unsupported model file type {suffix or '(no suffix)'!r}; supported: "
        + ", ".join(f"{b.description} ({', '.join(b.suffixes)})" for b in BACKENDS if b.suffixes)
        + f", or a model manifest ({', '.join(MANIFEST_SUFFIXES)})",
    )


def _manifest_beside(model: Path) -> ModelManifest | None:
    found = find_manifest(model)
    # The file the user opened is the model; a manifest found beside it only adds settings.
    return _load_manifest(found) if found is not None else None


def _load_manifest(path: Path) -> ModelManifest:
    try:
        return load_manifest(path)
    except ModelLoadError:
        raise
    except InputError as exc:
        raise ModelLoadError(exc.path, exc.problem) from exc


def _call(backend: Backend, target: Path | str, manifest: ModelManifest | None) -> Segmenter:
    module_name, _, attr = backend.loader.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            target if isinstance(target, Path) else None,
            f"the {backend.kind} backend is not installed ({exc.name} missing)",
        ) from exc
    loader = cast(Loader, getattr(module, attr))
    return loader(target, manifest)
