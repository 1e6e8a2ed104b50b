"""Export of a project's labels as a Cityscapes `gtFine` tree (the implementation of `Project.export_gtfine`).

For every image: labelIds (the edited labels when there are some, else the original), instanceIds copied
unchanged, and the colour image copied, or regenerated from the palette when the labels were edited.
The dataset's own files are never written over.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from app.core.domain.errors import InputError
from app.core.io.datasets import SampleRef
from app.core.io.fileutil import atomic_write_bytes


@dataclass(frozen=True)
class ExportSummary:
    """What `export_gtfine` wrote."""

    images: int
    edited: int
    without_gt: tuple[str, ...]


def export_gtfine(
    out: Path, refs: list[SampleRef], *, palette: np.ndarray, gt_path: Callable[[SampleRef], Path | None]
) -> ExportSummary:
    """The implementation of `Project.export_gtfine` (see there): `gt_path(ref)` is the labels file to
    export for `ref` (edited or original, None when there is none); `palette` colours regenerated
    colour PNGs. Given these rather than the project, so this module does not import project.py."""
    edited_count, missing = 0, []
    for ref in refs:
        source = gt_path(ref)
        if source is None:
            missing.append(ref.key)
            continue
        folder = out / "gtFine" / (ref.split or "all") / (ref.city or "images")
        stem = ref.frame if ref.city is not None else PurePosixPath(ref.key).name
        edited = source != ref.gt_path
        targets: dict[Path, Callable[[], bytes]] = {
            folder / f"{stem}_gtFine_labelIds.png": source.read_bytes,
        }
        if ref.instance_path is not None:
            targets[folder / f"{stem}_gtFine_instanceIds.png"] = Path(ref.instance_path).read_bytes
        color = _original_color(ref)
        if edited or color is None:
            targets[folder / f"{stem}_gtFine_color.png"] = functools.partial(_color_png, source, palette)
        else:
            targets[folder / f"{stem}_gtFine_color.png"] = color.read_bytes
        for target, produce in targets.items():
            if _is_source(target, ref):
                raise InputError(
                    target, "export would overwrite the dataset's own file: choose another folder"
                )
            atomic_write_bytes(target, produce())
        edited_count += edited
    return ExportSummary(len(refs) - len(missing), edited_count, tuple(missing))


def _original_color(ref: SampleRef) -> Path | None:
    if ref.gt_path is None or not ref.gt_path.name.endswith("_labelIds.png"):
        return None
    color = ref.gt_path.with_name(ref.gt_path.name[: -len("_labelIds.png")] + "_color.png")
    return color if color.is_file() else None


def _is_source(target: Path, ref: SampleRef) -> bool:
    sources = [p for p in (ref.gt_path, ref.instance_path, _original_color(ref)) if p is not None]
    return any(target.resolve() == Path(p).resolve() for p in sources)


def _color_png(labels_file: Path, palette: np.ndarray) -> bytes:
    with Image.open(labels_file) as image:
        labels = np.asarray(image)
    buffer = io.BytesIO()
    Image.fromarray(palette[labels]).save(buffer, format="PNG")
    return buffer.getvalue()
