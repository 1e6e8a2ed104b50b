"""What the model backends share between an RGB image and a model input, and in describing a model.

At predict time: the image check, the bilinear uint8 resize, the resize policy (`input_size_for`), the
exact float32 normalization tables and the per-thread input buffers they are written into. At load time:
the input size and resize policy from the graph and the settings, the declared class names, and the
scheme key of a list of class names. The ONNX, Keras, Hugging Face and remote backends all use these, so
one model gets the same input tensor (bit for bit) whichever backend runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from app.core.domain.errors import InputError, ModelLoadError
from app.core.domain.labels import BUILTIN_SCHEMES, normalize_name
from app.core.io.budget import budget_problem
from app.inference.base import InputSpec
from app.inference.manifest import ModelManifest

# --- predict time -----------------------------------------------------------------------------------------


def check_image(image: Any) -> None:
    """Raise InputError unless `image` is a non-empty HxWx3 RGB uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(None, f"expected an HxWx3 RGB uint8 image, got {got}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(None, f"empty image {image.shape}")


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of RGB uint8 to (height, width) with PIL, on uint8 before any float conversion.

    A large image shrunk by a whole factor vertically is resized as two bands on two threads (PIL releases
    the GIL): each band is PIL's resize of a box of source rows, which computes the same filter taps as
    the whole resize when the box starts at a multiple of the factor, so the result is identical."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    source = Image.fromarray(np.ascontiguousarray(image))
    in_h, in_w = image.shape[:2]
    if height < 2 or in_h % height or in_h * in_w < _BANDS_FROM_PIXELS:
        return np.asarray(source.resize((width, height), Image.Resampling.BILINEAR))
    half, factor = height // 2, in_h // height
    lower = _band_pool().submit(_resize_band, source, (width, height - half), (0, half * factor, in_w, in_h))
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:half] = _resize_band(source, (width, half), (0, 0, in_w, half * factor))
    out[half:] = lower.result()
    return out


_BANDS_FROM_PIXELS = 1 << 20  # below this a thread hand-off costs more than half a resize saves
_band_lock = threading.Lock()
_band_executor: ThreadPoolExecutor | None = None


def _band_pool() -> ThreadPoolExecutor:
    global _band_executor
    with _band_lock:
        if _band_executor is None:
            _band_executor = ThreadPoolExecutor(1, thread_name_prefix="seglens-resize")
        return _band_executor


