"""Evaluation on a Ray cluster (`--engine ray`): the same numbers as a local run, bit for bit (confusion
matrices, per-image results, bad-file messages, the JSON but its timings), progress streamed, a killed
worker survived, cancel stopping the cluster's work, data read from a shared path or shipped as bytes,
the prediction cache written by workers, remote models called from the workers, and a real head started
with `ray start` reached through --ray-address. Select with `-m ray`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from modelzoo import make_onnx_segmenter
from ray_cluster import ray_head, without_timings

from app.cli import main
from app.core.domain.labels import LABELIDS, TRAINIDS
from app.core.io.datasets import open_dataset
from app.core.io.imageio import read_label
from app.core.scenes.generator import generate
from app.core.storage.project import Project, default_project_path
from app.evaluation.document import result_document
from app.evaluation.results import EvaluationResult, SampleOutcome
from app.evaluation.service import CachePolicy, EvaluationRequest, RayOptions, evaluate, open_session

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 synthetic Cityscapes scenes; the 4th image's file is corrupt (a bad file, reported and skipped)."""
    root = generate(tmp_path_factory.mktemp("data"), 10, size=(96, 192), seed=7)
    bad = open_dataset(root).refs[3].image_path
    bad.write_bytes(bad.read_bytes()[:200])  # truncated PNG
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("models")
    a = make_onnx_segmenter(root / "a.onnx", TRAINIDS.names, input_size=(64, 128), seed=1)
    b = make_onnx_segmenter(root / "b.onnx", TRAINIDS.names, input_size=None, seed=2, output="labels")
    return str(a), str(b)


