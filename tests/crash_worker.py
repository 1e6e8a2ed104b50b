"""Edits labels and autosaves them until killed; tests/test_project_crash.py SIGKILLs it at random moments.

    python tests/crash_worker.py PROJECT JOURNAL INTERVAL_S

Every image gets a sequence of deterministic edits: edit `seq` of image `k` depends only on (k, seq) and
the map it is applied to, and every edit is idempotent, so the test can rebuild the exact map any saved
counter stands for. Row 0 holds the counter (base-32 digits), row 2 is a barrier of value 1 ('ego vehicle',
never painted and always preserved) so no edit reaches the counter. The journal gets one line per event,
written with os.write on an O_APPEND descriptor (it survives SIGKILL: the kernel has the bytes):

    L <pid> <interval> <t>                   a life starts (t: time.monotonic(), the worker's clock)
    R <t>                                    ready, editing from now on
    E <image> <seq> <revision> <t>           edit `seq` done; the editor's revision after it
    F <image> <revision> <t>                 the map at `revision` is flushed (PNG + database)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.domain.label_edit import LabelEditor, Rect  # noqa: E402
from app.core.domain.labels import LABELIDS  # noqa: E402
from app.core.io.datasets import open_dataset  # noqa: E402
from app.core.io.imageio import read_label  # noqa: E402
from app.core.storage.project import Autosaver, Project, SavedEdit  # noqa: E402

BARRIER = 1
DIGITS = 8
BASE = 32
PAINT_VALUES = (0, 7, 8, 11, 17, 21, 23, 24, 26, 33)


def encode_counter(seq: int) -> np.ndarray:
    return np.array([(seq // BASE**i) % BASE for i in range(DIGITS)], dtype=np.uint8)


def decode_counter(labels: np.ndarray) -> int:
    return sum(int(labels[0, i]) * BASE**i for i in range(DIGITS))


def prepare(original: np.ndarray) -> np.ndarray:
    """The map edit 0 stands for: the original with counter 0 and the barrier row."""
    labels = original.copy()
    labels[0:2] = 0
    labels[2] = BARRIER
    return labels


def model_source(original: np.ndarray) -> np.ndarray:
    """A stand-in for a model's prediction (for copy_brush): the GT shifted."""
    return np.roll(original, (5, 9), axis=(0, 1))


def apply_edit(editor: LabelEditor, source: np.ndarray, image: int, seq: int) -> None:
    """Edit `seq` of `image` (one undo step of random kind), then the counter: two editor operations."""
    rng = np.random.default_rng([image, seq])
    h, w = editor.shape
    kind = int(rng.integers(5))
    value = int(rng.choice(PAINT_VALUES))
    keep = {BARRIER}
    radius = int(rng.integers(1, 12))

    def point() -> tuple[int, int]:
        return int(rng.integers(0, w)), int(rng.integers(3 + radius, h))

    if kind == 0:
        editor.dab(point(), radius, value, preserve=keep)
    elif kind == 1:
        # One operation: a group of several could be snapshotted half done, which the test would not
        # know how to rebuild (grouping is tested in test_label_edit.py).
        editor.stroke([point() for _ in range(4)], radius, value, preserve=keep)
    elif kind == 2:
        editor.fill(point(), value, connectivity=int(rng.choice([4, 8])), preserve=keep)
    elif kind == 3:
        radius = 0
        editor.fill_polygon([point() for _ in range(4)], value, preserve=keep)
    else:
        editor.copy_brush(source, [point(), point()], radius, preserve=keep)
    counter = np.zeros_like(editor.labels)
    counter[0, :DIGITS] = encode_counter(seq)
    editor.copy_from(counter, Rect(0, 0, DIGITS, 1))


def main() -> int:
    project_path, journal_path, interval = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    fd = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(line: str) -> None:
        os.write(fd, f"{line} {time.monotonic():.6f}\n".encode())

    log(f"L {os.getpid()} {interval}")
    project = Project.open(project_path)
    dataset = open_dataset(project.dataset_path or project_path.parent)
    refs = dataset.refs
    editors, sources, counters = [], [], []
    for ref in refs:
        assert ref.gt_path is not None
        original, _ = read_label(ref.gt_path, LABELIDS)
        edited = project.edited_gt(ref)
        if edited is not None:
            labels, _ = read_label(edited, LABELIDS, detect_trainids=False)
            labels = labels.copy()
        else:
            labels = prepare(original)
        editors.append(LabelEditor(labels))
        sources.append(model_source(original))
        counters.append(decode_counter(labels))
    index = {ref.key: i for i, ref in enumerate(refs)}

    def on_saved(saved: list[SavedEdit]) -> None:
        for item in saved:
            log(f"F {index[item.key]} {item.revision}")

    saver = Autosaver(project, interval, on_saved=on_saved)
    saver.start()
    log("R")
    while True:
        for k, (ref, editor) in enumerate(zip(refs, editors, strict=True)):
            counters[k] += 1
            apply_edit(editor, sources[k], k, counters[k])
            saver.mark_dirty(ref, editor)
            log(f"E {k} {counters[k]} {editor.revision}")
            time.sleep(0.004)  # about a mouse event rate; also leaves the autosave thread the GIL


if __name__ == "__main__":
    sys.exit(main())
