"""The Findings dock: after an evaluation of A and B, the likely label errors and the objects one model
misses, each one click from its image (selected in the table, the finding outlined and zoomed to), and
the image table's "Likely label errors" preset fed from the same list."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.analysis.instances import InstanceRecall, missed_objects_csv
from app.analysis.label_errors import DEFAULT_LIMIT, LabelErrorRegion, label_errors_csv
from app.controllers.preferences import window_settings
from app.core.io.fileutil import atomic_write_text
from app.evaluation.frames import Frame, Highlight
from app.evaluation.results import EvaluationResult
from app.views.findings_panel import LabelErrorRow, MissedRow

if TYPE_CHECKING:
    from app.analysis.compare import Comparison
    from app.controllers.workbench import Workbench

MISSED_SUFFIX = "_missed_objects"
"""The missed-objects CSV is written beside the label-error one, its name ending so."""
STATISTICS_AUTO_LIMIT = 500
"""Unless the user chose, the statistics are computed for sets up to this many images (they add about a
fifth to a cold evaluation of the demo, more when the predictions come from the cache)."""
OFF_TEXT = "Statistics per image are off (View menu): no likely label errors or missed objects listed."


class FindingsController(QObject):
    """Fills the Findings dock from the evaluation's Comparison and opens a picked finding."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.comparison: Comparison | None = None
        self.errors: tuple[LabelErrorRegion, ...] = ()
        self.missed: list[tuple[int, InstanceRecall]] = []  # (slot of the model that misses it, instance)
        self._zoom: tuple[str, tuple[int, int, int, int]] | None = None  # image key, box to zoom to
        self._basis = ""  # what the lists were computed on
        panel = main.window.findings
        panel.label_error_picked.connect(self.open_label_error)
        panel.missed_picked.connect(self.open_missed)
        panel.export_requested.connect(self.export)
        main.evaluation_finished.connect(self._on_result)
        main.frame_shown.connect(self._on_frame)
        main.rescored.connect(self._on_rescored)
        main.dataset_loaded.connect(lambda _dataset: self._show_choice())
        main.window.statistics_action.triggered.connect(self._on_toggled)
        saved = window_settings().value("view/statistics")
        if saved is not None:
            main.state.update(statistics=str(saved).lower() in ("true", "1"))
        self._show_choice()

    def analyze(self, images: int) -> bool:
        """Whether an evaluation of `images` images computes the per-image statistics: the user's choice,
        else on for sets up to STATISTICS_AUTO_LIMIT images."""
        chosen = self.main.state.view.statistics
        return images <= STATISTICS_AUTO_LIMIT if chosen is None else chosen

    def _show_choice(self) -> None:
        dataset = self.main.dataset
        on = self.analyze(0 if dataset is None else len(dataset))
        action = self.main.window.statistics_action
        action.blockSignals(True)
        action.setChecked(on)
        action.blockSignals(False)

    def _on_toggled(self, checked: bool) -> None:
        self.main.state.update(statistics=bool(checked))
        window_settings().setValue("view/statistics", bool(checked))
        if not checked:
            self.clear()
        elif self.comparison is None and self.main.dataset is not None and len(self.main.active()) == 2:
            self.main.evaluate()  # the numbers stay the same; the findings come with this run

    def _on_result(self, result: EvaluationResult) -> None:
        comparison = result.analysis
        if comparison is None or len(result.models) < 2:
            self.clear()
            return
        if not self.analyze(result.images_total):
            self.clear(OFF_TEXT)
            return
        self.comparison = comparison
        self.errors = comparison.label_errors
        missed = comparison.missed
        self.missed = []
        if missed is not None:  # A finds it and B misses it: B's panel shows the miss, and the reverse
            b_misses, a_misses = missed.a_finds_b_misses, missed.b_finds_a_misses
            self.missed = [(1, r) for r in b_misses] + [(0, r) for r in a_misses]
        names = " vs ".join(f"{'AB'[i]}: {m.info.name}" for i, m in enumerate(result.models[:2]))
        self._basis = (
            f"{names} · scheme {comparison.scheme} · {result.ground_truth.describe()} · "
            f"{comparison.images} of {result.images_total} images analyzed"
        )
        self._show()

    def _show(self, note: str = "") -> None:
        errors = [
            LabelErrorRow(rank, _short(r.key), r.ground_truth, r.predicted, r.area)
            for rank, r in enumerate(self.errors, start=1)
        ]
        missed = [
            MissedRow("AB"[slot], r.class_name, r.size, _short(r.key), r.recall[0], r.recall[1])
            for slot, r in self.missed
        ]
        instances = self.comparison is not None and self.comparison.missed is not None
        capped = self.comparison is not None and len(self.comparison.label_errors) >= DEFAULT_LIMIT
        findings = self.main.window.findings
        findings.set_findings(errors, missed, self._basis + note, capped=capped, instances=instances)
        areas: dict[str, int] = {}
        for region in self.errors:
            areas[region.key] = areas.get(region.key, 0) + region.area
        self.main.window.image_list.set_label_errors(areas)

    def clear(self, text: str | None = None) -> None:
        """No findings: no evaluation of two models with statistics, or its numbers are gone."""
        self.comparison, self.errors, self.missed, self._zoom = None, (), [], None
        self._basis = ""
        dataset = self.main.dataset
        if text is None and dataset is not None and not self.analyze(len(dataset)):
            text = OFF_TEXT
        self.main.window.findings.clear(*([text] if text else []))
        self.main.window.image_list.set_label_errors({})

    def _on_rescored(self, key: str) -> None:
        # An edited image's findings were of its old labels: they leave the lists, the others stay (the
        # user fixing one label error after another keeps the rest of the list).
        if self.comparison is None:
            return
        self.errors = tuple(r for r in self.errors if r.key != key)
        self.missed = [(s, r) for s, r in self.missed if r.key != key]
        self._show(" · images re-labelled since are left out")

    # ----------------------------------------------------------------- opening a finding
    def open_label_error(self, index: int) -> None:
        """Show the region: its image selected, its pixels outlined in panel A (both models say the same)."""
        if not 0 <= index < len(self.errors):
            return
        region = self.errors[index]
        names = self.main.state.view.scheme.names
        if region.ground_truth not in names:
            return
        gt = names.index(region.ground_truth)
        pred = names.index(region.predicted) if region.predicted in names else len(names)
        self._open(region.key, Highlight(0, gt, pred, box=region.bbox, agree=True))

    def open_missed(self, index: int) -> None:
        """Show the instance: its image selected, the pixels the missing model gets wrong outlined."""
        if not 0 <= index < len(self.missed):
            return
        slot, instance = self.missed[index]
        names = self.main.state.view.scheme.names
        if instance.class_name not in names:
            return
        self._open(instance.key, Highlight(slot, names.index(instance.class_name), -1, box=instance.bbox))

    def _open(self, key: str, highlight: Highlight) -> None:
        dataset = self.main.dataset
        rows = [] if dataset is None else [i for i, ref in enumerate(dataset.refs) if ref.key == key]
        if not rows:
            return
        assert highlight.box is not None
        self._zoom = (key, highlight.box)
        changed = self.main.state.update(highlight=highlight)  # re-renders the shown image
        image_list = self.main.window.image_list
        if self.main.current_row != rows[0]:
            image_list.select_row(rows[0])
            if image_list.current_row() != rows[0]:  # filtered out of the table: shown all the same
                self.main.show_image(rows[0])
        elif not changed and self.main.frame is not None:
            self._on_frame(self.main.frame)

    def _on_frame(self, frame: Frame) -> None:
        if self._zoom is not None and frame.ref.key == self._zoom[0]:
            self.main.window.compare.zoom_to(*self._zoom[1])
            self._zoom = None

    # ----------------------------------------------------------------- export
    def export(self) -> None:
        """Both lists as CSV (atomic writes): the label errors where the user says, the missed objects
        beside them (<name>_missed_objects.csv)."""
        window = self.main.window
        path = window.dialogs.save_file("Export findings", "label_errors.csv", "CSV (*.csv)")
        if not path:
            return
        target = Path(path) if Path(path).suffix else Path(path).with_suffix(".csv")
        written = [target]
        try:
            atomic_write_text(target, label_errors_csv(self.errors))
            if self.comparison is not None and self.comparison.missed is not None:
                missed = self.comparison.missed
                if len(self.missed) != len(missed.a_finds_b_misses) + len(missed.b_finds_a_misses):
                    keys = {r.key for _, r in self.missed}  # re-labelled images left out, as on screen
                    missed = type(missed)(
                        missed.models,
                        missed.threshold,
                        tuple(r for r in missed.a_finds_b_misses if r.key in keys),
                        tuple(r for r in missed.b_finds_a_misses if r.key in keys),
                        missed.tallies,
                    )
                other = target.with_name(f"{target.stem}{MISSED_SUFFIX}.csv")
                atomic_write_text(other, missed_objects_csv(missed))
                written.append(other)
        except OSError as exc:
            window.show_message(f"Could not export findings: {exc}", 10000)
            window.append_log(f"export findings: {exc}")
            return
        text = "Findings written: " + ", ".join(str(p) for p in written)
        window.show_message(text, 10000)
        window.append_log(text)


def _short(key: str) -> str:
    """The image's name as the image table shows it (the key's folders left out)."""
    return key.rsplit("/", 1)[-1]
