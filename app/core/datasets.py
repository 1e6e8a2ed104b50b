"""Datasets: the Cityscapes layout and plain image folders. Listing never decodes a file.

STUB: signatures fixed; a helper implements them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.labels import LABELIDS, ClassScheme


@dataclass(frozen=True)
class SampleRef:
    """One image of a dataset and where its labels are; cheap to list."""

    key: str  # stable and unique in the dataset, e.g. "val/frankfurt/frankfurt_000000_000294"
    image_path: Path
    gt_path: Path | None  # labelIds (Cityscapes) or mask in the dataset's gt_scheme
    instance_path: Path | None
    split: str | None
    city: str | None
    frame: str  # e.g. "frankfurt_000000_000294" or the image stem


@dataclass(frozen=True)
class Sample:
    ref: SampleRef
    image: np.ndarray  # HxWx3 RGB uint8
    gt: np.ndarray | None  # HxW uint8 in the dataset's gt_scheme
    instances: np.ndarray | None  # HxW int32 instanceIds
    warnings: tuple[str, ...] = ()


class Dataset:
    """A listed dataset. `refs` is the ordered list of samples; `load` decodes one."""

    root: Path
    kind: Literal["cityscapes", "folder"]
    split: str | None
    gt_scheme: ClassScheme
    refs: list[SampleRef]

    def __len__(self) -> int:
        return len(self.refs)

    def splits(self) -> list[str]:
        raise NotImplementedError

    def cities(self) -> list[str]:
        raise NotImplementedError

    def load(self, ref: SampleRef) -> Sample:
        """Decode and validate one sample. Raises InputError naming the bad file."""
        raise NotImplementedError


def open_dataset(path: str | Path, split: str | None = None, gt_scheme: ClassScheme = LABELIDS) -> Dataset:
    """Detect the layout of `path` and list it. Raises InputError when nothing usable is found."""
    raise NotImplementedError