@pytest.fixture(scope="module")
def saved(scenes: Path, models: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """Model A's masks saved as a predictions folder, one missing (a per-model error for that image)."""
    folder = tmp_path_factory.mktemp("saved")
    evaluate(EvaluationRequest(dataset=scenes, models=(models[0],), save_predictions=folder))
    files = sorted(folder.rglob("*.png"))
    files[0].unlink()
    return str(folder)


def _same(ray_run: EvaluationResult, local: EvaluationResult) -> None:
    """Every number and message of `ray_run` is the local one's."""
    assert ray_run.engine == "ray" and local.engine == "local"
    assert dict(ray_run.sample_errors) == dict(local.sample_errors)
    for r, m in zip(ray_run.models, local.models, strict=True):
        np.testing.assert_array_equal(r.matrix, m.matrix)
        assert r.matrix.dtype == np.int64
        assert list(r.images) == list(m.images) and dict(r.errors) == dict(m.errors)
        for key, image in m.images.items():
            other = r.images[key]
            np.testing.assert_array_equal(other.matrix, image.matrix)
            np.testing.assert_array_equal(other.iou, image.iou)  # NaN where undefined, in both
            np.testing.assert_equal((other.miou, other.pixel_accuracy), (image.miou, image.pixel_accuracy))
        np.testing.assert_equal(r.scores.to_dict(), m.scores.to_dict())
    assert without_timings(result_document(ray_run)) == without_timings(result_document(local))


@pytest.mark.parametrize("data", ["shared", "ship"])
def test_numbers_equal_local_exactly(ray_local: ModuleType, scenes, models, saved, data) -> None:
    request = EvaluationRequest(dataset=scenes, models=models, predictions=(saved,))
    local = evaluate(request)
    seen: list[SampleOutcome] = []
    with open_session(replace(request, engine="ray", ray=RayOptions(data=data))) as s:
        result = s.run(on_image=seen.append)
        workers = s.evaluator.engine.workers  # type: ignore[attr-defined]
    _same(result, local)
    assert [w["ships"] for w in workers] == [data == "ship"] * len(workers)
    assert [w["inference_threads"] for w in workers] == [2]  # one actor holding both CPUs of this Ray
    # Without a shared filesystem the models travel too: opened from the copy the driver sent.
    sources = [source for w in workers for source in w["models"][:2]]
    assert all(("seglens-ray-models" in s) == (data == "ship") for s in sources) and sources
    # The bad file is reported as a local run reports it, naming the driver's path (also when shipped).
    bad = open_dataset(scenes).refs[3]
    assert result.sample_errors[bad.key].startswith(str(bad.image_path))
    assert any("no prediction file matching" in e for e in result.models[2].errors.values())
    # Progress: one outcome per image, with the masks (the window and the report show them).
    assert sorted(o.index for o in seen) == list(range(10))
    good = [o for o in seen if o.sample_error is None]
    assert all(len(o.predictions) == 3 and o.predictions[0] is not None for o in good)


def test_auto_ships_bytes_to_workers_that_do_not_see_the_path(ray_local, scenes, models, monkeypatch) -> None:
    from app.evaluation import engine_ray

    # As seen from a worker on another node: the driver's file is not there.
    monkeypatch.setattr(engine_ray, "_probe", lambda refs: ("/nonexistent/seglens/probe.png", 1))
    request = EvaluationRequest(dataset=scenes, models=models, engine="ray")
    with open_session(request) as session:
        result = session.run()
        assert all(w["ships"] for w in session.evaluator.engine.workers)  # type: ignore[attr-defined]
    _same(result, evaluate(EvaluationRequest(dataset=scenes, models=models)))


def test_outcomes_leave_masks_on_workers_unless_needed_and_driver_saves(
    ray_local, scenes, models, tmp_path
) -> None:
    seen: list[SampleOutcome] = []
    request = EvaluationRequest(dataset=scenes, models=models, engine="ray", outcome_predictions=False)
    evaluate(request, on_image=seen.append)
    assert len(seen) == 10 and all(o.predictions == () for o in seen)
    # Saving needs them: the driver writes the files, exactly as a local run does.
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    evaluate(EvaluationRequest(dataset=scenes, models=models, save_predictions=local_dir))
    evaluate(replace(request, save_predictions=ray_dir))
    local_files = sorted(p.relative_to(local_dir) for p in local_dir.rglob("*.png"))
    assert local_files and local_files == sorted(p.relative_to(ray_dir) for p in ray_dir.rglob("*.png"))
    for rel in local_files:
        assert (local_dir / rel).read_bytes() == (ray_dir / rel).read_bytes()


def test_a_killed_worker_is_restarted_and_the_run_completes(ray_local, scenes, models) -> None:
    request = EvaluationRequest(dataset=scenes, models=models, engine="ray")
    killed: list[int] = []
    with open_session(request) as session:
        engine = session.evaluator.engine

        def kill_once(outcome: SampleOutcome) -> None:
            if not killed:
                pid = engine.workers[0]["pid"]  # type: ignore[attr-defined]
                os.kill(pid, signal.SIGKILL)  # the actor process this run started
                killed.append(pid)

        result = session.run(on_image=kill_once)
    assert killed and not _alive(killed[0])
    assert result.images_done == 9 and len(result.sample_errors) == 1 and not result.cancelled
    _same(result, evaluate(EvaluationRequest(dataset=scenes, models=models)))


def test_workers_dying_for_good_are_replaced_and_no_image_is_lost(ray_local, scenes, models) -> None:
    """After the first outcome the actor is killed for good (no Ray restart), then each replacement as soon
    as it exists, four deaths in all: the images caught in three of them are reported as skipped (not
    lost, no hang), the rest are evaluated on the fourth actor with the local numbers."""
    kills: list[object] = []
    first = threading.Event()

    def killer(engine: object) -> None:
        deadline = time.monotonic() + 60
        first.wait(60)
        while len(kills) < 4 and time.monotonic() < deadline:
            slots = engine.pool.slots if engine.pool is not None else []  # type: ignore[attr-defined]
            if slots and all(slots[0].actor is not killed for killed in kills):
                ray_local.kill(slots[0].actor, no_restart=True)
                kills.append(slots[0].actor)
            time.sleep(0.01)

    with open_session(EvaluationRequest(dataset=scenes, models=models, engine="ray")) as session:
        thread = threading.Thread(target=killer, args=(session.evaluator.engine,))
        thread.start()
        try:
            result = session.run(on_image=lambda _o: first.set())
        finally:
            first.set()
            thread.join(timeout=70)
    local = evaluate(EvaluationRequest(dataset=scenes, models=models))
    assert len(kills) == 4 and not result.cancelled
    died = {k: v for k, v in result.sample_errors.items() if k not in local.sample_errors}
    assert 1 <= len(died) <= 3  # the images in flight at the first death (depth 3 per actor)
    assert all(v.endswith("the Ray worker evaluating this image died 3 times") for v in died.values())
    for r, m in zip(result.models, local.models, strict=True):
        assert set(r.images) | set(died) == set(m.images)  # every image: evaluated or reported
        for key, image in r.images.items():
            np.testing.assert_array_equal(image.matrix, m.images[key].matrix)


def test_cancel_stops_the_cluster_work(ray_local, scenes, models) -> None:
    cancel = threading.Event()
    with open_session(EvaluationRequest(dataset=scenes, models=models, engine="ray")) as session:
        result = session.run(on_image=lambda _o: cancel.set(), cancel=cancel)
        pids = [w["pid"] for w in session.evaluator.engine.workers]  # type: ignore[attr-defined]
    assert result.cancelled and result.images_done < 10
    assert "cancelled after" in result.basis()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids), "the actors kept running after cancel"


