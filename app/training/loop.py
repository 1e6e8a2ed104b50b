"""What both trainers share: the LR schedule, validation mIoU, the training log, resume state and the
epoch loop with early stopping. A trainer (torch or Keras) only provides the `Trainer` methods.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.core.domain.errors import InputError
from app.core.domain.labels import NUM_LABEL_IDS, builtin_mapping
from app.core.domain.metrics import ConfusionAccumulator, Scores
from app.core.io.fileutil import atomic_write_text
from app.inference.postprocess import upsample_argmax
from app.training.config import TrainConfig
from app.training.data import TrainData, ValItem, eval_scheme, model_scheme, resize_pair

LOG_COLUMNS: tuple[str, ...] = (
    "epoch",
    "step",
    "train_loss",
    "val_miou",
    "lr",
    "epoch_time_s",
    "elapsed_s",
    "best",
)
STATE_FILE = "state.json"
Say = Callable[[str], None]


def poly_lr(
    step: int, total: int, base: float, warmup: int, power: float = 0.9, time_used: float = 0.0
) -> float:
    """Learning rate at `step` (0-based): linear warmup from base/100 over `warmup` steps, then polynomial
    decay (1 - progress) ** power to 0 at `total` (mmseg's SegFormer schedule).

    `time_used` is the fraction of a wall-time budget already spent: progress is the larger of the two,
    so a run cut short by --max-minutes still ends annealed instead of at a high learning rate.
    """
    if warmup > 0 and step < warmup:
        start = base * 0.01
        return start + (base - start) * step / warmup
    span = max(1, total - warmup)
    progress = min(1.0, max((step - warmup) / span, time_used))
    return base * (1.0 - progress) ** power


class Trainer(Protocol):
    """One model being trained. Images are uint8 NxHxWx3 RGB at the training size."""

    def train_step(self, images: np.ndarray, labels: np.ndarray, lr: float) -> float:
        """One optimizer step at learning rate `lr`; returns the batch loss."""
        ...

    def predict_scores(self, images: np.ndarray) -> np.ndarray:
        """Class scores (N, K, h, w) float32 for a batch, in eval mode."""
        ...

    def save_model(self, directory: Path) -> Path:
        """Write the loadable model (HF checkpoint / .keras + manifest) into `directory`; returns what
        load_model opens."""
        ...

    def save_state(self, directory: Path) -> None:
        """Write weights and optimizer state for resuming."""
        ...

    def load_state(self, directory: Path) -> None:
        """Restore what save_state wrote."""
        ...


def validate(
    trainer: Trainer, items: Sequence[ValItem], scheme_key: str, size: tuple[int, int], batch: int
) -> Scores:
    """Official-equivalent scores on full-resolution ground truth: each image is resized to the training
    size, its scores upsampled bilinearly to the GT size and argmax'ed (what the backends do), the classes
    mapped into labelIds and counted in the 34x34 matrix of app.core.domain.metrics."""
    to_label_ids = builtin_mapping(model_scheme(scheme_key)).lut
    acc = ConfusionAccumulator(NUM_LABEL_IDS)
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        images = np.stack([resize_pair(item.image, None, size)[0] for item in chunk])
        scores = trainer.predict_scores(images)
        for item, item_scores in zip(chunk, scores, strict=True):
            pred = upsample_argmax(item_scores, (item.gt.shape[0], item.gt.shape[1]))
            acc.add(item.gt, to_label_ids[pred], path=item.key)
    return acc.scores(eval_scheme(scheme_key))


@dataclass
class RunState:
    """Progress of a run: what the log shows and what a resume needs."""

    epoch: int = 0  # completed epochs
    step: int = 0
    best_miou: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "running"
    best_scores: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "elapsed_s": self.elapsed_s,
            "rows": self.rows,
            "stopped": self.stopped,
            "best_scores": self.best_scores,
        }


def write_log(out: Path, config: TrainConfig, state: RunState, best_model: Path | None) -> None:
    """train_log.csv (one row per epoch) and train_log.json (settings, rows, outcome), both atomic."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in state.rows:
        writer.writerow({k: row[k] for k in LOG_COLUMNS})
    atomic_write_text(out / "train_log.csv", buffer.getvalue())
    summary = {
        "config": config.to_dict(),
        "columns": list(LOG_COLUMNS),
        "epochs": state.rows,
        "best_epoch": state.best_epoch,
        "best_val_miou": state.best_miou if state.best_miou >= 0 else None,
        "best_model": str(best_model) if best_model is not None else None,
        "best_scores": state.best_scores,
        "stopped": state.stopped,
        "train_time_s": state.elapsed_s,
    }
    atomic_write_text(out / "train_log.json", json.dumps(summary, indent=2) + "\n")


def save_resume(directory: Path, config: TrainConfig, trainer: Trainer, state: RunState) -> None:
    """The resume checkpoint: the trainer's weights and optimizer, then state.json last (its presence
    marks a complete checkpoint)."""
    directory.mkdir(parents=True, exist_ok=True)
    trainer.save_state(directory)
    payload = {"identity": config.identity(), "framework": config.framework, "state": state.to_dict()}
    atomic_write_text(directory / STATE_FILE, json.dumps(payload, indent=2) + "\n")


def load_resume(directory: Path, config: TrainConfig, trainer: Trainer) -> RunState:
    """Restore a checkpoint written by save_resume; refuse one from a different arch/scheme/size."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise InputError(directory, f"not a training checkpoint (no {STATE_FILE}): pass OUT/resume")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read the checkpoint state: {exc}") from exc
    if payload.get("identity") != config.identity():
        raise InputError(
            directory, f"checkpoint was trained with {payload.get('identity')}, not {config.identity()}"
        )
    trainer.load_state(directory)
    known = RunState().to_dict().keys()
    return RunState(**{k: v for k, v in payload["state"].items() if k in known})


def _progress(total: int, initial: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)


def run(
    config: TrainConfig,
    trainer: Trainer,
    data: TrainData,
    val_items: Sequence[ValItem],
    say: Say = print,
) -> RunState:
    """Train epoch by epoch: validate after each, keep the best model (val mIoU), stop early after
    `patience` epochs without improvement, at `epochs`, or after `max_minutes`."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = data.steps_per_epoch(config.batch)
    total = steps_per_epoch * config.epochs
    warmup = config.warmup_steps(total)
    state = load_resume(config.resume, config, trainer) if config.resume is not None else RunState()
    state.stopped = "running"  # a resume may extend a finished run (more --epochs)
    best_model = out / "best" if state.best_epoch else None
    if state.epoch:
        say(f"resumed after epoch {state.epoch} (step {state.step}, best mIoU {state.best_miou:.4f})")
    bar = _progress(total, state.step, config.arch)
    try:
        while state.epoch < config.epochs and state.stopped == "running":
            started = time.perf_counter()
            epoch = state.epoch + 1
            losses: list[float] = []
            lr = config.lr
            for images, labels in data.batches(epoch, config.batch):
                used = _time_used(config, state.elapsed_s + time.perf_counter() - started)
                if used >= 1.0:
                    break  # out of time: validate what we have and stop
                lr = poly_lr(state.step, total, config.lr, warmup, time_used=used)
                losses.append(trainer.train_step(images, labels, lr))
                state.step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}")
            scores = validate(trainer, val_items, config.scheme, config.size, config.batch)
            best_model = _end_epoch(config, trainer, state, epoch, losses, lr, scores, started) or best_model
            write_log(out, config, state, best_model)
            save_resume(out / "resume", config, trainer, state)
            row = state.rows[-1]
            say(
                f"epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f}, val mIoU {scores.miou:.4f}"
                f"{' (best)' if row['best'] else ''}, lr {lr:.2e}, {row['epoch_time_s']:.0f} s"
            )
    finally:
        bar.close()
    if state.stopped == "running":
        state.stopped = "completed"
    write_log(out, config, state, best_model)
    save_resume(out / "resume", config, trainer, state)
    return state


