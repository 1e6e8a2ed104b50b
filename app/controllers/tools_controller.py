"""The Tools menu: hosted models, benchmark, ONNX export and INT8 quantization, all on the worker pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QObject, Qt

from app.core.domain.errors import InputError
from app.inference.backends.remote_models import (
    RemoteModelRequest,
    keyring_available,
    remote_manifest,
    save_remote,
)
from app.views.remote_dialog import RemoteModelDialog

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench


class ToolsController(QObject):
    """Owns the Tools menu actions of the main window."""

    def __init__(self, main: Workbench, review: Callable[[], dict[str, dict[str, Any]]]) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.remote_dialog: RemoteModelDialog | None = None
        self.review = review  # the review flags and notes a report carries
        w = main.window
        w.add_remote_action.triggered.connect(self.add_remote)
        w.benchmark_action.triggered.connect(self.benchmark)
        w.export_action.triggered.connect(lambda _checked=False: self.export_a())
        w.quantize_action.triggered.connect(lambda _checked=False: self.quantize_a())
        # A lambda, not the method: triggered(bool) would arrive as the output path.
        w.report_action.triggered.connect(lambda _checked=False: self.export_report())

    def add_remote(self) -> None:
        """Open the "Add hosted model" dialog (window-modal, not blocking): try, then save and load."""
        dialog = RemoteModelDialog(keyring_available(), self.main.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.test_requested.connect(lambda: self._try_remote(dialog))
        dialog.accepted.connect(lambda: self._save_remote(dialog.request()))
        self.remote_dialog = dialog
        dialog.open()

    def _try_remote(self, dialog: RemoteModelDialog) -> None:
        """Health and one prediction on the worker pool; the dialog shows the answer."""
        request = dialog.request()
        try:
            manifest = remote_manifest(request)
        except InputError as exc:
            dialog.show_failure(str(exc))
            return
        key = request.key if request.key and not request.key_env else None
        dataset = self.main.dataset
        image_source = str(dataset.root) if dataset is not None and len(dataset) else None

        def run() -> Any:
            from app.inference.backends.remote_check import try_connection
            from app.inference.tools.export import sample_images

            return try_connection(manifest, sample_images(image_source, 1)[0], key)

        dialog.show_trying()
        job = self.main.pool.submit(run, key="remote-check")
        job.signals.result.connect(lambda check: self._tried(dialog, check))
        job.signals.error.connect(lambda report: self._try_failed(dialog, report))

    def _tried(self, dialog: RemoteModelDialog, check: Any) -> None:
        if shiboken6.isValid(dialog):
            dialog.show_result(check.preview, check.describe())
        self.main.window.append_log(f"hosted model tried: {check.describe()}")

    def _try_failed(self, dialog: RemoteModelDialog, report: Any) -> None:
        if shiboken6.isValid(dialog):
            dialog.show_failure(report.message)

    def _save_remote(self, request: RemoteModelRequest) -> None:
        try:
            path = save_remote(request)
        except Exception as exc:  # InputError, or the keyring backend's own errors
            self.main.window.show_message(f"Hosted model not added: {exc}", 10000)
            self.main.window.append_log(f"hosted model not added: {exc}")
            return
        self.main.window.append_log(f"hosted model {request.name}: manifest {path}")
        self.main.set_model(request.slot, path)

    def benchmark(self) -> None:
        """Measure A and B (latency percentiles, throughput, size, memory) without blocking the window."""
        from app.tools.benchmark import benchmark_models, format_table

        active = self.main.active()
        if not active:
            self.main.window.show_message("Choose a model first.", 5000)
            return

        def run() -> str:
            # Every model scored on the window's scheme, so the column matches the main comparison.
            dataset, scheme = self.main.dataset, self.main.state.view.scheme.key
            segmenters = [p.segmenter for _, p in active]
            results = benchmark_models(segmenters, runs=10, dataset=dataset, limit=10, scheme=scheme)
            return format_table(results)

        self.main.window.show_message("Benchmarking…")
        job = self.main.pool.submit(run, key="benchmark")
        job.signals.result.connect(self._show_table)

    def _show_table(self, table: str) -> None:
        self.main.window.append_log(table)
        self.main.window.log_dock.show()
        self.main.window.show_message("Benchmark done: see the log", 8000)

    def export_a(self) -> None:
        """Export model A (Keras or Hugging Face) to ONNX and use the export as A when it is faithful."""
        from app.inference.tools.export import sample_images, source_kind

        predictor = self.main.predictors[0]
        if predictor is None or predictor.info.backend not in ("keras", "hf"):
            self.main.window.show_message("Model A must be a Keras or Hugging Face model to export.", 8000)
            return
        source = Path(predictor.info.source)
        source_kind(source)
        out = self.main.window.dialogs.save_file(
            "Export model A to ONNX", str(source.with_suffix(".onnx")), "ONNX (*.onnx)"
        )
        if not out:
            return

        def run() -> Any:
            from app.inference.tools.export import export_model

            return export_model(source, out, samples=sample_images(None, 4))

        job = self.main.pool.submit(run, key="export")
        job.signals.result.connect(lambda report, path=out: self._exported(report, path))
        self.main.window.show_message(f"Exporting {source.name} to ONNX…")

    def _exported(self, report: Any, path: str) -> None:
        self.main.window.append_log(f"exported {path}: {report.describe()}")
        self.main.window.show_message(report.describe(), 10000)
        if report.ok:
            self.main.set_model(0, path)

    def quantize_a(self) -> None:
        """Quantize ONNX model A with the open dataset as calibration and validation data."""
        predictor = self.main.predictors[0]
        dataset = self.main.dataset
        if predictor is None or predictor.info.backend != "onnx" or dataset is None:
            self.main.window.show_message("Open a dataset and choose an ONNX model A first.", 8000)
            return
        source = Path(predictor.info.source)
        default = source.with_name(f"{source.stem}_int8.onnx")
        out = self.main.window.dialogs.save_file("INT8 model", str(default), "ONNX (*.onnx)")
        if not out:
            return

        def run() -> Any:
            from app.tools.quantize import quantize

            count = min(len(dataset), 50)
            return quantize(source, out, calibration=dataset, count=count, validation=dataset)

        job = self.main.pool.submit(run, key="quantize")
        job.signals.result.connect(self._quantized)
        self.main.window.show_message(f"Quantizing {source.name}…")

    def _quantized(self, result: Any) -> None:
        self.main.window.append_log(result.describe())
        self.main.window.log_dock.show()
        self.main.window.show_message("Quantization done: see the log", 8000)

    def export_report(self, out: str | None = None) -> None:
        """Write the report of the last finished evaluation (HTML plus PDF, CSV and JSON beside it)."""
        main = self.main
        result = main.result
        if result is None or main.dataset is None:
            main.window.show_message("Evaluate first: the report describes a finished evaluation.", 8000)
            return
        if out is None:
            out = main.window.dialogs.save_file(
                "Export report", str(Path.home() / "seglens-report.html"), "HTML (*.html)"
            )
            if not out:
                return
        predictors = [main.on_disk(p) for _, p in main.scored()]  # the models the result holds
        mappings = [m.mapping for m in result.models]

        def masks(index: int, sample: Any) -> Any:
            # Served from the on-disk cache filled by the evaluation: no second inference.
            return mappings[index].apply(predictors[index].predict_sample(sample).labels)

        settings = {
            "dataset": str(main.dataset.root),
            "split": str(main.dataset.split),
            "scheme": result.scheme.key,
            "ground truth": result.ground_truth.describe(),
            **{f"model {'AB'[i]}": p.info.source for i, p in enumerate(predictors)},
        }

        review = self.review()

        def run() -> list[Path]:
            from app.report.writer import write_report

            return write_report(result, out, settings=settings, masks=masks, review=review)

        job = main.pool.submit(run, key="report")
        job.signals.result.connect(self._reported)
        main.window.show_message("Writing the report…")

    def _reported(self, paths: list[Path]) -> None:
        self.main.window.append_log("report written: " + ", ".join(str(p) for p in paths))
        self.main.window.show_message(f"Report written: {paths[0]}", 10000)