def test_edited_ground_truth_and_cache_written_by_workers(ray_local, models, tmp_path) -> None:
    root = generate(tmp_path / "data", 4, size=(96, 192), seed=5)
    ref = open_dataset(root).refs[0]
    mask, _ = read_label(ref.gt_path, LABELIDS, None)
    with Project.open_or_create(default_project_path(root), root) as project:
        project.save_edit(ref, np.where(mask == 7, 8, mask).astype(np.uint8))
    cache = CachePolicy(use=True, folder=tmp_path / "cache")  # a path every worker sees
    request = EvaluationRequest(dataset=root, models=models, ground_truth="edited", cache=cache, engine="ray")
    first = evaluate(request)
    assert first.ground_truth.edited_images == 1
    assert [(m.cache.hits, m.cache.misses) for m in first.models if m.cache] == [(0, 4), (0, 4)]
    assert len(list((tmp_path / "cache").rglob("*.labels"))) == 8  # written by the workers
    again = evaluate(request)
    assert [(m.cache.hits, m.cache.misses) for m in again.models if m.cache] == [(4, 0), (4, 0)]
    local = evaluate(replace(request, engine="local", cache=CachePolicy()))
    for r, m in zip(again.models, local.models, strict=True):
        np.testing.assert_array_equal(r.matrix, m.matrix)
    assert first.models[0].images[ref.key].miou == local.models[0].images[ref.key].miou


def test_remote_models_are_called_from_the_workers(ray_local, scenes, models, tmp_path) -> None:
    pytest.importorskip("fastapi")
    from servers import serve_app

    from app.inference.backends.onnx_backend import OnnxSegmenter
    from app.server.app import create_app

    local_model = OnnxSegmenter(Path(models[0]))
    with serve_app(create_app({"a": local_model})) as url:
        manifest = tmp_path / "hosted.json"
        manifest.write_text(json.dumps({"name": "hosted", "kind": "rest", "url": url}), encoding="utf-8")
        request = EvaluationRequest(dataset=scenes, models=(str(manifest),), workers=2)
        local = evaluate(request)
        with open_session(replace(request, engine="ray")) as session:
            remote = session.run()
            workers = session.evaluator.engine.workers  # type: ignore[attr-defined]
    local_model.close()
    assert len(workers) == 2  # one CPU each: the model runs on the server
    _same(remote, local)


