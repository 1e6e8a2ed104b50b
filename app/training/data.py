"""Training and validation samples: Cityscapes-layout labelIds mapped to the training scheme.

Ground truth stays what the app reads everywhere (labelIds, validated by Dataset.load, which refuses ids
outside 0..33 and trainId-looking maps). For training, labelIds become the chosen scheme through the
evaluation scheme's own table (EVAL_TRAINIDS / EVAL_CATEGORIES .id_to_class()), so a pixel is trained on
exactly when it is evaluated; everything else is 255, the loss's ignore_index.

Training samples are decoded once and kept at the training size (image bilinear, label nearest, both with
PIL) while the whole split fits in CACHE_LIMIT_BYTES: a few hundred 128x256 samples are a few tens of MB,
and decoding PNGs every epoch would cost more than the model step on small inputs. Larger splits are
decoded on the fly by the loader threads. Validation samples stay at full resolution: the validation mIoU is
measured at ground-truth resolution, as the app measures it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.labels import CATEGORIES, TRAINIDS, ClassScheme, EvalScheme, eval_scheme_by_key
from app.core.io.datasets import Dataset, SampleRef, open_dataset
from app.training.augment import AugmentConfig, augment

SCHEMES: dict[str, ClassScheme] = {"categories": CATEGORIES, "trainids": TRAINIDS}
CACHE_LIMIT_BYTES = 2 * 1024**3  # keep decoded samples in memory only while the whole split fits in this


def model_scheme(key: str) -> ClassScheme:
    """The class scheme a model trained with `--scheme key` predicts."""
    try:
        return SCHEMES[key]
    except KeyError:
        raise InputError(None, f"unknown training scheme {key!r}; choose {' or '.join(SCHEMES)}") from None


def eval_scheme(key: str) -> EvalScheme:
    """The evaluation scheme whose classes the model learns (and whose mIoU picks the best epoch)."""
    return eval_scheme_by_key(key)


def label_table(key: str) -> np.ndarray:
    """256-entry uint8 table: labelId -> training class, 255 for pixels that are not evaluated."""
    return eval_scheme(key).id_to_class()


def resize_pair(
    image: np.ndarray, label: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to (height, width): image bilinear on uint8 (as the backends do), label nearest."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image, label
    img = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    if label is None:
        return img, None
    lab = np.asarray(Image.fromarray(label).resize((width, height), Image.Resampling.NEAREST))
    return img, lab


def open_labelled(path: str | Path, split: str | None, role: str) -> Dataset:
    """Open a dataset and refuse it when any image lacks its labelIds file (training needs every label)."""
    dataset = open_dataset(path, split)
    missing = [ref for ref in dataset.refs if ref.gt_path is None]
    if missing:
        first = missing[0].image_path
        raise InputError(
            dataset.root,
            f"the {role} data needs labels, but {len(missing)} of {len(dataset.refs)} images have none "
            f"(first: {first.name}); expected gtFine/<split>/<city>/<frame>_gtFine_labelIds.png",
        )
    return dataset


def _load_gt(dataset: Dataset, ref: SampleRef) -> tuple[np.ndarray, np.ndarray]:
    sample = dataset.load(ref)  # raises InputError for unknown ids, bad sizes, unreadable files
    if sample.gt is None:
        raise InputError(ref.image_path, "has no ground-truth labels")
    return sample.image, sample.gt


@dataclass(frozen=True)
class ValItem:
    """One validation image at full resolution with its labelIds ground truth."""

    key: str
    image: np.ndarray
    gt: np.ndarray


def load_validation(dataset: Dataset, limit: int | None = None) -> list[ValItem]:
    """Decode the validation images (at most `limit`)."""
    refs = dataset.refs if limit is None else dataset.refs[:limit]
    items = []
    for ref in refs:
        image, gt = _load_gt(dataset, ref)
        items.append(ValItem(ref.key, image, gt))
    return items


class TrainData:
    """The training split at the training size, decoded on first use, batched with augmentation."""

    def __init__(
        self,
        dataset: Dataset,
        scheme_key: str,
        size: tuple[int, int],
        augment_config: AugmentConfig,
        seed: int,
        workers: int = 2,
    ) -> None:
        if not dataset.refs:
            raise InputError(dataset.root, "the training split holds no images")
        self.dataset = dataset
        self.size = size
        self.augment_config = augment_config
        self.seed = seed
        self.workers = max(1, workers)
        self._table = label_table(scheme_key)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._caching = len(dataset.refs) * size[0] * size[1] * 4 <= CACHE_LIMIT_BYTES
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.dataset.refs)

    def steps_per_epoch(self, batch: int) -> int:
        """Full batches per epoch (the last partial batch is dropped), at least one."""
        return max(1, len(self) // batch)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `index` at the training size: (image uint8 HxWx3, label uint8 HxW in the scheme)."""
        with self._lock:
            cached = self._cache.get(index)
        if cached is not None:
            return cached
        image, gt = _load_gt(self.dataset, self.dataset.refs[index])
        img, lab = resize_pair(image, self._table[gt], self.size)
        assert lab is not None
        if self._caching:
            with self._lock:
                self._cache[index] = (img, lab)
        return img, lab

    def _augmented(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.sample(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        return augment(image, label, rng, self.augment_config)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of `epoch` (a permutation depending only on seed and epoch)."""
        return np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(self))

    def batches(self, epoch: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(images NxHxWx3 uint8, labels NxHxW uint8) batches of `epoch`, prepared by worker threads one
        batch ahead of the consumer."""
        order = self.order(epoch)
        steps = self.steps_per_epoch(batch)
        chunks = [order[i * batch : (i + 1) * batch].tolist() for i in range(steps)]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="seglens-data") as pool:

            def submit(chunk: Sequence[int]) -> list[Future[tuple[np.ndarray, np.ndarray]]]:
                return [pool.submit(self._augmented, epoch, int(i)) for i in chunk]

            pending = submit(chunks[0])
            for k in range(steps):
                ahead = submit(chunks[k + 1]) if k + 1 < steps else []
                pairs = [f.result() for f in pending]
                yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
                pending = ahead
