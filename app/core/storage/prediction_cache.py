"""An on-disk cache of model predictions, so a re-run (a gate with new thresholds, a re-opened project) does
not predict again.

Key: (model digest, image digest, preprocessing). The image digest is the sha256 of the *decoded* pixels
(plus their shape), not of the file and not path+size+mtime:

* decoding happens anyway (ground truth, display), and hashing 1024x2048x3 bytes costs ~3 ms here, against
  ~40 ms to decode the PNG and 0.2-1.3 s to predict: cheap enough, with no extra file read;
* it names exactly what the model sees, so a copied, renamed or re-encoded-but-identical image hits, and a
  rewritten file never returns a stale mask (path+size+mtime can, when a tool preserves all three).

Each entry is the label map compressed with zlib at level 1 (label maps are long runs: ~20-40x) behind a
small header holding its shape and the original timings, so a cached prediction reports the latency that
was measured, not the cache's read time. (Format 1 stored PNGs: 3x slower to write, 10-17 ms per
2048x1024 mask, on the evaluation's critical CPU budget.) Writes are atomic; the folder is bounded by
bytes, evicting least-recently-used entries (a hit refreshes the file's mtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.io.fileutil import atomic_write_bytes, clean_stale_temps

DEFAULT_MAX_BYTES = 2 * 1024**3
"""2 GiB: ~10,000 Cityscapes-size masks (~100-200 KB each)."""

_SUFFIX = ".labels"
_MAGIC = b"SLP2"
_HEADER = struct.Struct("<4sII3d")  # magic, height, width, preprocess/inference/postprocess ms
_FORMAT_VERSION = "2"  # part of every key: a change of the stored format never reads old entries


def image_digest(image: np.ndarray) -> str:
    """sha256 (hex) of an image's decoded pixels, shape and dtype."""
    data = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{data.shape}|{data.dtype.str}|".encode())
    digest.update(data.tobytes() if not data.flags.c_contiguous else data.data)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """What a prediction depends on. `preprocessing` is any string that changes when the model's input
    handling does (input size, normalization, output kind, class list: see CachedPredictor)."""

    model_digest: str
    image_digest: str
    preprocessing: str

    def filename(self) -> str:
        text = "\n".join((_FORMAT_VERSION, self.model_digest, self.image_digest, self.preprocessing))
        name = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return f"{name[:2]}/{name}{_SUFFIX}"  # 256 subfolders keep directory listings short


@dataclass(frozen=True)
class CachedMask:
    """A stored prediction: labels in the model's own scheme and the stage timings (ms) measured then."""

    labels: np.ndarray
    timings: tuple[float, float, float]


class PredictionCache:
    """Predictions on disk under `root`, at most ~`max_bytes`; safe to share between worker threads."""

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        clean_stale_temps(self.root)  # writes of a process killed with kill -9 (older than a minute)
        # Measured once; then kept up to date by put/evict, so a put never has to list the folder.
        self._size = sum(size for _, size, _ in self._entries())

    @property
    def size_bytes(self) -> int:
        """Bytes the stored entries take (as this process knows it)."""
        with self._lock:
            return self._size

    def path_for(self, key: CacheKey) -> Path:
        """Where the entry of `key` lives (whether or not it exists)."""
        return self.root / key.filename()

    def get(self, key: CacheKey) -> CachedMask | None:
        """The stored prediction, or None. A corrupt entry is deleted and counts as a miss."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            entry = _decode(data)
        except (ValueError, zlib.error, struct.error):
            self._remove(path)
            return None
        # Refreshing the mtime is what makes eviction least-recently-*used*, not least-recently-written.
        with contextlib.suppress(OSError):
            os.utime(path)
        return entry

    def put(self, key: CacheKey, labels: np.ndarray, timings: tuple[float, float, float]) -> None:
        """Store a prediction (HxW uint8) atomically, then evict old entries beyond the bound."""
        if labels.ndim != 2 or labels.dtype != np.uint8:
            raise ValueError(f"labels must be HxW uint8, got {labels.dtype} {labels.shape}")
        data = _encode(labels, timings)
        path = self.path_for(key)
        try:
            old = path.stat().st_size
        except OSError:
            old = 0
        atomic_write_bytes(path, data, durable=False)  # a cache: a lost or torn entry is only a miss
        with self._lock:
            self._size += len(data) - old
            over = self._size > self.max_bytes
        if over:
            self._evict(keep=path)

    def clear(self) -> None:
        """Delete every entry."""
        for path, _, _ in self._entries():
            self._remove(path)

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, float]]:
        found: list[tuple[Path, int, float]] = []
        for path in self.root.glob(f"*/*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                found.append((path, stat.st_size, stat.st_mtime))
        return found

    def _evict(self, keep: Path) -> None:
        # Oldest first, down to 90% of the bound so that the next few puts do not each list the folder.
        entries = sorted(self._entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        target = int(self.max_bytes * 0.9)
        for path, size, _ in entries:
            if total <= target:
                break
            if path == keep:
                continue
            self._remove(path)
            total -= size
        with self._lock:
            self._size = total

    def _remove(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            return  # another thread or process removed it first
        with self._lock:
            self._size = max(0, self._size - size)


def _encode(labels: np.ndarray, timings: tuple[float, float, float]) -> bytes:
    height, width = labels.shape
    header = _HEADER.pack(_MAGIC, height, width, *(float(t) for t in timings))
    return header + zlib.compress(np.ascontiguousarray(labels).tobytes(), 1)


def _decode(data: bytes) -> CachedMask:
    magic, height, width, pre, inference, post = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not a prediction cache entry")
    raw = zlib.decompress(data[_HEADER.size :])
    if len(raw) != height * width:
        raise ValueError(f"cache entry holds {len(raw)} bytes, its header says {height}x{width}")
    labels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width).copy()
    return CachedMask(labels, (pre, inference, post))