def test_missing_extra_names_the_install_command(scenes, models, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code = main(["evaluate", "--dataset", str(scenes), "--model", models[0], "--engine", "ray", "-q"])
    assert code == 2 and "pip install -e '.[ray]'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_head_through_ray_address(scenes, models, tmp_path) -> None:
    """`ray start --head` on 127.0.0.1, the CLI pointed at it: the JSON is the local one but its timings."""
    pytest.importorskip("ray")
    base = [sys.executable, "-m", "app", "evaluate", "--dataset", str(scenes), "-q"]
    base += ["--model", models[0], "--model", models[1]]
    local, remote = tmp_path / "local.json", tmp_path / "ray.json"
    subprocess.run([*base, "--json", str(local)], check=True, timeout=120, capture_output=True)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with ray_head(tmp_path / "head.log") as address:
        run = subprocess.run(
            [*base, "--json", str(remote), "--engine", "ray", "--ray-address", address, "--ray-data", "ship"],
            timeout=180,
            capture_output=True,
            text=True,
            env=env,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    bad = open_dataset(scenes).refs[3]
    assert f"skipped: {bad.image_path}" in run.stderr  # the bad file reported as locally
    ray_doc, local_doc = json.loads(remote.read_text()), json.loads(local.read_text())
    assert ray_doc["engine"] == "ray" and without_timings(ray_doc) == without_timings(local_doc)


def _without_run_facts(document: dict) -> dict:
    """A report's or gate's JSON without what describes the run rather than the models: when, the command
    line, seconds, memory, and the verdict's latency sentence."""
    report = document.get("report")
    if isinstance(report, dict):
        for key in ("created", "settings", "memory_rss_bytes"):
            report.pop(key, None)
        report["verdict"] = [line for line in report.get("verdict", []) if "latency" not in line]
    document.pop("seconds", None)
    return document


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_report_and_gate_on_ray_write_the_local_json(ray_local, scenes, models, tmp_path, capsys) -> None:
    from app.gate import main as gate_main
    from app.report.cli import main as report_main

    base = ["--dataset", str(scenes), "-q", "--no-cache"]
    docs = {}
    for engine in ("local", "ray"):
        report, gate = tmp_path / f"report-{engine}.json", tmp_path / f"gate-{engine}.json"
        args = ["--engine", engine]
        assert (
            report_main([*base, *args, "--model", models[0], "--model", models[1], "--json", str(report)])
            == 0
        )
        rules = ["--max-miou-drop", "100", "--max-class-drop", "100", "--max-skipped", "1"]  # one bad image
        code = gate_main(
            [*base, *args, "--reference", models[0], "--candidate", models[1], "--json", str(gate), *rules]
        )
        assert code == 0
        docs[engine] = [_without_run_facts(json.loads(p.read_text())) for p in (report, gate)]
    assert docs["ray"][0]["engine"] == "ray"
    assert without_timings(docs["ray"]) == without_timings(docs["local"])
    # A --ray-* option without --engine ray is refused rather than silently ignored.
    assert main(["evaluate", "--dataset", str(scenes), "--model", models[0], "--ray-address", "x:1"]) == 2
    assert "need --engine ray" in capsys.readouterr().err


def test_custom_scheme_folder_on_ray_equals_local(ray_local, tmp_path) -> None:
    """A plain folder in a custom class scheme: the scheme travels to the workers (built-in schemes are
    compared by identity, custom ones stay one object per run) and the JSON is the local one."""
    from modelzoo import centroids_from_colors
    from test_custom_scheme import COLORS, NAMES, _folder

    data = _folder(tmp_path / "data", count=4)
    scheme = tmp_path / "fruit-classes.json"  # not fruit.json: that would be the model's manifest
    classes = [{"name": n, "color": list(c)} for n, c in zip(NAMES, COLORS, strict=True)]
    scheme.write_text(json.dumps({"name": "fruit", "classes": classes}), encoding="utf-8")
    model = make_onnx_segmenter(
        tmp_path / "fruit.onnx",
        [NAMES[i] for i in (2, 0, 1)],
        input_size=None,
        weights="centroid",
        centroids=centroids_from_colors([COLORS[i] for i in (2, 0, 1)]),
        downsample=1,
    )
    docs = []
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.json"
        args = ["evaluate", "--dataset", str(data), "--gt-scheme", str(scheme), "--model", str(model)]
        assert main([*args, "--json", str(out), "-q", "--engine", engine]) == 0
        docs.append(json.loads(out.read_text()))
    assert docs[1]["scheme"] == "custom:fruit" and docs[1]["engine"] == "ray"
    assert without_timings(docs[1]) == without_timings(docs[0])


@pytest.mark.parametrize(
    ("local", "cpus", "workers", "expected"),
    [
        (True, None, 2, (4, 4, 2, 3)),  # 16 CPUs: four actors of 4 CPUs (= onnxruntime threads)
        (True, 1, 2, (10, 1, 2, 3)),  # one CPU each, but never more actors than images
        (False, None, 3, (10, 1, 3, 4)),  # hosted models: one CPU and --workers lanes per actor
    ],
)
def test_plan_sizes_actors_to_the_cluster(scenes, models, local, cpus, workers, expected) -> None:
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from app.evaluation.engine_ray import RayEngine

    request = EvaluationRequest(
        dataset=scenes, models=models, workers=workers, ray=RayOptions(cpus_per_worker=cpus)
    )
    plan = RayEngine(request).plan(SimpleNamespace(local=local), cluster_cpus=16, images=10)  # type: ignore[arg-type]
    assert (plan.actors, plan.cpus, plan.concurrency, plan.depth) == expected
