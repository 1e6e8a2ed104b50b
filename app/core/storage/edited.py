"""Ground truth as edited in a project: the dataset seen through a project's edited label maps, and where
a dataset's project lives. The source label files are never changed."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.io.datasets import Dataset, Sample, SampleRef
from app.core.io.paths import cache_dir, default_project_path

if TYPE_CHECKING:
    from app.core.storage.project import Project

_log = logging.getLogger(__name__)


class EditedDataset(Dataset):
    """The dataset with each image's GT replaced by its edited version where the project has one."""

    def __init__(self, base: Dataset, project: Project) -> None:
        super().__init__(base.root, base.kind, base.split, base.gt_scheme, base.refs)
        self.base = base
        self.project = project

    def cities(self) -> list[str]:
        return self.base.cities()

    def load(self, ref: SampleRef, *, with_instances: bool = True, image: bool = True) -> Sample:
        sample = self.base.load(ref, with_instances=with_instances, image=image)
        if self.project.edit_record(ref.key) is None:
            return sample
        return dataclasses.replace(sample, gt=self.project.load_gt(ref, self.gt_scheme, use_edited=True))

    def edited_keys(self, refs: list[SampleRef] | None = None) -> list[str]:
        """The keys among `refs` (default: all) whose labels are edited."""
        edited = {record.key for record in self.project.edits()}
        return [ref.key for ref in (self.refs if refs is None else refs) if ref.key in edited]


def fallback_project_path(dataset_root: Path) -> Path:
    """Where the project of a dataset that cannot hold one (read-only) is kept: the user cache."""
    digest = hashlib.sha256(str(dataset_root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "projects" / f"{digest}.sqlite"


def find_project(dataset_root: Path) -> Path | None:
    """The existing project of a dataset (beside it, else in the user cache), or None."""
    for path in (default_project_path(dataset_root), fallback_project_path(dataset_root)):
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def open_project(dataset: Dataset) -> Project:
    """The dataset's project, created on first use; in the user data folder if the dataset is read-only.
    A project that exists but cannot be used (damaged, newer, open in another process) is refused with
    its SegLensError and never replaced by an empty one."""
    from app.core.storage.project import Project  # sqlite and the label editor: only when a project opens

    path = default_project_path(dataset.root)
    try:
        if path.is_file() and path.stat().st_size > 0:
            return Project.open(path)
        if path.exists() and not path.is_file():
            raise NotADirectoryError(f"{path} is not a file")  # e.g. a folder of that name: unusable
        return Project.create(path, dataset.root)
    except OSError as exc:  # a read-only dataset folder: keep the project in the user's cache instead
        _log.info("%s: project kept in the cache folder (%s)", dataset.root, exc)
        return Project.open_or_create(fallback_project_path(dataset.root), dataset.root)
