"""A dataset seen through its project: the project opened (or created) for a dataset, and the dataset
with each image's ground truth replaced by its edited version where the project holds one."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from app.core.datasets import Dataset, Sample, SampleRef
from app.core.errors import SegLensError
from app.core.paths import cache_dir
from app.core.project import Project, default_project_path

_log = logging.getLogger(__name__)


class EditedDataset(Dataset):
    """The dataset with each image's GT replaced by its edited version where the project has one."""

    def __init__(self, base: Dataset, project: Project) -> None:
        super().__init__(base.root, base.kind, base.split, base.gt_scheme, base.refs)
        self.base = base
        self.project = project

    def cities(self) -> list[str]:
        return self.base.cities()

    def load(self, ref: SampleRef, *, with_instances: bool = True) -> Sample:
        sample = self.base.load(ref, with_instances=with_instances)
        if self.project.edit_record(ref.key) is None:
            return sample
        return dataclasses.replace(sample, gt=self.project.load_gt(ref, self.gt_scheme, use_edited=True))


def open_project(dataset: Dataset) -> Project:
    """The dataset's project, created on first use; in the user data folder if the dataset is read-only."""
    try:
        return Project.open_or_create(default_project_path(dataset.root), dataset.root)
    except (OSError, SegLensError) as exc:
        if isinstance(exc, SegLensError) and "newer" in str(exc):
            raise  # a project from a newer SegLens is refused, never replaced
        digest = hashlib.sha256(str(dataset.root.resolve()).encode()).hexdigest()[:16]
        _log.info("%s: project kept in the cache folder (%s)", dataset.root, exc)
        return Project.open_or_create(cache_dir() / "projects" / f"{digest}.sqlite", dataset.root)
