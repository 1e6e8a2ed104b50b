"""Hugging Face backend: a LOCAL transformers checkpoint directory as a Segmenter.

A checkpoint directory holds config.json (architecture, id2label), model.safetensors (or shards with an
index) and preprocessor_config.json (resize, rescale, normalization). Two model families are opened:

* AutoModelForSemanticSegmentation (SegFormer B0-B5, MobileViT/MobileViTV2, DPT, BEiT, UperNet, ...):
  logits (K, h, w) are upsampled bilinearly to the image size and argmax'ed (postprocess.upsample_argmax,
  what HF's post_process_semantic_segmentation does).
* Mask2Former (AutoModelForUniversalSegmentation): the per-class scores are built from the mask and class
  queries exactly as Mask2FormerImageProcessor.post_process_semantic_segmentation builds them, then the same
  upsample + argmax.

Nothing ever reaches the hub: local_files_only=True, trust_remote_code=False, use_safetensors=True. Pickle
weights (pytorch_model.bin) are refused unless the manifest opts in. Preprocessing is done here with
numpy/PIL, equal to the PIL image processor's pixel_values (tests/test_hf_backend.py checks it), except
that do_center_crop (MobileViT) is ignored: labels must cover the whole image, not its centre.

Manifest `options` (kind: hf, path: the checkpoint directory)::

    options:
      allow_pickle: true        # accept pytorch_model.bin (pickle runs code when loaded: trusted files only)
      inference: sliding        # "resize" (default): the whole image resized to the model's input size;
      crop: [1024, 1024]        # "sliding": mmseg-style windows over the image at its own resolution,
      stride: [768, 768]        #   logits upsampled per window, summed, divided by the window count

The public Cityscapes SegFormer checkpoints were trained on 1024x1024 crops; evaluate them at 1024x2048
with `inference: sliding` (crop 1024x1024, stride 768x768, mmseg's setting) or with resize to 1024x2048.

Threads: torch.set_num_threads is process-wide and left to the application; predict() runs under
torch.inference_mode and is safe from several threads (the model is only read).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.core.domain.errors import ModelLoadError, PredictError
from app.core.io.budget import budget_problem
from app.core.io.paths import missing_framework_hint
from app.inference import sanity
from app.inference.backends.onnx_backend import file_sha256
from app.inference.base import InputSpec, ModelInfo, Prediction, Timings
from app.inference.manifest import ModelManifest
from app.inference.postprocess import upsample_argmax
from app.inference.preprocess import check_image, scheme_key

INSTALL_HINT = "pip install 'seglens[hf]'"
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
# Universal-segmentation architectures whose semantic scores we can build; the 384x384 mask size is what
# Mask2FormerImageProcessor.post_process_semantic_segmentation hard-codes ("for all models").
_UNIVERSAL = {"mask2former": (384, 384)}
_UNSUPPORTED = {
    "oneformer": "OneFormer needs text task inputs from its tokenizer; not supported yet",
    "maskformer": "MaskFormer is not supported yet (Mask2Former is)",
}
_OPTION_KEYS = {"allow_pickle", "inference", "crop", "stride"}


@dataclass(frozen=True)
class Preprocessing:
    """What preprocessor_config.json says, in the PIL image processor's order: resize (uint8, PIL), rescale
    (float64 product cast to float32), normalize (float32), optionally flip RGB -> BGR."""

    height: int | None = None  # fixed size (size: {height, width})
    width: int | None = None
    shortest_edge: int | None = None  # aspect-keeping size rules
    longest_edge: int | None = None
    size_divisor: int = 0  # Mask2Former: round the resized size up to a multiple
    do_resize: bool = True
    resample: int = int(Image.Resampling.BILINEAR)
    scale: float | None = 1.0 / 255.0  # None: do_rescale false
    mean: tuple[float, float, float] | None = (0.485, 0.456, 0.406)  # None: do_normalize false
    std: tuple[float, float, float] | None = (0.229, 0.224, 0.225)
    bgr: bool = False  # do_flip_channel_order (MobileViT)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the model is fed for an image of this size."""
        if not self.do_resize:
            return height, width
        if self.height is not None and self.width is not None:
            size = (self.height, self.width)
        elif self.shortest_edge is not None:
            size = _aspect_size(height, width, self.shortest_edge, self.longest_edge)
        else:
            return height, width
        if self.size_divisor > 0:
            d = self.size_divisor
            size = (-(-size[0] // d) * d, -(-size[1] // d) * d)
        return size

    def lut(self) -> np.ndarray:
        """(3, 256) float32, RGB channel c, value v -> the processor's float for it, in its float order."""
        values = np.arange(256, dtype=np.float64)
        table = np.repeat(values[None, :], 3, axis=0)
        if self.scale is not None:
            table = table * self.scale  # float64 product, then one cast (transformers' rescale)
        table = table.astype(np.float32)
        if self.mean is not None and self.std is not None:
            mean = np.asarray(self.mean, dtype=np.float32)[:, None]
            std = np.asarray(self.std, dtype=np.float32)[:, None]
            table = (table - mean) / std
        return table.astype(np.float32)

    def tensor(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """(1, 3, H, W) float32 pixel_values for an RGB uint8 image, resized to `size` (default: the
        processor's rule; pass the image's own size to skip resizing)."""
        target = size if size is not None else self.input_size(image.shape[0], image.shape[1])
        resized = resize_rgb(image, target, self.resample)
        lut = self.lut()
        order = (2, 1, 0) if self.bgr else (0, 1, 2)
        out = np.empty((1, 3, target[0], target[1]), dtype=np.float32)
        for c, src in enumerate(order):
            np.take(lut[src], resized[:, :, src], out=out[0, c])
        return out


def _aspect_size(height: int, width: int, short: int, longest: int | None) -> tuple[int, int]:
    """transformers' get_size_with_aspect_ratio / get_resize_output_image_size, integer for integer."""
    raw: float | None = None
    if longest is not None:
        lo, hi = float(min(height, width)), float(max(height, width))
        if hi / lo * short > longest:
            raw = longest * lo / hi
            short = round(raw)
    if (height <= width and height == short) or (width <= height and width == short):
        return height, width
    if width < height:
        return (int((raw if raw is not None else short) * height / width), short)
    return (short, int((raw if raw is not None else short) * width / height))


def resize_rgb(image: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """Resize RGB uint8 to (height, width) with PIL on uint8, as the PIL image processors do."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize((width, height), Image.Resampling(resample)))


def read_preprocessing(path: Path) -> Preprocessing:
    """Parse preprocessor_config.json. Raises ModelLoadError naming the file on a value we cannot use."""
    data = _read_json(path)
    size = data.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        size = {"height": size, "width": size}
    if not isinstance(size, dict):
        raise ModelLoadError(path, f"'size' must be a mapping such as {{height, width}}, got {size!r}")
    try:
        base = Preprocessing(
            height=_opt_int(size.get("height")),
            width=_opt_int(size.get("width")),
            shortest_edge=_opt_int(size.get("shortest_edge")),
            longest_edge=_opt_int(size.get("longest_edge") or data.get("max_size")),
            size_divisor=_opt_int(data.get("size_divisor")) or 0,
            do_resize=bool(data.get("do_resize", True)),
            resample=int(data.get("resample", Image.Resampling.BILINEAR)),
            scale=float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else None,
            bgr=bool(data.get("do_flip_channel_order", False)),
        )
        if not data.get("do_normalize", False):
            return replace(base, mean=None, std=None)
        return replace(base, mean=_channels(data.get("image_mean")), std=_channels(data.get("image_std")))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(path, f"unusable preprocessing setting: {exc}") from exc


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _channels(value: Any) -> tuple[float, float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"expected three per-channel numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(path, "missing (a transformers checkpoint directory needs it)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(path, f"cannot read: {exc}") from exc
    except RecursionError:
        raise ModelLoadError(path, "nested too deeply to be a configuration file") from None
    if not isinstance(data, dict):
        raise ModelLoadError(path, "expected a JSON object")
    return data


# --- checkpoint files ------------------------------------------------------------------------------------


def weight_files(directory: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """The checkpoint's weight files (plus shard index) and whether they are safetensors. Pickle-only
    checkpoints are refused unless `allow_pickle`."""
    safe = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.safetensors.index.json"))
    if any(p.suffix == ".safetensors" for p in safe):
        for path in safe:
            if path.suffix == ".safetensors":
                check_safetensors_header(path)
        return safe, True
    pickled = sorted(directory.glob("*.bin")) + sorted(directory.glob("*.bin.index.json"))
    if not pickled:
        raise ModelLoadError(directory, "no model weights (model.safetensors) in this checkpoint directory")
    if not allow_pickle:
        raise ModelLoadError(
            directory,
            f"only pickle weights ({pickled[0].name}) found; loading pickle can run code. Convert the "
            "checkpoint to model.safetensors, or, for a trusted file, opt in with a manifest "
            "(kind: hf, path: <this directory>, options: {allow_pickle: true})",
        )
    return pickled, False


_MAX_SAFETENSORS_HEADER = 100_000_000  # the format's own limit for the JSON header


def check_safetensors_header(path: Path) -> None:
    """ModelLoadError naming `path` unless it starts like a safetensors file: an 8-byte little-endian
    header length, then that many bytes of a JSON object, inside the file. A truncated or damaged file is
    refused in microseconds instead of after importing torch."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= length <= min(_MAX_SAFETENSORS_HEADER, size - 8):
                raise ModelLoadError(
                    path, "damaged or truncated safetensors file (header length out of range)"
                )
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelLoadError(path, "damaged or truncated safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ModelLoadError(path, "damaged safetensors file (the header is not a JSON object)")


def checkpoint_digest(directory: Path, weights: Sequence[Path]) -> str:
    """sha256 over config.json and the weight files (name and content digest of each, in name order)."""
    digest = hashlib.sha256()
    for path in sorted([directory / CONFIG, *weights], key=lambda p: p.name):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def class_names_from_config(config: Mapping[str, Any], path: Path) -> tuple[str, ...]:
    """config.json's id2label as a tuple indexed by class id; ids must be 0..K-1."""
    raw = config.get("id2label")
    if not isinstance(raw, dict) or not raw:
        raise ModelLoadError(path, "config.json has no id2label: give class_names or scheme in a manifest")
    try:
        by_id = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(path, f"id2label keys must be class ids: {exc}") from exc
    if sorted(by_id) != list(range(len(by_id))):
        raise ModelLoadError(path, f"id2label ids must be 0..{len(by_id) - 1}, got {sorted(by_id)[:10]}")
    if len(by_id) > 255:
        raise ModelLoadError(path, f"{len(by_id)} classes; at most 255 are supported")
    return tuple(by_id[i] for i in range(len(by_id)))


def import_torch_transformers(path: Path | None) -> tuple[Any, Any]:
    """(torch, transformers), or ModelLoadError telling how to install the extra."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModelLoadError(
            path,
            missing_framework_hint(
                "Hugging Face checkpoints", "hf", f"torch and transformers ({exc.name} missing)"
            ),
        ) from exc
    return torch, transformers


@dataclass(frozen=True)
class Sliding:
    """mmseg slide_inference settings: window (crop) and step (stride), (height, width) each."""

    crop: tuple[int, int]
    stride: tuple[int, int]

    def windows(self, height: int, width: int) -> Iterator[tuple[int, int, int, int]]:
        """(y1, y2, x1, x2) windows covering the image exactly as mmseg places them."""
        (ch, cw), (sh, sw) = self.crop, self.stride
        rows = max(height - ch + sh - 1, 0) // sh + 1
        cols = max(width - cw + sw - 1, 0) // sw + 1
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * sh + ch, height), min(c * sw + cw, width)
                yield max(y2 - ch, 0), y2, max(x2 - cw, 0), x2


def _pair(value: Any, key: str, source: Path) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ModelLoadError(source, f"option {key!r} must be [height, width] of positive integers")
    return int(value[0]), int(value[1])


def parse_options(options: Mapping[str, Any], source: Path) -> tuple[bool, Sliding | None]:
    """(allow_pickle, sliding settings or None) from a manifest's options."""
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise ModelLoadError(source, f"unknown hf option(s) {unknown}; known: {sorted(_OPTION_KEYS)}")
    allow = options.get("allow_pickle", False)
    if not isinstance(allow, bool):
        raise ModelLoadError(source, f"option 'allow_pickle' must be true or false, got {allow!r}")
    mode = options.get("inference", "resize")
    if mode not in ("resize", "sliding"):
        raise ModelLoadError(source, f"option 'inference' must be 'resize' or 'sliding', got {mode!r}")
    if mode == "resize":
        if "crop" in options or "stride" in options:
            raise ModelLoadError(source, "options 'crop'/'stride' need inference: sliding")
        return allow, None
    crop = _pair(options.get("crop", [1024, 1024]), "crop", source)
    stride = _pair(options.get("stride", [768, 768]), "stride", source)
    if stride[0] > crop[0] or stride[1] > crop[1]:
        raise ModelLoadError(source, f"stride {list(stride)} larger than crop {list(crop)} leaves gaps")
    return allow, Sliding(crop, stride)


# --- the segmenter ---------------------------------------------------------------------------------------


class HfSegmenter:
    """A Segmenter over a transformers model in eval mode on CPU. predict() may run in several threads."""

    def __init__(self, directory: str | Path, manifest: ModelManifest | None = None) -> None:
        self._dir = Path(directory)
        if not (self._dir / CONFIG).is_file():
            raise ModelLoadError(self._dir, f"not a transformers checkpoint directory (no {CONFIG})")
        config = _read_json(self._dir / CONFIG)
        self._type = str(config.get("model_type", ""))
        if self._type in _UNSUPPORTED:
            raise ModelLoadError(self._dir, _UNSUPPORTED[self._type])
        options = manifest.options if manifest is not None else {}
        source = manifest.source if manifest is not None and manifest.source is not None else self._dir
        allow_pickle, self._sliding = parse_options(options, source)
        weights, safe = weight_files(self._dir, allow_pickle)
        self._pre = _apply_manifest(read_preprocessing(self._dir / PREPROCESSOR), manifest)
        if self._pre.height is not None and self._pre.width is not None:  # before any weight is read
            problem = budget_problem(self._pre.width, self._pre.height, "the model's declared input")
            if problem is not None:
                raise ModelLoadError(self._dir / PREPROCESSOR, problem)
        names = class_names_from_config(config, self._dir / CONFIG)
        names, scheme = _manifest_classes(names, manifest, self._dir)
        self._torch, self._model = self._load(safe)
        name = manifest.name if manifest is not None else self._dir.name
        self._info = ModelInfo(
            name=name,
            backend="hf",
            source=str(self._dir),
            class_names=names,
            scheme=scheme if scheme is not None else scheme_key(names, name),
            input=_input_spec(self._pre),
            output="logits",
            file_size=sum(p.stat().st_size for p in weights),
            digest=checkpoint_digest(self._dir, weights),
            extra=self._extra(config, safe),
        )

    @property
    def info(self) -> ModelInfo:
        """Name, classes, input spec, digest etc. of the loaded model."""
        return self._info

    @property
    def preprocessing(self) -> Preprocessing:
        """The preprocessing read from preprocessor_config.json (with manifest overrides)."""
        return self._pre

    @property
    def torch_model(self) -> Any:
        """The underlying transformers model (eval mode), e.g. for export."""
        if self._model is None:
            raise PredictError(f"{self._dir}: the model is closed")
        return self._model

    @property
    def universal(self) -> bool:
        """True for Mask2Former-style models (class + mask queries instead of logits)."""
        return self._type in _UNIVERSAL

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) float32 pixel_values for an RGB uint8 image (a new array)."""
        check_image(image)
        return self._pre.tensor(image)

    def scores(self, pixel_values: np.ndarray) -> np.ndarray:
        """(K, h, w) float32 class scores for prepared pixel_values: semantic logits, or Mask2Former's
        query-combined class probabilities (at 384x384, as its image processor makes them)."""
        return np.ascontiguousarray(self._scores(self._torch.from_numpy(pixel_values))[0].numpy())

    def predict(self, image: np.ndarray) -> Prediction:
        """Labels (HxW uint8, model scheme) for an HxWx3 RGB uint8 image, at the image's resolution."""
        check_image(image)
        size = (image.shape[0], image.shape[1])
        start = time.perf_counter()
        if self._sliding is not None:
            pixels = self._pre.tensor(image, size)  # windows are cut at the image's own resolution
            prepared = time.perf_counter()
            total = self._slide(pixels)
            ran = time.perf_counter()
            sanity.check_scores(total.detach().cpu().numpy(), str(self._dir))
            labels = total.argmax(dim=0).to(self._torch.uint8).numpy()
        else:
            pixels = self._pre.tensor(image)
            prepared = time.perf_counter()
            logits = self.scores(pixels)
            ran = time.perf_counter()
            sanity.check_scores(logits, str(self._dir))
            labels = upsample_argmax(logits, size)
        done = time.perf_counter()
        timings = Timings((prepared - start) * 1e3, (ran - prepared) * 1e3, (done - ran) * 1e3)
        return Prediction(labels=labels, timings=timings)

    def close(self) -> None:
        """Drop the model (frees its memory). Idempotent."""
        self._model = None

    def _load(self, safe: bool) -> tuple[Any, Any]:
        torch, transformers = import_torch_transformers(self._dir)
        auto = (
            transformers.AutoModelForUniversalSegmentation
            if self._type in _UNIVERSAL
            else transformers.AutoModelForSemanticSegmentation
        )
        try:
            model = auto.from_pretrained(
                str(self._dir),
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=safe,
                dtype=torch.float32,  # half-precision checkpoints: CPU kernels want float32
            )
        except ImportError as exc:  # e.g. Mask2Former builds its training loss, which needs scipy
            raise ModelLoadError(
                self._dir, f"transformers needs more packages for this model: {exc}"
            ) from exc
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(self._dir, f"transformers cannot load this checkpoint: {reason}") from exc
        model.eval()
        return torch, model

    def _scores(self, pixel_values: Any) -> Any:
        """(1, K, h, w) torch scores for a (1, 3, H, W) torch tensor."""
        model = self._model
        if model is None:
            raise PredictError(f"{self._dir}: the model is closed")
        torch = self._torch
        try:
            with torch.inference_mode():
                outputs = model(pixel_values=pixel_values)
                if self._type not in _UNIVERSAL:
                    return outputs.logits
                return _universal_scores(torch, outputs, _UNIVERSAL[self._type])
        except RuntimeError as exc:
            raise PredictError(f"{self._dir}: inference failed: {exc}") from exc

    def _slide(self, pixels: np.ndarray) -> Any:
        """(K, H, W) torch: mmseg slide_inference: per-window logits upsampled to the window, summed,
        divided by how many windows cover each pixel."""
        assert self._sliding is not None
        torch = self._torch
        functional = torch.nn.functional
        height, width = pixels.shape[2], pixels.shape[3]
        total = torch.zeros((len(self._info.class_names), height, width), dtype=torch.float32)
        count = torch.zeros((1, height, width), dtype=torch.float32)
        for y1, y2, x1, x2 in self._sliding.windows(height, width):
            window = torch.from_numpy(np.ascontiguousarray(pixels[:, :, y1:y2, x1:x2]))
            with torch.inference_mode():
                scores = functional.interpolate(
                    self._scores(window), size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False
                )
                total[:, y1:y2, x1:x2] += scores[0]
                count[:, y1:y2, x1:x2] += 1
        return total / count

    def _extra(self, config: Mapping[str, Any], safe: bool) -> dict[str, str]:
        architectures = config.get("architectures") or []
        sliding = self._sliding
        return {
            "model_type": self._type,
            "architecture": str(architectures[0]) if architectures else "",
            "weights": "safetensors" if safe else "pickle (allowed by manifest)",
            "inference": (
                f"sliding crop {list(sliding.crop)} stride {list(sliding.stride)}" if sliding else "resize"
            ),
            "transformers": _version("transformers"),
        }


def _universal_scores(torch: Any, outputs: Any, mask_size: tuple[int, int]) -> Any:
    """(1, K, h, w) semantic scores from class and mask queries, the image processor's computation."""
    masks = torch.nn.functional.interpolate(
        outputs.masks_queries_logits, size=mask_size, mode="bilinear", align_corners=False
    )
    classes = outputs.class_queries_logits.softmax(dim=-1)[..., :-1]  # drop the "no object" class
    return torch.einsum("bqc, bqhw -> bchw", classes, masks.sigmoid())


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def _apply_manifest(pre: Preprocessing, manifest: ModelManifest | None) -> Preprocessing:
    """A manifest's input_size / resize / mean / std / scale / channel_order win over the file."""
    if manifest is None:
        return pre
    if manifest.input_size is not None:
        pre = replace(pre, height=manifest.input_size[0], width=manifest.input_size[1], do_resize=True)
    if manifest.resize == "any":
        pre = replace(pre, do_resize=False)
    if manifest.mean is not None:
        pre = replace(pre, mean=manifest.mean, std=manifest.std or pre.std or (1.0, 1.0, 1.0))
    if manifest.std is not None:
        pre = replace(pre, std=manifest.std, mean=pre.mean or (0.0, 0.0, 0.0))
    if manifest.scale is not None:
        pre = replace(pre, scale=manifest.scale)
    if manifest.channel_order is not None:
        pre = replace(pre, bgr=manifest.channel_order == "BGR")
    return pre


def _manifest_classes(
    names: tuple[str, ...], manifest: ModelManifest | None, directory: Path
) -> tuple[tuple[str, ...], str | None]:
    """The manifest's class_names or scheme (same count as the model's) win over id2label."""
    if manifest is None:
        return names, None
    given: tuple[str, ...] | None = manifest.class_names
    scheme = None
    chosen = manifest.class_scheme()
    if chosen is not None:
        given, scheme = chosen.names, chosen.key
    if given is None:
        return names, None
    if len(given) != len(names):
        raise ModelLoadError(
            manifest.source or directory,
            f"the model has {len(names)} classes (config.json id2label) but the manifest names {len(given)}",
        )
    return given, scheme


def _input_spec(pre: Preprocessing) -> InputSpec:
    fixed = pre.do_resize and pre.height is not None and pre.width is not None
    mean = pre.mean if pre.mean is not None else (0.0, 0.0, 0.0)
    std = pre.std if pre.std is not None else (1.0, 1.0, 1.0)
    if pre.bgr:  # InputSpec's mean/std are in the model's channel order
        mean, std = (mean[2], mean[1], mean[0]), (std[2], std[1], std[0])
    return InputSpec(
        height=pre.height if fixed else None,
        width=pre.width if fixed else None,
        channel_order="BGR" if pre.bgr else "RGB",
        mean=mean,
        std=std,
        scale=pre.scale if pre.scale is not None else 1.0,
        resize="fixed" if fixed else "any",
    )


def load_hf(path: str | Path, manifest: ModelManifest | None = None) -> HfSegmenter:
    """Registry entry point: open a local transformers checkpoint directory."""
    return HfSegmenter(path, manifest)