def _time_used(config: TrainConfig, elapsed_s: float) -> float:
    """Fraction of --max-minutes spent (0 without a limit)."""
    if config.max_minutes is None or config.max_minutes <= 0:
        return 0.0
    return elapsed_s / (config.max_minutes * 60.0)


def _end_epoch(
    config: TrainConfig,
    trainer: Trainer,
    state: RunState,
    epoch: int,
    losses: list[float],
    lr: float,
    scores: Scores,
    started: float,
) -> Path | None:
    """Record the epoch, save the model when it is the best so far, decide whether to stop."""
    seconds = time.perf_counter() - started
    state.elapsed_s += seconds
    state.epoch = epoch
    miou = 0.0 if math.isnan(scores.miou) else float(scores.miou)
    improved = miou > state.best_miou
    saved = None
    if improved:
        state.best_miou, state.best_epoch, state.bad_epochs = miou, epoch, 0
        state.best_scores = {
            "miou": miou,
            "iou": {
                n: (None if math.isnan(v) else float(v))
                for n, v in zip(scores.class_names, scores.iou, strict=True)
            },
        }
        saved = trainer.save_model(config.out / "best")
    else:
        state.bad_epochs += 1
    state.rows.append(
        {
            "epoch": epoch,
            "step": state.step,
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "val_miou": miou,
            "lr": lr,
            "epoch_time_s": round(seconds, 3),
            "elapsed_s": round(state.elapsed_s, 3),
            "best": improved,
        }
    )
    if config.patience > 0 and state.bad_epochs >= config.patience:
        state.stopped = f"early stop: no better val mIoU for {config.patience} epochs"
    elif config.max_minutes is not None and state.elapsed_s >= config.max_minutes * 60:
        state.stopped = f"time limit of {config.max_minutes:g} minutes reached"
    return saved


def replace_dir(staging: Path, final: Path) -> None:
    """Move a freshly written folder into place; the old one is removed only once the new one is there."""
    old = final.with_name(f"{final.name}.old-{os.getpid()}")
    if final.exists():
        final.replace(old)
    staging.replace(final)
    if old.exists():
        shutil.rmtree(old)
