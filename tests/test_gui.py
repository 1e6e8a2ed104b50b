"""The real main window, offscreen: open a dataset, set two ONNX models, evaluate, look, cancel."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PySide6.QtCore import Qt

from app.core.domain.labels import CATEGORY_NAMES, TRAINIDS, eval_scheme_by_key
from app.core.io.datasets import open_dataset
from app.core.scenes.generator import generate
from app.evaluation.engine import Evaluator
from app.evaluation.predictors import SegmenterPredictor
from app.inference.registry import load_model

pytestmark = pytest.mark.gui
pytest_plugins = ("gui_data",)  # the scenes and models fixtures


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def _load(qtbot, controller, scenes, models) -> None:
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    for slot, path in enumerate(models):
        with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
            controller.set_model(slot, path)


def test_evaluate_shows_masks_and_metrics(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000) as finished:
        controller.evaluate()
    result = finished.args[0]
    assert result.images_done == 6 and not result.cancelled

    # The numbers shown equal a headless evaluation of the same files.
    dataset = open_dataset(scenes)
    predictors = [SegmenterPredictor(load_model(p)) for p in models]
    headless = Evaluator(dataset, predictors, eval_scheme_by_key("trainids")).run()
    window = controller.window
    for column, (live, ref) in enumerate(zip(controller.live, headless.models, strict=True)):
        assert live is not None
        np.testing.assert_array_equal(live.matrix, ref.matrix)
        shown = window.metrics.summary.item(0, column).text()
        assert shown == f"{ref.scores.miou * 100:.1f}"
    for p in predictors:
        p.segmenter.close()

    # Image table holds per-image mIoU for both models.
    table = window.image_list.model
    assert table.rowCount() == 6
    assert all(table.data(table.index(r, 2)) != "–" for r in range(6))
    # Per-class table and confusion heatmap filled.
    assert window.metrics.classes.rowCount() == len(TRAINIDS.names) + 8  # + the category IoU rows
    assert window.metrics.heatmap.values is not None

    # The compare view shows the image and both masks; switching images updates them.
    qtbot.waitUntil(lambda: controller.frame is not None, timeout=20_000)
    compare = window.compare
    assert not compare.a_panel.view.image_item.pixmap().isNull()
    assert not compare.a_panel.view.mask_item.pixmap().isNull()
    assert not compare.b_panel.view.mask_item.pixmap().isNull()
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000) as shown_frame:
        window.next_action.trigger()
    assert shown_frame.args[0].ref.key == dataset.refs[1].key

    # One opacity slider drives every panel.
    compare.opacity.setValue(80)
    assert all(math.isclose(p.view.mask_item.opacity(), 0.8) for p in compare.panels)
    compare.show_gt.setChecked(True)
    assert compare.gt_panel.isVisibleTo(window)


def test_cancel_midway_keeps_window_usable(qtbot, controller, tmp_path, models) -> None:
    controller.auto_evaluate = False
    data = generate(tmp_path / "many", 40, size=(96, 192), seed=5)
    # ~130 ms per image here, so 40 images cannot finish between the second result and the click.
    slow = make_onnx_segmenter(
        tmp_path / "slow.onnx", TRAINIDS.names, input_size=(512, 1024), hidden=64, depth=4, downsample=2
    )
    _load(qtbot, controller, data, (slow,))
    controller.evaluate()
    qtbot.waitUntil(
        lambda: controller.live[0] is not None and len(controller.live[0].images) >= 2, timeout=30_000
    )
    controller.window.cancel_action.trigger()
    assert controller.pool.wait_idle(30_000)
    done = len(controller.live[0].images)
    assert 2 <= done < 40
    assert not controller.window.progress.isVisible()
    # The window still works: evaluation can start again and finish.
    with qtbot.waitSignal(controller.evaluation_finished, timeout=120_000) as finished:
        controller.evaluate()
    assert finished.args[0].images_done == 40 and len(controller.live[0].images) == 40


def test_category_model_switches_scheme(qtbot, controller, scenes, tmp_path) -> None:
    controller.auto_evaluate = False
    cat = make_onnx_segmenter(tmp_path / "cats.onnx", CATEGORY_NAMES, input_size=(64, 128), seed=9)
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
        controller.set_model(0, cat)
    assert controller.scheme.key == "categories"
    assert controller.window.scheme_box.currentData() == "categories"


def test_bad_model_reported_in_status_and_log(qtbot, controller, tmp_path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_text("not a model")
    with qtbot.waitSignal(controller.pool.error, timeout=20_000):
        controller.set_model(0, bad)
    qtbot.waitUntil(lambda: "broken.onnx" in controller.window.log.toPlainText(), timeout=5_000)
    assert "broken.onnx" in controller.window.statusBar().currentMessage()
    assert controller.predictors[0] is None


def test_drop_dataset_and_models(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.window.paths_dropped.emit([scenes, *models])
    qtbot.waitUntil(lambda: all(p is not None for p in controller.predictors), timeout=20_000)
    assert [p.info.name for p in controller.predictors] == ["alpha", "beta"]
    assert controller.window.compare.a_panel.title.text().startswith("A: alpha")


def test_error_and_disagreement_maps_and_hover(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    qtbot.waitUntil(
        lambda: controller.frame is not None and len(controller.frame.pred_class) == 2, timeout=20_000
    )
    compare = controller.window.compare
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.mode.setCurrentIndex(compare.mode.findData("disagreement"))
    caption = compare.stats.text()
    assert "A right, B wrong " in caption and "B right, A wrong " in caption
    shares = [float(part.rsplit(" ", 1)[1].rstrip("%")) for part in caption.split(" · ")]
    assert len(shares) == 3 and 0 < sum(shares) <= 100.05  # "both right" is the rest
    # The B panel now shows the disagreement colours, not class colours.
    frame = controller.frame
    gt, a, b = frame.gt_class, *frame.pred_class
    mask = compare.b_panel.view.mask_item.pixmap().toImage()
    ys, xs = np.nonzero((a == gt) & (b != gt) & (gt != 255))
    if ys.size:
        color = mask.pixelColor(int(xs[0]), int(ys[0]))
        assert (color.red(), color.green(), color.blue()) == (230, 159, 0)
    # Hovering names the GT, A and B classes under the cursor.
    compare.hovered.emit(5, 90)
    text = compare.readout.text()
    names = controller.scheme.names
    assert f"GT: {names[gt[90, 5]]}" in text or "GT: (not evaluated)" in text
    assert text.count(": ") == 3


def test_confusion_drill_down_to_pixels(qtbot, controller, scenes, models) -> None:
    from app.core.domain.metrics import aggregate

    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        controller.evaluate()
    live = controller.live[0]
    total = aggregate(live.matrix, live.scheme.members)
    np.fill_diagonal(total, 0)
    gt, pred = np.unravel_index(int(np.argmax(total)), total.shape)  # the largest confusion of A
    controller.drilldown.drill(int(gt), int(pred))
    drill = controller.window.metrics.drill
    counts = [int(drill.item(i).text().split(" px")[0].replace(",", "")) for i in range(drill.count())]
    assert counts and counts == sorted(counts, reverse=True) and sum(counts) == total[gt, pred]
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000) as shown:
        drill.setCurrentRow(0)
    frame = shown.args[0]
    assert frame.ref.key == drill.item(0).data(256)
    mask = controller.window.compare.a_panel.view.mask_item.pixmap().toImage()
    arr = np.frombuffer(mask.constBits(), np.uint8).reshape(mask.height(), mask.bytesPerLine())
    rgba = arr[:, : mask.width() * 4].reshape(mask.height(), mask.width(), 4)
    magenta = np.all(rgba == [255, 0, 255, 255], axis=2)
    assert int(magenta.sum()) == counts[0]
    assert f"{counts[0]} pixels of" in controller.window.compare.stats.text()


def test_failure_mining_presets_focus_class_and_city(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        controller.evaluate()
    images = controller.window.image_list
    deltas = {
        row: controller.live[1].images[ref.key].miou - controller.live[0].images[ref.key].miou
        for row, ref in enumerate(controller.dataset.refs)
    }
    images.apply_preset("regressions")
    order = images.visible_rows()
    assert [round(deltas[r], 12) for r in order] == sorted(round(d, 12) for d in deltas.values())
    assert images.current_row() == order[0]  # the worst regression is opened
    images.apply_preset("improvements")
    assert images.visible_rows()[0] == max(deltas, key=deltas.get)
    # A focus class adds its per-image IoU columns; "B fails on class" sorts by B's IoU of that class.
    road = controller.scheme.names.index("road")
    images.focus.setCurrentIndex(images.focus.findData(road))
    images.apply_preset("b_fails")
    b_road = [
        controller.live[1].images[controller.dataset.refs[r].key].iou[road] for r in images.visible_rows()
    ]
    known = [v for v in b_road if not np.isnan(v)]
    assert known == sorted(known) and not images.table.isColumnHidden(6)
    # One city only.
    city = controller.dataset.cities()[0]
    images.city.setCurrentIndex(images.city.findData(city))
    assert {controller.dataset.refs[r].city for r in images.visible_rows()} == {city}


def test_legend_hides_a_class_and_b_minus_a_matrix(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    qtbot.waitUntil(
        lambda: controller.frame is not None and len(controller.frame.pred_class) == 2, timeout=20_000
    )
    legend = controller.window.compare.legend
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000) as shown:
        legend.entries[0].setChecked(False)  # road
    pred_a = shown.args[0].pred_class[0]
    image = controller.window.compare.a_panel.view.mask_item.pixmap().toImage()
    alpha = np.array(
        [
            [image.pixelColor(x, y).alpha() for x in range(0, image.width(), 7)]
            for y in range(0, image.height(), 7)
        ]
    )
    sampled = pred_a[::7, ::7]
    assert (alpha[sampled == 0] == 0).all() and (alpha[(sampled != 0) & (sampled != 255)] == 255).all()
    # The B - A heatmap shows a signed difference.
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        controller.evaluate()
    metrics = controller.window.metrics
    metrics.matrix_choice.setCurrentIndex(metrics.matrix_choice.findData("B-A"))
    values = metrics.heatmap.values
    assert values is not None and values.min() < 0 < values.max()


def test_settings_recent_menus_models_panel_and_shortcuts(
    qtbot, monkeypatch, tmp_path, scenes, models
) -> None:
    from app.controllers.main_controller import MainController
    from app.core.storage.settings import load_settings

    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "cfg"))
    first = MainController()
    qtbot.addWidget(first.window)
    first.auto_evaluate = False
    _load(qtbot, first, scenes, models)
    first.window.compare.opacity.setValue(80)
    menu = first.window.recent_datasets_menu
    assert [a.text() for a in menu.actions()] == [str(scenes)]
    assert len(first.window.recent_a_menu.actions()) == 2
    facts = first.window.models.facts
    assert facts.item(1, 0).text() == "onnx" and facts.item(3, 0).text() == "19"
    assert first.window.models.mappings.count() == 2
    shortcut_rows = []
    monkeypatch.setattr(
        "app.controllers.preferences.ShortcutsDialog.exec",
        lambda self: shortcut_rows.append(
            {self.table.item(r, 0).text(): self.table.item(r, 1).text() for r in range(self.table.rowCount())}
        ),
    )
    first.window.shortcuts_action.trigger()
    assert shortcut_rows and shortcut_rows[0]["Next image"] == "Right"
    first.shutdown()
    assert load_settings().opacity == pytest.approx(0.8)
    second = MainController()
    qtbot.addWidget(second.window)
    assert second.window.compare.opacity.value() == 80
    assert [a.text() for a in second.window.recent_datasets_menu.actions()] == [str(scenes)]
    second.shutdown()


def test_predictions_cached_on_disk_across_sessions(qtbot, monkeypatch, tmp_path, scenes, models) -> None:
    from app.controllers.main_controller import MainController

    monkeypatch.setenv("SEGLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "cfg"))
    results = []
    wrappers = []
    for _session in range(2):
        ctrl = MainController()
        qtbot.addWidget(ctrl.window)
        ctrl.auto_evaluate = False
        _load(qtbot, ctrl, scenes, models)
        with qtbot.waitSignal(ctrl.evaluation_finished, timeout=60_000):
            ctrl.evaluate()
        results.append([m.matrix.copy() for m in ctrl.live if m is not None])
        wrappers.append([ctrl.on_disk(p) for _, p in ctrl.active()])
        ctrl.shutdown()
    # The first session predicted every image (the display job may race the evaluation for the first
    # ones); the second predicted nothing: every image came from the disk cache, with equal results.
    assert all(w.misses >= 6 for w in wrappers[0])
    assert all(w.misses == 0 and w.hits >= 6 for w in wrappers[1])
    for first, second in zip(*results, strict=True):
        np.testing.assert_array_equal(first, second)


def test_export_report_from_the_window(qtbot, controller, scenes, models, tmp_path) -> None:
    require("fpdf")
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        controller.evaluate()
    out = tmp_path / "review.html"
    controller.tools.export_report(str(out))
    qtbot.waitUntil(lambda: "report written" in controller.window.log.toPlainText(), timeout=60_000)
    html = out.read_text(encoding="utf-8")
    assert "alpha" in html and "beta" in html and "<script" not in html.lower()
    miou = controller.live[0].scores().miou * 100
    assert f"{miou:.1f}" in html or f"{miou:.2f}" in html
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    # The A/B thumbnails came from the disk cache, not from a second inference.
    assert all(controller.on_disk(p).misses <= 8 for _, p in controller.active())


def test_thumbnails_load_lazily(qtbot, controller, scenes) -> None:
    controller.window.resize(1400, 800)
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    model = controller.window.image_list.model
    qtbot.waitUntil(lambda: len(model._thumbs) >= 1, timeout=20_000)
    icon = model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    assert icon is not None and icon.width() <= 72 and icon.height() <= 36
    # Only rows the table painted were asked for, each once.
    assert len(model._requested) <= len(controller.dataset)


def test_masks_alone_style(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    compare = controller.window.compare
    compare.set_styles(("mask",) * 3)
    assert all(
        not p.view.image_item.isVisible() and p.view.mask_item.opacity() == 1.0 for p in compare.panels
    )
    assert (
        controller.state.view.display_mode == "classes"
        and controller.state.view.panel_styles == ("mask",) * 3
    )
    compare.set_styles(("filled",) * 3)
    assert all(p.view.image_item.isVisible() and p.view.mask_item.opacity() == 0.5 for p in compare.panels)


def test_per_class_metric_choice_categories_and_delta_bars(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        controller.evaluate()
    metrics = controller.window.metrics
    scores = [m.scores() for m in controller.live]
    metrics.class_metric.setCurrentIndex(metrics.class_metric.findData("recall"))
    assert metrics.classes.horizontalHeaderItem(0).text() == "recall A"
    road = controller.scheme.names.index("road")
    assert metrics.classes.item(road, 1).text() == f"{scores[1].recall[road] * 100:.1f}"
    metrics.class_metric.setCurrentIndex(metrics.class_metric.findData("iou"))
    rows = [metrics.classes.verticalHeaderItem(r).text() for r in range(metrics.classes.rowCount())]
    assert rows[-8:] == [f"[{c}]" for c in scores[0].category_names]
    assert isinstance(metrics.classes.item(road, 2).data(Qt.ItemDataRole.UserRole), float)  # B−A bar


def test_stepping_uses_frames_rendered_ahead_and_kept(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    _load(qtbot, controller, scenes, models)
    controller.pool.wait_idle(30_000)
    rendered: list[str] = []
    lock = threading.Lock()
    render = controller.frames.render

    def counting(dataset, ref, *args, **kwargs):
        with lock:
            rendered.append(ref.key)
        return render(dataset, ref, *args, **kwargs)

    controller.frames.render = counting
    keys = [ref.key for ref in controller.dataset.refs]
    window = controller.window

    def step(action, expected: str) -> None:
        rendered.clear()
        with qtbot.waitSignal(controller.frame_shown, timeout=20_000) as shown:
            action()
        assert shown.args[0].ref.key == expected
        assert controller.pool.wait_idle(30_000)

    controller.frames.clear()
    step(lambda: controller.show_image(0), keys[0])
    assert sorted(rendered) == sorted(keys[:3])  # the image, then the next two in the background
    assert controller.frames.at_hand == 2
    step(window.next_action.trigger, keys[1])
    assert rendered == [keys[3]]  # row 1 was at hand: only the new one ahead renders
    step(window.prev_action.trigger, keys[0])
    assert rendered == []  # row 0 was kept as the one shown last
    assert controller.frames.at_hand == 1  # row 1, just left; nothing lies before row 0
    step(lambda: window.image_list.select_row(5), keys[5])
    assert rendered == [keys[5]]  # the last row: nothing ahead
    step(window.prev_action.trigger, keys[4])
    assert sorted(rendered) == sorted(keys[2:5])  # stepping back: the previous rows render ahead
    step(window.prev_action.trigger, keys[3])
    assert rendered == [keys[1]]


def test_cached_only_frames_never_run_a_model(tmp_path, scenes, models) -> None:
    from app.core.runtime.lru import LruCache
    from app.core.storage.prediction_cache import PredictionCache
    from app.evaluation.frames import compose_frame
    from app.evaluation.predictors import choose_scheme, mapping_for
    from app.evaluation.store import CachedPredictor

    dataset = open_dataset(scenes)
    ref = dataset.refs[2]
    predictor = CachedPredictor(SegmenterPredictor(load_model(models[0])), PredictionCache(tmp_path / "c"))
    scheme = choose_scheme(None, [predictor], dataset.gt_scheme)
    mapping = mapping_for(predictor.info, dataset.gt_scheme)
    memory = LruCache(max_bytes=1 << 24)

    def compose(cached_only: bool):
        return compose_frame(dataset, ref, [predictor], [mapping], scheme, memory, cached_only=cached_only)

    assert compose(True) is None
    assert predictor.misses == 0  # nothing was predicted
    full = compose(False)
    assert predictor.misses == 1 and full is not None
    memory.clear()  # only the disk cache has it now
    again = compose(True)
    assert again is not None and predictor.misses == 1
    np.testing.assert_array_equal(again.pred_class[0], full.pred_class[0])
    assert again.evals[0].miou == full.evals[0].miou


def test_a_cached_only_prefetch_the_user_reaches_is_rendered_fully(qtbot) -> None:
    from app.controllers.frame_loader import FrameLoader
    from app.controllers.workers import WorkerPool

    calls: list[tuple[str, bool]] = []
    release = threading.Event()
    lock = threading.Lock()

    def render(name: str, *, cached_only: bool = False) -> str | None:
        with lock:
            calls.append((name, cached_only))
        if cached_only:
            release.wait(10)
            return None  # "its predictions are not made yet"
        return f"frame {name}"

    pool = WorkerPool()
    loader = FrameLoader(pool, render)
    try:
        loader.prefetch([("k1", ("one",)), ("k2", ("two",))], cached_only=True)
        with qtbot.waitSignal(loader.ready, timeout=10_000) as shown:
            loader.request("k1", ("one",))  # still rendering cached-only: wait for it ...
            release.set()  # ... it finds nothing: the loader renders it for real
        assert shown.args == ["frame one"]
        assert pool.wait_idle(10_000)
        assert sorted(calls) == [("one", False), ("one", True), ("two", True)]
        assert loader.at_hand == 0  # a cached-only miss is not kept as a frame
    finally:
        pool.shutdown()


def test_verdict_quotes_the_bootstrap_interval_after_evaluate(qtbot, controller, scenes, models) -> None:
    # The interval is the finished run's paired bootstrap; an edit that re-scores an image drops it.
    controller.auto_evaluate = False
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    for slot, path in enumerate(models):
        with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
            controller.set_model(slot, path)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000) as finished:
        controller.window.evaluate_action.trigger()
    result = finished.args[0]
    assert result.analysis is not None and result.analysis.bootstrap is not None
    delta = result.analysis.bootstrap.delta_miou
    qtbot.waitUntil(lambda: "95 % CI" in controller.window.compare.verdict.text(), timeout=5_000)
    text = controller.window.compare.verdict.text()
    assert f"95 % CI {delta.low * 100:+.1f} to {delta.high * 100:+.1f}" in text
    assert "scheme trainids, original labels" in text
