"""Model manifests: a small JSON/YAML file that says what a model file does not.

Every field except `name` and `kind` may be left out (None): the backend then takes it from the model file
(ONNX metadata_props, HF config, Keras input shape) or from its defaults. A value given in the manifest wins
over the file.

Example (model.yaml beside model.onnx)::

    name: segformer-b0-cityscapes
    kind: onnx
    path: model.onnx
    input_size: [512, 1024]
    resize: fixed
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    scheme: trainids          # or class_names: [road, sidewalk, ...] or scheme: my_classes.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from app.core.domain.errors import InputError, SchemeError
from app.core.domain.labels import BUILTIN_SCHEMES, ClassScheme, load_custom_scheme
from app.core.io.budget import budget_problem
from app.inference.base import ChannelOrder, Layout, OutputKind, ResizePolicy

MANIFEST_SUFFIXES: tuple[str, ...] = (".json", ".yaml", ".yml")
_RESIZE = ("fixed", "any", "multiple")
_OUTPUTS = ("logits", "probabilities", "labels")
_LAYOUTS = ("NCHW", "NHWC")
_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class ModelManifest:
    """What a manifest file says about one model; None means "not said, ask the model file"."""

    name: str
    kind: str
    path: Path | None = None  # absolute (resolved against the manifest's folder)
    url: str | None = None
    input_size: tuple[int, int] | None = None  # (height, width)
    resize: ResizePolicy | None = None
    size_multiple: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale: float | None = None
    channel_order: ChannelOrder | None = None
    layout: Layout | None = None
    output: OutputKind | None = None
    class_names: tuple[str, ...] | None = None
    scheme: str | None = None  # builtin key, or the absolute path of a custom scheme JSON
    options: Mapping[str, Any] = field(default_factory=dict)  # backend-specific settings, passed through
    source: Path | None = None  # the manifest file itself

    @property
    def location(self) -> str:
        """The model's path or URL as text, for messages and ModelInfo.source."""
        return str(self.path) if self.path is not None else (self.url or "")

    def class_scheme(self) -> ClassScheme | None:
        """The scheme named by `scheme` (builtin key or custom JSON), or None when none is named."""
        if self.scheme is None:
            return None
        if self.scheme.lower() in BUILTIN_SCHEMES:
            return BUILTIN_SCHEMES[self.scheme.lower()]
        return load_custom_scheme(self.scheme)


def load_manifest(path: str | Path) -> ModelManifest:
    """Read and validate a manifest (.json, or .yaml/.yml via yaml.safe_load). Raises InputError naming
    the file and the offending key."""
    source = Path(path)
    data = _read_mapping(source)
    unknown = sorted(set(data) - set(_PARSERS) - {"name", "kind", "path", "url"})
    if unknown:
        raise InputError(
            source,
            f"unknown manifest key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: name, kind, path, url, {', '.join(_PARSERS)}",
        )
    kind = data.get("kind", "onnx")
    if not isinstance(kind, str) or not kind:
        raise InputError(source, f"'kind' must be a backend name such as 'onnx', got {kind!r}")
    model_path, url = _location(source, data)
    fields: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        if data.get(key) is not None:
            try:
                fields[key] = parse(data[key], source)
            except (TypeError, ValueError) as exc:
                raise InputError(source, f"key {key!r}: {exc}") from exc
    if "class_names" in fields and "scheme" in fields:
        raise InputError(source, "give either 'class_names' or 'scheme', not both")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise InputError(source, f"'name' must be text, got {name!r}")
    default_name = model_path.stem if model_path is not None else source.stem
    manifest = ModelManifest(
        name=name or default_name, kind=kind.lower(), path=model_path, url=url, source=source, **fields
    )
    if manifest.scheme is not None:
        _check_scheme(manifest, source)
    return manifest


def manifest_fields(manifest: ModelManifest) -> dict[str, Any]:
    """The optional settings a manifest actually gives (its non-None fields), keyed like the file."""
    return {
        key: getattr(manifest, key)
        for key in _PARSERS
        if key != "options" and getattr(manifest, key) is not None
    }


def metadata_fields(props: Mapping[str, str], source: Path, prefix: str = "seglens.") -> dict[str, Any]:
    """Parse `<prefix><key>` model metadata (e.g. ONNX metadata_props written by our exporter) with the
    manifest's rules. Values are JSON or plain text; keys not known to manifests are ignored (the file may
    carry other tools' metadata). A bad value raises InputError naming `source` and the key."""
    fields: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        raw = props.get(prefix + key)
        if raw is None or key == "options":
            continue
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # plain text such as RGB, fixed or 512x1024
        try:
            fields[key] = parse(value, source)
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"metadata {prefix + key!r}: {exc}") from exc
    return fields


