"""Error types shared by every layer. Each carries the file it is about, so messages name it."""

from __future__ import annotations

from pathlib import Path


class SegLensError(Exception):
    """Base class for errors SegLens reports to the user (as opposed to bugs)."""


class InputError(SegLensError):
    """A user-supplied file is unreadable or wrong. The message names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class SchemeError(SegLensError):
    """Class names or ids that cannot be mapped between schemes (e.g. trainIds where labelIds belong)."""


class ModelLoadError(InputError):
    """A model file or manifest cannot be opened as a segmentation model."""


class PredictError(SegLensError):
    """A model failed while predicting one image; the run goes on with the next."""
