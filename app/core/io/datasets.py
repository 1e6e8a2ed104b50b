"""Datasets: the Cityscapes layout and plain image folders. Listing never decodes a file.

Listing uses `os.scandir` only (one directory read per folder, names matched in memory), so opening a
Cityscapes split of thousands of images costs a few directory reads: no per-file stat, open or decode.
Files are decoded in `Dataset.load`, one sample at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.domain.errors import InputError
from app.core.domain.labels import LABELIDS, TRAINIDS, ClassScheme
from app.core.io.imageio import image_size, read_image, read_instances, read_label
from app.core.storage.prediction_cache import image_digest

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_FOLDERS: tuple[str, ...] = ("masks", "labels", "gt", "annotations")
MASK_SUFFIXES: tuple[str, ...] = ("", "_mask", "_label", "_gt", "_labelIds")
CITYSCAPES_IMAGE_TAG = "_leftImg8bit"
_IMAGE_FOLDER_NAMES = frozenset({"images", "image", "imgs", "img"})
_SPLIT_PREFERENCE: tuple[str, ...] = ("val", "train", "test")


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
    gt_note: str | None = None  # without gt_path: why there are no labels (shown as "skipped: ...")


@dataclass(frozen=True)
class Sample:
    """One decoded sample. `pixels` is None when it was loaded with `image=False`: `image` then decodes
    the file on first use (once), and `size` comes from the image file's header."""

    ref: SampleRef
    pixels: np.ndarray | None  # HxWx3 RGB uint8, or None: not decoded (yet)
    gt: np.ndarray | None  # HxW uint8 in the dataset's gt_scheme
    instances: np.ndarray | None  # HxW int32 instanceIds
    warnings: tuple[str, ...] = ()
    header_size: tuple[int, int] | None = None  # (H, W) from the image header when pixels is None

    def __post_init__(self) -> None:
        if self.pixels is None and self.header_size is None:
            raise ValueError("a Sample without pixels needs its header_size")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image, known without decoding it."""
        if self.pixels is not None:
            return int(self.pixels.shape[0]), int(self.pixels.shape[1])
        assert self.header_size is not None
        return self.header_size

    @property
    def image(self) -> np.ndarray:
        """HxWx3 RGB uint8; decoded here, once, when the sample was loaded without it."""
        if self.pixels is not None:
            return self.pixels
        cached: np.ndarray | None = self.__dict__.get("_image")
        if cached is None:
            # No lock: two threads decoding the same file at once both get the same pixels. (Python
            # 3.11's cached_property would hold one lock for every Sample while a file decodes.)
            cached = read_image(self.ref.image_path)
            if cached.shape[:2] != self.size:
                h, w = self.size
                raise InputError(
                    self.ref.image_path,
                    f"image is {cached.shape[1]}x{cached.shape[0]} but its header said {w}x{h}",
                )
            object.__setattr__(self, "_image", cached)
        return cached

    @property
    def image_digest(self) -> str:
        """sha256 of the decoded pixels (the prediction cache's image key), computed once per sample
        however many models look it up."""
        digest: str | None = self.__dict__.get("_digest")
        if digest is None:
            digest = image_digest(self.image)
            object.__setattr__(self, "_digest", digest)
        return digest


class Dataset:
    """A listed dataset. `refs` is the ordered list of samples; `load` decodes one."""

    root: Path
    kind: Literal["cityscapes", "folder"]
    split: str | None
    gt_scheme: ClassScheme
    refs: list[SampleRef]

    def __init__(
        self,
        root: Path,
        kind: Literal["cityscapes", "folder"],
        split: str | None,
        gt_scheme: ClassScheme,
        refs: list[SampleRef],
        notes: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.kind = kind
        self.split = split
        self.gt_scheme = gt_scheme
        self.refs = refs
        self.notes = notes  # what listing skipped and why (non-regular files, unreadable folders)
        self._by_key: dict[str, SampleRef] | None = None

    def __len__(self) -> int:
        return len(self.refs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, {len(self.refs)} images)"

    def splits(self) -> list[str]:
        """The splits this dataset offers (empty for a plain folder)."""
        return []

    def cities(self) -> list[str]:
        """The cities of the listed samples, in listing order (empty for a plain folder)."""
        return list(dict.fromkeys(ref.city for ref in self.refs if ref.city is not None))

    def with_split(self, split: str | None) -> Dataset:
        """The same dataset listed for another split. A plain folder only has the split None."""
        if split is None or split == self.split:
            return self
        raise InputError(self.root, f"has no split {split!r}: a plain image folder has no splits")

    def num_labelled(self) -> int:
        """How many samples have a ground-truth file."""
        return sum(1 for ref in self.refs if ref.gt_path is not None)

    def describe(self) -> str:
        """One line for the status bar, e.g. 'Image folder, 12 images, 10 with labels'."""
        return f"Image folder, {_count(len(self.refs), 'image')}, {self.num_labelled()} with labels"

    def missing_labels(self) -> dict[str, str]:
        """Key -> why it has no ground truth, for every sample without a label file."""
        return {ref.key: ref.gt_note or "no label file" for ref in self.refs if ref.gt_path is None}

    def find(self, key: str) -> SampleRef | None:
        """The sample with `key`, or None."""
        if self._by_key is None:
            self._by_key = {ref.key: ref for ref in self.refs}
        return self._by_key.get(key)

    def load(self, ref: SampleRef, *, with_instances: bool = True, image: bool = True) -> Sample:
        """Decode and validate one sample. Raises InputError naming the bad file. `with_instances=False`
        skips the instanceIds file (only iIoU needs it: not a display of cached predictions).
        `image=False` does not decode the image (for predictors that need no pixels, e.g. saved
        predictions): its size comes from the file's header, labels are checked against it, and
        `Sample.image` decodes it only if something asks."""
        pixels = read_image(ref.image_path) if image else None
        shape = image_size(ref.image_path) if pixels is None else (int(pixels.shape[0]), int(pixels.shape[1]))
        gt: np.ndarray | None = None
        notes: tuple[str, ...] = ()
        if ref.gt_path is not None:
            gt, notes = read_label(ref.gt_path, self.gt_scheme, shape)
        instances = None
        if ref.instance_path is not None and with_instances:
            instances = read_instances(ref.instance_path, shape)
        return Sample(ref, pixels, gt, instances, notes, None if pixels is not None else shape)


class FolderDataset(Dataset):
    """Images in a folder (plus an optional images/ subfolder), masks matched by name."""

    def __init__(
        self, root: Path, gt_scheme: ClassScheme, refs: list[SampleRef], notes: tuple[str, ...] = ()
    ) -> None:
        super().__init__(root, "folder", None, gt_scheme, refs, notes)


class CityscapesDataset(Dataset):
    """The Cityscapes layout: leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png and gtFine/ beside it."""

    def __init__(
        self,
        root: Path,
        split: str,
        gt_scheme: ClassScheme,
        refs: list[SampleRef],
        available_splits: list[str],
        city: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(root, "cityscapes", split, gt_scheme, refs, notes)
        self._splits = available_splits
        self.city_filter = city

    def splits(self) -> list[str]:
        """Subfolders of leftImg8bit/, sorted."""
        return list(self._splits)

    def with_split(self, split: str | None) -> Dataset:
        """The same Cityscapes root listed for `split` (all its cities)."""
        if split is None or (split == self.split and self.city_filter is None):
            return self
        return _open_cityscapes(self.root, split, self.gt_scheme, None)

    def describe(self) -> str:
        """E.g. 'Cityscapes layout, split val, 3 cities, 500 images, 500 with labels'."""
        cities = _count(len(self.cities()), "city", "cities")
        where = f"city {self.city_filter}" if self.city_filter else cities
        return (
            f"Cityscapes layout, split {self.split}, {where}, {_count(len(self.refs), 'image')}, "
            f"{self.num_labelled()} with labels"
        )


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def open_dataset(path: str | Path, split: str | None = None, gt_scheme: ClassScheme = LABELIDS) -> Dataset:
    """Detect the layout of `path` and list it. Raises InputError when nothing usable is found.

    Cityscapes ground truth is `*_gtFine_labelIds.png` (`*_gtFine_labelTrainIds.png` when `gt_scheme` is
    TRAINIDS). A Cityscapes layout is recognised from the root (the folder holding leftImg8bit/) or from
    leftImg8bit/ itself, a split or a city folder inside it (a city folder lists that city only), or
    gtFine/ and its subfolders. Anything else is read as a plain image folder.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise InputError(folder, "no such folder")
    if not folder.is_dir():
        raise InputError(folder, "not a folder: open the folder that holds the images")
    found = _find_cityscapes_root(folder.absolute())
    if found is not None:
        root, split_hint, city_hint = found
        if split is not None and split_hint is not None and split != split_hint:
            city_hint = None  # an explicit other split wins over the folder the user pointed at
        return _open_cityscapes(root, split or split_hint, gt_scheme, city_hint)
    return _open_folder(folder, gt_scheme)


# ---------------------------------------------------------------------------------------------- Cityscapes


def _find_cityscapes_root(folder: Path) -> tuple[Path, str | None, str | None] | None:
    """(root, split, city) when `folder` is a Cityscapes root or lies inside leftImg8bit/ or gtFine/."""
    if (folder / "leftImg8bit").is_dir():
        return folder, None, None
    inner: list[str] = []
    current = folder
    for _ in range(3):
        if current.name in ("leftImg8bit", "gtFine") and (current.parent / "leftImg8bit").is_dir():
            split = inner[-1] if inner else None
            city = inner[-2] if len(inner) >= 2 else None
            return current.parent, split, city
        inner.append(current.name)
        if current.parent == current:
            break
        current = current.parent
    return None


def _subfolders(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


@dataclass(frozen=True)
class _Listing:
    """One folder read: its regular files, its subfolders and other entries (FIFOs, sockets, devices,
    broken links: never opened), or why it could not be read."""

    files: list[str]
    folders: frozenset[str] = frozenset()
    special: frozenset[str] = frozenset()
    error: str | None = None


def _list(folder: Path) -> _Listing:
    files: list[str] = []
    folders: set[str] = set()
    special: set[str] = set()
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                try:
                    if e.is_file():
                        files.append(e.name)
                    elif e.is_dir():
                        folders.add(e.name)
                    else:
                        special.add(e.name)
                except OSError:
                    special.add(e.name)
    except FileNotFoundError:
        return _Listing([], error=f"no folder {folder}")
    except OSError as exc:
        return _Listing([], error=f"cannot read the folder {folder} ({exc.strerror or exc})")
    return _Listing(files, frozenset(folders), frozenset(special))


def _not_a_file(path: Path, listing: _Listing) -> str | None:
    """Why the label file `path` (an entry of `listing`) cannot be read, or None when it is not there."""
    if path.name in listing.folders:
        return f"{path} is a folder, not a label file"
    if path.name in listing.special:
        return f"{path} is not a regular file (a FIFO, socket, device or broken link): not opened"
    return None


def _special_notes(folder: Path, listing: _Listing) -> list[str]:
    return [
        f"{folder / name}: not a regular file (a FIFO, socket, device or broken link), skipped"
        for name in sorted(listing.special)
        if _split_name(name)[1].lower() in IMAGE_SUFFIXES
    ]


def _gt_folder(root: Path) -> Path:
    # The official zips unpack to one root; some people keep gtFine_trainvaltest/gtFine beside it.
    for candidate in (root / "gtFine", root.parent / "gtFine_trainvaltest" / "gtFine"):
        if candidate.is_dir():
            return candidate
    return root / "gtFine"


def _default_split(splits: list[str]) -> str:
    for name in _SPLIT_PREFERENCE:
        if name in splits:
            return name
    return splits[0]


def _open_cityscapes(root: Path, split: str | None, scheme: ClassScheme, city: str | None) -> Dataset:
    images_root = root / "leftImg8bit"
    splits = _subfolders(images_root)
    if not splits:
        raise InputError(images_root, "no images found: leftImg8bit/ has no split folders (e.g. val/)")
    if split is None:
        split = _default_split(splits)
    elif split not in splits:
        raise InputError(images_root, f"has no split {split!r}; splits: {', '.join(splits)}")
    cities = _subfolders(images_root / split)
    if city is not None:
        cities = [c for c in cities if c == city]
    gt_split = _gt_folder(root) / split
    # GT files are labelIds; cityscapesscripts' createTrainIdLabelImgs writes *_labelTrainIds.png beside
    # them, which is what a dataset opened with the trainIds scheme must read.
    gt_tag = "_gtFine_labelTrainIds.png" if scheme.key == TRAINIDS.key else "_gtFine_labelIds.png"
    refs: list[SampleRef] = []
    notes: list[str] = []
    for name in cities:
        refs.extend(_list_city(images_root / split / name, gt_split / name, split, name, gt_tag, notes))
    if not refs:
        where = images_root / split / city if city else images_root / split
        raise InputError(where, f"no images found (expected <city>/<frame>{CITYSCAPES_IMAGE_TAG}.png files)")
    return CityscapesDataset(root, split, scheme, refs, splits, city, tuple(notes))


def _list_city(
    image_dir: Path, gt_dir: Path, split: str, city: str, gt_tag: str, notes: list[str]
) -> list[SampleRef]:
    gt_listing = _list(gt_dir)
    gt_names = set(gt_listing.files)
    images = _list(image_dir)
    notes.extend(_special_notes(image_dir, images))
    frames: list[tuple[str, str]] = []
    for name in images.files:
        stem, suffix = _split_name(name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.endswith(CITYSCAPES_IMAGE_TAG):
            frames.append((stem[: -len(CITYSCAPES_IMAGE_TAG)], name))
    frames.sort()
    refs = []
    for frame, name in frames:
        label_name = frame + gt_tag
        instance_name = f"{frame}_gtFine_instanceIds.png"
        has_gt = label_name in gt_names
        note = None
        if not has_gt:
            note = gt_listing.error or _not_a_file(gt_dir / label_name, gt_listing)
            note = note or f"no {label_name} in {gt_dir}"
        refs.append(
            SampleRef(
                key=f"{split}/{city}/{frame}",
                image_path=image_dir / name,
                gt_path=gt_dir / label_name if has_gt else None,
                instance_path=gt_dir / instance_name if instance_name in gt_names else None,
                split=split,
                city=city,
                frame=frame,
                gt_note=note,
            )
        )
    return refs


# ------------------------------------------------------------------------------------------- plain folders


def _split_name(name: str) -> tuple[str, str]:
    # Plain string work on scandir names: building a Path per file would cost more than the listing.
    stem, dot, suffix = name.rpartition(".")
    return (stem, dot + suffix) if dot and stem else (name, "")


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    # "img2" before "img10": compare digit runs as numbers.
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def _mask_index(folders: Iterable[Path]) -> tuple[dict[str, Path], dict[str, str]]:
    """(lower-cased mask stem -> path, the first folder winning; lower-cased stem -> why an entry of that
    name is no mask: a folder, a FIFO...). One scandir per folder."""
    index: dict[str, Path] = {}
    unusable: dict[str, str] = {}
    for folder in folders:
        listing = _list(folder)
        for name in sorted(listing.files):
            if _split_name(name)[1].lower() in IMAGE_SUFFIXES:
                index.setdefault(_split_name(name)[0].lower(), folder / name)
        for name in sorted(listing.folders | listing.special):
            stem, suffix = _split_name(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                unusable.setdefault(stem.lower(), _not_a_file(folder / name, listing) or name)
    return index, unusable


def _mask_folders(folder: Path) -> list[Path]:
    parents = [folder]
    if folder.name.lower() in _IMAGE_FOLDER_NAMES:
        parents.append(folder.parent)  # the user opened images/ itself: masks/ is its sibling
    present: set[tuple[Path, str]] = set()
    for parent in parents:
        present.update((parent, n) for n in _subfolders(parent))
    return [parent / name for parent in parents for name in MASK_FOLDERS if (parent, name) in present]


def _match_mask(stem: str, masks: dict[str, Path]) -> Path | None:
    base = stem.lower()
    for suffix in MASK_SUFFIXES:
        found = masks.get(base + suffix.lower())
        if found is not None:
            return found
    return None


def _mask_note(stem: str, folders: list[Path], unusable: dict[str, str]) -> str:
    """Why the image `stem` has no mask."""
    base = stem.lower()
    for suffix in MASK_SUFFIXES:
        reason = unusable.get(base + suffix.lower())
        if reason is not None:
            return reason
    if not folders:
        return "no " + ", ".join(f"{n}/" for n in MASK_FOLDERS) + " folder beside the images"
    names = "|".join(s for s in MASK_SUFFIXES if s)
    return f"no mask named {stem}[{names}].<image suffix> in " + ", ".join(str(f) for f in folders)


def _open_folder(folder: Path, scheme: ClassScheme) -> Dataset:
    image_dirs = [(folder, "")]
    if "images" in _subfolders(folder):
        image_dirs.append((folder / "images", "images/"))
    mask_folders = _mask_folders(folder)
    masks, unusable = _mask_index(mask_folders)
    refs: list[SampleRef] = []
    notes: list[str] = []
    seen: set[str] = set()
    for directory, prefix in image_dirs:
        listing = _list(directory)
        notes.extend(_special_notes(directory, listing))
        names = [n for n in listing.files if _split_name(n)[1].lower() in IMAGE_SUFFIXES]
        for name in sorted(names, key=_natural_key):
            stem = _split_name(name)[0]
            key = prefix + stem
            if key in seen:  # a.png and a.jpg side by side: keep both, the second keyed by full name
                key = prefix + name
            seen.add(key)
            mask = _match_mask(stem, masks)
            note = None if mask is not None else _mask_note(stem, mask_folders, unusable)
            refs.append(SampleRef(key, directory / name, mask, None, None, None, stem, note))
    if not refs:
        raise InputError(
            folder,
            "no images found: expected image files (" + ", ".join(IMAGE_SUFFIXES) + ") in the folder or "
            "its images/ subfolder, or a Cityscapes layout with leftImg8bit/",
        )
    return FolderDataset(folder, scheme, refs, tuple(notes))
