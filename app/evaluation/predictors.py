"""What an evaluation asks for a prediction: a model (Segmenter) or a folder of saved masks, behind one
small interface, and how their classes land in the ground truth's id space."""

from __future__ import annotations

import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from app.core.domain.errors import InputError
from app.core.domain.labels import (
    BUILTIN_SCHEMES,
    LABELIDS,
    ClassMapping,
    ClassScheme,
    EvalScheme,
    builtin_mapping,
    custom_eval_scheme,
    eval_scheme_by_key,
    map_by_name,
)
from app.core.io.datasets import Sample, SampleRef
from app.core.io.imageio import read_label
from app.inference.base import InputSpec, ModelInfo, PendingPrediction, Prediction, Segmenter, Timings


class SamplePredictor(Protocol):
    """Anything that turns a decoded sample into a prediction: a model, or a folder of saved masks.

    It may also offer `begin_sample(sample) -> Prediction | PendingPrediction` (a Prediction when there is
    nothing to run, e.g. a cache hit): see begin_prediction. `needs_pixels` False (an attribute) lets the
    evaluation skip decoding the RGB image: saved masks need only the image's size."""

    @property
    def info(self) -> ModelInfo: ...

    def predict_sample(self, sample: Sample) -> Prediction: ...


def needs_pixels(predictor: SamplePredictor) -> bool:
    """Whether `predictor` reads the image's pixels (a model does; saved masks do not)."""
    return bool(getattr(predictor, "needs_pixels", True))


def begin_prediction(predictor: SamplePredictor, sample: Sample) -> Prediction | PendingPrediction:
    """The prediction of `sample`, split at the model call when the predictor can, else the whole
    prediction as one call."""
    begin = getattr(predictor, "begin_sample", None)
    if begin is not None:
        result: Prediction | PendingPrediction = begin(sample)
        return result
    return PendingPrediction.whole(lambda: predictor.predict_sample(sample))


def sample_shape(sample: Sample) -> tuple[int, int]:
    """(height, width) of the sample's image, known without decoding it."""
    return sample.size


class SegmenterPredictor:
    """Adapts a Segmenter (which sees only pixels) to the sample interface."""

    needs_pixels = True

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    @property
    def info(self) -> ModelInfo:
        return self.segmenter.info

    def predict_sample(self, sample: Sample) -> Prediction:
        return self.segmenter.predict(sample.image)

    def begin_sample(self, sample: Sample) -> PendingPrediction:
        begin = getattr(self.segmenter, "begin", None)
        image = sample.image
        if begin is not None:
            pending: PendingPrediction = begin(image)
            return pending
        segmenter = self.segmenter
        return PendingPrediction.whole(lambda: segmenter.predict(image))

    def close(self) -> None:
        self.segmenter.close()


class FolderPredictions:
    """Predictions saved as labelIds PNGs, found the way the official Cityscapes evaluation finds them:
    the first file under `root` matching `<city>_<seq>_<frame>*.png` (or `<stem>*.png` for plain folders).
    Anything that is not a regular file (a FIFO, a socket) is never opened."""

    needs_pixels = False

    def __init__(self, root: str | Path, id_space: ClassScheme = LABELIDS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "predictions folder not found")
        self.id_space = id_space
        self._index: dict[str, Path] = {}
        self.skipped: list[str] = []
        for path in sorted(self.root.rglob("*.png")):
            try:
                regular = stat.S_ISREG(path.stat().st_mode)
            except OSError as exc:
                self.skipped.append(f"{path}: cannot be read ({exc.strerror})")
                continue
            if not regular:
                self.skipped.append(f"{path}: not a regular file, skipped")
                continue
            self._index.setdefault(path.name, path)
        self._names = sorted(self._index)
        self._info = ModelInfo(
            name=self.root.name or str(self.root),
            backend="files",
            source=str(self.root),
            class_names=id_space.names,
            scheme=id_space.key,
            input=InputSpec(height=None, width=None, resize="any"),
            output="labels",
            file_size=None,
            digest="",
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def find(self, ref: SampleRef) -> Path:
        """The prediction file of `ref`, or InputError naming the folder and the pattern."""
        import bisect

        prefix = ref.frame
        start = bisect.bisect_left(self._names, prefix)
        matches = []
        for name in self._names[start:]:
            if not name.startswith(prefix):
                break
            matches.append(self._index[name])
        if not matches:
            raise InputError(self.root, f"no prediction file matching '{prefix}*.png'")
        if len(matches) > 1:
            raise InputError(self.root, f"several prediction files match '{prefix}*.png'")
        return matches[0]

    def predict_sample(self, sample: Sample) -> Prediction:
        start = time.perf_counter()
        labels, _ = read_label(self.find(sample.ref), self.id_space, sample_shape(sample))
        elapsed = (time.perf_counter() - start) * 1000
        return Prediction(labels=labels, timings=Timings(0.0, elapsed, 0.0))


def mapping_for(info: ModelInfo, id_space: ClassScheme) -> ClassMapping:
    """How a model's class values land in the ground truth's id space."""
    if id_space is LABELIDS and info.scheme in BUILTIN_SCHEMES:
        return builtin_mapping(BUILTIN_SCHEMES[info.scheme])
    return map_by_name(info.class_names, id_space)


def choose_scheme(
    key: str | None, predictors: Sequence[SamplePredictor], gt_scheme: ClassScheme
) -> EvalScheme:
    """The requested scheme, or the finest one every model can be evaluated on."""
    if gt_scheme is not LABELIDS:
        return custom_eval_scheme(gt_scheme)
    if key:
        return eval_scheme_by_key(key)
    granularities = {mapping_for(p.info, gt_scheme).granularity for p in predictors}
    return eval_scheme_by_key("categories" if "categories" in granularities else "trainids")