def _resize_band(source: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(source.resize(size, Image.Resampling.BILINEAR, box=box))


def input_size_for(spec: InputSpec, height: int, width: int) -> tuple[int, int]:
    """(height, width) a model with input `spec` is fed for an image of this size, per its resize policy."""
    if spec.resize == "fixed" and spec.height is not None and spec.width is not None:
        return spec.height, spec.width
    if spec.resize == "multiple":
        m = spec.size_multiple
        return max(m, round(height / m) * m), max(m, round(width / m) * m)
    return height, width


def normalization_lut(spec: InputSpec) -> np.ndarray:
    """(3, 256) float32: model channel c, pixel value v -> (v * scale - mean_c) / std_c, rounded once."""
    values = np.arange(256, dtype=np.float64)
    mean, std = np.asarray(spec.mean, dtype=np.float64), np.asarray(spec.std, dtype=np.float64)
    return ((values[None, :] * spec.scale - mean[:, None]) / std[:, None]).astype(np.float32)


def fill_input(buf: np.ndarray, resized: np.ndarray, spec: InputSpec, lut: np.ndarray) -> np.ndarray:
    """Write resized RGB uint8 pixels into the (1, 3, H, W) or (1, H, W, 3) tensor `buf` in the spec's
    channel order: as they are for uint8 inputs, else through `lut` (normalization_lut: exact float32
    (x*scale - mean)/std, no float64 temporaries). Returns `buf`."""
    order = (2, 1, 0) if spec.channel_order == "BGR" else (0, 1, 2)
    for c, src in enumerate(order):
        channel = resized[:, :, src]
        out = buf[0, c] if spec.layout == "NCHW" else buf[0, :, :, c]
        if spec.dtype == "uint8":
            out[...] = channel
        else:
            np.take(lut[c], channel, out=out, mode="clip")
    return buf


class ThreadBuffers:
    """Scratch arrays per thread, one shape and dtype at a time (the common case: one image size)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """This thread's array of `shape` and `dtype` (contents undefined), reused by the next call."""
        buffers = cast(dict[tuple[Any, ...], np.ndarray], self._local.__dict__.setdefault("buffers", {}))
        key = (shape, dtype)
        buf = buffers.get(key)
        if buf is None:
            buffers.clear()  # one image size at a time is the common case; do not hoard memory
            buf = buffers[key] = np.empty(shape, dtype=dtype)
        return buf


# --- load time --------------------------------------------------------------------------------------------


def resolve_input_size(
    path: Path, height: int | None, width: int | None, settings: Mapping[str, Any]
) -> tuple[tuple[int, int] | None, Any]:
    """(input size or None, resize policy) from the graph's input sides (None: dynamic) and the settings'
    input_size/resize. ModelLoadError naming `path` when they disagree, a needed size is missing or the
    size exceeds the pixel budget (app.core.io.budget: checked before any session runs)."""
    size, resize = _resolve_input_size(path, height, width, settings)
    if size is not None:
        problem = budget_problem(size[1], size[0], "the model's declared input")
        if problem is not None:
            raise ModelLoadError(path, problem)
    return size, resize


def _resolve_input_size(
    path: Path, height: int | None, width: int | None, settings: Mapping[str, Any]
) -> tuple[tuple[int, int] | None, Any]:
    declared: tuple[int, int] | None = settings.get("input_size")
    if height is not None and width is not None:
        if declared is not None and declared != (height, width):
            raise ModelLoadError(
                path, f"input_size {declared[0]}x{declared[1]} given but the graph input is {height}x{width}"
            )
        return (height, width), "fixed"
    if height is not None or width is not None:
        # Half-dynamic inputs exist (fixed height, free width); they can only be fed one declared size.
        fixed = declared or None
        if fixed is None or (height or fixed[0]) != fixed[0] or (width or fixed[1]) != fixed[1]:
            raise ModelLoadError(
                path, "the input has one fixed and one dynamic side: give input_size in a manifest"
            )
        return fixed, "fixed"
    resize = settings.get("resize") or ("fixed" if declared is not None else "any")
    if resize == "fixed" and declared is None:
        raise ModelLoadError(path, "resize policy 'fixed' but no input_size for this dynamic-size model")
    return declared, resize


def declared_classes(
    path: Path, settings: Mapping[str, Any], manifest: ModelManifest | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """Class names and scheme key from metadata/manifest, or (None, None) when nothing names them."""
    if "class_names" in settings:
        return tuple(settings["class_names"]), None
    if "scheme" in settings:
        key = settings["scheme"]
        if key in BUILTIN_SCHEMES:
            return BUILTIN_SCHEMES[key].names, key
        where = manifest if manifest is not None and manifest.scheme == key else None
        try:
            scheme = ModelManifest(name="", kind="onnx", scheme=key).class_scheme()
        except InputError as exc:
            source = where.source if where is not None and where.source is not None else path
            raise ModelLoadError(source, f"class scheme: {exc}") from exc
        assert scheme is not None
        return scheme.names, scheme.key
    return None, None


def scheme_key(names: Sequence[str], model_name: str, declared: str | None = None) -> str:
    """The scheme key for class names: a builtin key when the names are a builtin scheme's, else
    "custom:<model>". A declared builtin key is tried first and kept only when the names agree with it."""
    wanted = [normalize_name(n) for n in names]
    candidates = [declared.lower()] if declared and declared.lower() in BUILTIN_SCHEMES else []
    for key in [*candidates, *BUILTIN_SCHEMES]:
        if wanted == [normalize_name(n) for n in BUILTIN_SCHEMES[key].names]:
            return key
    return f"custom:{model_name}"