def find_manifest(model_path: str | Path) -> Path | None:
    """The manifest beside a model file: <stem>.json, .yaml, .yml or .manifest.json, or None."""
    model = Path(model_path)
    for suffix in (".json", ".yaml", ".yml", ".manifest.json"):
        candidate = model.with_name(model.stem + suffix)
        if candidate != model and candidate.is_file():
            return candidate
    return None


def _read_mapping(source: Path) -> dict[str, Any]:
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read manifest: {exc}") from exc
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(source, f"not valid {source.suffix.lstrip('.').upper()}: {exc}") from exc
    except RecursionError:
        # json and yaml parse nesting by recursion: a file nested 100,000 levels deep ends here.
        raise InputError(
            source, "nested too deeply to be a manifest (lists or mappings inside each other)"
        ) from None
    if not isinstance(data, dict):
        raise InputError(source, "a manifest must be a mapping of keys to values")
    return cast(dict[str, Any], data)


def _location(source: Path, data: Mapping[str, Any]) -> tuple[Path | None, str | None]:
    raw_path, url = data.get("path"), data.get("url")
    if raw_path is not None and url is not None:
        raise InputError(source, "give either 'path' or 'url', not both")
    if url is not None:
        if not isinstance(url, str) or "://" not in url:
            raise InputError(source, f"'url' must be an http(s) URL, got {url!r}")
        return None, url
    if raw_path is None:
        raise InputError(source, "the manifest needs 'path' (the model file, relative to it) or 'url'")
    if not isinstance(raw_path, str) or not raw_path:
        raise InputError(source, f"'path' must be a file path, got {raw_path!r}")
    return (source.parent / raw_path).resolve(), None


def _check_scheme(manifest: ModelManifest, source: Path) -> None:
    try:
        manifest.class_scheme()
    except (InputError, SchemeError) as exc:
        raise InputError(source, f"key 'scheme': {exc}") from exc


def _size(value: Any, _source: Path) -> tuple[int, int]:
    if isinstance(value, str) and "x" in value.lower():
        value = value.lower().split("x")
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"expected [height, width] or 'HxW', got {value!r}")
    height, width = (_positive_int(v, None) for v in value)
    problem = budget_problem(width, height, "input_size")
    if problem is not None:
        raise ValueError(problem)
    return height, width


def _positive_int(value: Any, _source: Path | None) -> int:
    number = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def _triple(value: Any, _source: Path) -> tuple[float, float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"expected three numbers (one per channel), got {value!r}")
    a, b, c = (_number(v, None) for v in value)
    return a, b, c


def _std(value: Any, source: Path) -> tuple[float, float, float]:
    std = _triple(value, source)
    if any(not v > 0 for v in std):
        raise ValueError(f"std must be positive (it divides every pixel), got {value!r}")
    return std


def _number(value: Any, _source: Path | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(value):
        # JSON's NaN/Infinity and YAML's .nan/.inf parse as floats: they would turn every input into NaN.
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _scale(value: Any, source: Path) -> float:
    # "1/255" is how people write it; accept that one fraction form.
    if isinstance(value, str) and "/" in value:
        num, _, den = value.partition("/")
        number = float(num) / float(den) if float(den) != 0 else 0.0
    else:
        number = _number(value, source)
    if not 0 < number < math.inf:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[Any, Path], Any]:
    def parse(value: Any, _source: Path) -> str:
        text = value.upper() if upper and isinstance(value, str) else value
        if text not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {value!r}")
        return cast(str, text)

    return parse


def _names(value: Any, _source: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a non-empty list of class names")
    if len(value) > 255:
        raise ValueError(f"at most 255 classes are supported, got {len(value)}")
    return tuple(value)


def _scheme(value: Any, source: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected {', '.join(BUILTIN_SCHEMES)} or a scheme JSON path, got {value!r}")
    if value.lower() in BUILTIN_SCHEMES:
        return value.lower()
    return str((source.parent / value).resolve())


def _options(value: Any, _source: Path) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of backend-specific settings")
    return dict(value)


_PARSERS: dict[str, Callable[[Any, Path], Any]] = {
    "input_size": _size,
    "resize": _choice(_RESIZE),
    "size_multiple": _positive_int,
    "mean": _triple,
    "std": _std,
    "scale": _scale,
    "channel_order": _choice(_ORDERS, upper=True),
    "layout": _choice(_LAYOUTS, upper=True),
    "output": _choice(_OUTPUTS),
    "class_names": _names,
    "scheme": _scheme,
    "options": _options,
}
