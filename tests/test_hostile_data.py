"""Hostile datasets, ground truth, gate runs, projects and remote answers.

Listing: every image without labels says why, non-regular files are skipped with a message and never
opened (a FIFO would block for ever). Palette PNGs are read by colour or refused, never silently by index.
The gate lists every skipped image and fails an incomplete evaluation. A project is locked to one process,
a damaged one is refused and left untouched, stale temporary files are cleaned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request  # the Open Inference Protocol v2 server below (the 'server' extra)
from fastapi.responses import Response
from hostile_files import gt_files, image_files, palette_label, seglens
from modelzoo import centroids_from_colors, make_onnx_segmenter
from servers import serve_app

from app.core.domain.errors import InputError
from app.core.domain.labels import LABELIDS, TRAINIDS
from app.core.io.datasets import open_dataset
from app.core.io.fileutil import clean_stale_temps, printable, safe_file_name
from app.core.io.imageio import read_label
from app.core.scenes.generator import generate
from app.core.storage.project import Project, ProjectInUseError, default_project_path
from app.core.storage.project_lock import lock_path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("scenes") / "cityscapes", 4, (64, 128), seed=7)


@pytest.fixture
def dataset(scenes: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(scenes, tmp_path / "cityscapes"))


@pytest.fixture(scope="module")
def centroid_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that labels the synthetic scenes well (nearest class colour): wrong GT shows in its mIoU."""
    return make_onnx_segmenter(
        tmp_path_factory.mktemp("model") / "centroid.onnx", TRAINIDS.names, weights="centroid",
        centroids=centroids_from_colors(TRAINIDS.colors), downsample=2, input_size=None,
    )  # fmt: skip


def evaluate_json(dataset: Path, model: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = seglens("evaluate", "--dataset", dataset, "--model", model, "--json", out, "-q")
    return proc, json.loads(out.read_text()) if out.exists() else {}


# --- listing: why an image has no labels ----------------------------------------------------------------


def test_a_folder_named_like_a_label_is_a_reason(dataset: Path, tmp_path: Path, centroid_model) -> None:
    label = gt_files(dataset)[0]
    label.unlink()
    label.mkdir()  # a folder called *_gtFine_labelIds.png
    proc, doc = evaluate_json(dataset, centroid_model, tmp_path / "o.json")
    assert proc.returncode == 0
    assert f"{label} is a folder, not a label file" in proc.stderr
    assert any("is a folder" in why for why in doc["images_without_labels"].values())


def test_an_unreadable_gtfine_city_folder_is_a_reason(dataset: Path, tmp_path: Path, centroid_model) -> None:
    city = gt_files(dataset)[0].parent
    shutil.rmtree(city)
    city.write_text("")  # cannot be listed (ENOTDIR), as a folder without permissions cannot
    proc, doc = evaluate_json(dataset, centroid_model, tmp_path / "o.json")
    assert proc.returncode == 0
    assert f"cannot read the folder {city}" in proc.stderr
    reasons = doc["images_without_labels"]
    assert reasons and all(f"cannot read the folder {city}" in why for why in reasons.values())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder without permissions")
def test_a_gtfine_city_folder_without_permissions_is_a_reason(dataset: Path) -> None:
    city = gt_files(dataset)[0].parent
    city.chmod(0)
    try:
        missing = open_dataset(dataset).missing_labels()
    finally:
        city.chmod(0o755)
    assert missing and all("cannot read the folder" in why for why in missing.values())


def test_a_missing_label_is_a_reason(dataset: Path) -> None:
    label = gt_files(dataset)[1]
    label.unlink()
    missing = open_dataset(dataset).missing_labels()
    assert list(missing.values()) == [f"no {label.name} in {label.parent}"]


def test_a_plain_folder_without_masks_says_so(tmp_path: Path, scenes: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "masks").mkdir(parents=True)
    shutil.copy(image_files(scenes)[0], folder / "a.png")
    shutil.copy(image_files(scenes)[1], folder / "b.png")
    shutil.copy(gt_files(scenes)[0], folder / "masks" / "a_mask.png")
    missing = open_dataset(folder).missing_labels()
    assert list(missing) == ["b"] and "no mask named b[_mask|_label|_gt|_labelIds]" in missing["b"]


def test_a_fifo_image_is_skipped_with_a_message_never_opened(
    dataset: Path, tmp_path: Path, centroid_model
) -> None:
    fifo = image_files(dataset)[0].parent / "zz_000000_000001_leftImg8bit.png"
    os.mkfifo(fifo)
    proc, doc = evaluate_json(dataset, centroid_model, tmp_path / "o.json")  # must not block
    assert proc.returncode == 0
    assert f"{fifo}: not a regular file" in proc.stderr
    assert doc["models"][0]["images_evaluated"] == 4


def test_a_fifo_label_is_a_reason_never_opened(dataset: Path) -> None:
    label = gt_files(dataset)[0]
    label.unlink()
    os.mkfifo(label)
    missing = open_dataset(dataset).missing_labels()
    assert list(missing.values()) == [
        f"{label} is not a regular file (a FIFO, socket, device or broken link): not opened"
    ]


def test_a_fifo_in_a_predictions_folder_does_not_hang(dataset: Path, tmp_path: Path) -> None:
    preds = tmp_path / "preds"
    preds.mkdir()
    for label in gt_files(dataset)[1:]:
        shutil.copy(label, preds / label.name)
    os.mkfifo(preds / gt_files(dataset)[0].name)
    out = tmp_path / "o.json"
    proc = seglens("evaluate", "--dataset", dataset, "--predictions", preds, "--json", out, "-q", timeout=30)
    assert proc.returncode == 0
    assert (
        f"{preds}: no prediction file matching '{gt_files(dataset)[0].name.split('_gtFine')[0]}"
        in proc.stderr
    )
    assert json.loads(out.read_text())["models"][0]["images_evaluated"] == 3


def test_reading_a_fifo_directly_is_refused_not_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "label.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is not a regular file"):
        read_label(fifo, LABELIDS)


# --- palette-mode ground truth ----------------------------------------------------------------------------


def _cityscapes_colours_shuffled(ids: np.ndarray, path: Path) -> Path:
    """The labelIds map saved as palette indices 0..k with the Cityscapes colour of each id at its index:
    the index is not the id, only the colour says which class it is."""
    present = np.unique(ids)
    remap = np.zeros(256, dtype=np.uint8)
    remap[present] = np.arange(present.size)[::-1]
    palette = [LABELIDS.colors[int(v)] for v in present[::-1]]
    return palette_label(path, remap[ids], palette)


def test_palette_gt_with_cityscapes_colours_at_other_indices_read_by_colour(
    dataset: Path, tmp_path, centroid_model
) -> None:
    evaluate_json(dataset, centroid_model, tmp_path / "grey.json")
    grey = json.loads((tmp_path / "grey.json").read_text())["models"][0]["metrics"]["miou"]
    for label in gt_files(dataset):
        ids, _ = read_label(label, LABELIDS)
        _cityscapes_colours_shuffled(ids, label)
    assert read_label(gt_files(dataset)[0], LABELIDS)[1][0].startswith("palette label read by colour")
    _, doc = evaluate_json(dataset, centroid_model, tmp_path / "palette.json")
    assert doc["models"][0]["metrics"]["miou"] == pytest.approx(grey)  # not 57 % of pixels wrong


def test_palette_gt_with_unknown_colours_refused_naming_it(
    dataset: Path, tmp_path: Path, centroid_model
) -> None:
    label = gt_files(dataset)[0]
    ids, _ = read_label(label, LABELIDS)
    palette_label(label, ids, [((i * 37) % 256, (i * 91) % 256, 5) for i in range(256)])
    proc, doc = evaluate_json(dataset, centroid_model, tmp_path / "o.json")
    assert proc.returncode == 0
    assert (
        f"{label}: palette label whose colours are neither its indices nor the labelids colours"
        in proc.stderr
    )
    assert len(doc["sample_errors"]) == 1


def test_palette_gt_with_a_grey_identity_palette_read_by_index(tmp_path: Path) -> None:
    ids = np.array([[7, 8], [11, 26]], dtype=np.uint8)
    path = palette_label(tmp_path / "l.png", ids, [(i, i, i) for i in range(256)])
    out, notes = read_label(path, LABELIDS)
    np.testing.assert_array_equal(out, ids)
    assert notes == ()


# --- the gate: an incomplete evaluation fails, every skipped file listed ------------------------------------


def _damage_labels(root: Path, count: int) -> list[Path]:
    damaged = gt_files(root)[:count]
    for label in damaged:
        label.write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
    return damaged


def test_gate_fails_when_3_of_4_label_files_are_unreadable(
    dataset: Path, tmp_path: Path, centroid_model
) -> None:
    damaged = _damage_labels(dataset, 3)
    junit = tmp_path / "gate.xml"
    proc = seglens("gate", "--dataset", dataset, "--reference", centroid_model, "--candidate", centroid_model,
                   "--junit", junit, "-q")  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  skipped images: 3 of 4 images skipped (max 0)" in proc.stdout
    xml = junit.read_text()
    for label in damaged:
        assert str(label) in proc.stdout and str(label) in xml
    case = next(c for c in ET.parse(junit).iter("testcase") if c.get("name") == "skipped images")
    assert case.find("failure") is not None


def test_gate_max_skipped_allows_a_known_gap_and_still_lists_it(
    dataset: Path, tmp_path: Path, centroid_model
) -> None:
    damaged = _damage_labels(dataset, 1)
    junit = tmp_path / "gate.xml"
    proc = seglens("gate", "--dataset", dataset, "--reference", centroid_model, "--candidate", centroid_model,
                   "--junit", junit, "--max-skipped", "1", "-q")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  skipped images: 1 of 4 images skipped (max 1)" in proc.stdout
    case = next(c for c in ET.parse(junit).iter("testcase") if c.get("name") == "skipped images")
    assert str(damaged[0]) in (case.findtext("system-out") or "")


def test_gate_lists_images_without_labels_as_skipped(dataset: Path, tmp_path: Path, centroid_model) -> None:
    label = gt_files(dataset)[2]
    label.unlink()
    proc = seglens(
        "gate", "--dataset", dataset, "--reference", centroid_model, "--candidate", centroid_model, "-q"
    )
    assert proc.returncode == 1
    assert f"no labels: no {label.name} in {label.parent}" in proc.stdout


# --- projects: one process at a time, damaged ones refused, stale temporaries cleaned --------------------

_HOLDER = (
    "import sys\n"
    "from app.core.storage.project import Project\n"
    "project = Project.open(sys.argv[1])\n"
    "print('open', flush=True)\n"
    "sys.stdin.read()\n"
    "project.close()\n"
)


@pytest.fixture
def project_file(dataset: Path) -> Iterator[Path]:
    path = default_project_path(dataset)
    Project.create(path, dataset).close()
    yield path


def test_a_project_open_in_another_process_is_refused_naming_it(project_file: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(project_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ProjectInUseError, match=rf"in use by process {holder.pid} \(started \d{{4}}-"):
            Project.open(project_file)
    finally:
        holder.communicate("", timeout=30)
    with Project.open(project_file) as project:  # released on close
        assert project.path == project_file


def test_a_stale_lock_of_a_dead_process_is_taken_over(project_file: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock_path(project_file).write_text(f"{dead.stdout.strip()}\n{time.time() - 3600}\nsomehost")
    with Project.open(project_file) as project:
        assert lock_path(project_file).read_text().split("\n")[0] == str(os.getpid())
        project.add_flag("checked")
    assert not lock_path(project_file).exists()


def test_a_killed_holder_leaves_a_lock_that_is_taken_over(project_file: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(project_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    holder.kill()  # SIGKILL: no cleanup runs, the lock file stays
    holder.wait(timeout=30)
    assert lock_path(project_file).exists()
    Project.open(project_file).close()


def test_a_damaged_project_is_refused_and_never_replaced(dataset: Path) -> None:
    path = default_project_path(dataset)
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = path.read_bytes()
    with pytest.raises(InputError, match="damaged project database"):
        Project.open(path)
    with pytest.raises(InputError):
        Project.open_or_create(path, dataset)
    assert path.read_bytes() == before
    assert not lock_path(path).exists()


def test_stale_temp_files_are_cleaned_on_open_only_ours_only_old(project_file: Path) -> None:
    folder = project_file.parent
    old = folder / ".seglens-project.sqlite.k3j9x_2a.tmp"
    young = folder / ".per_class.csv.ab12cd34.tmp"
    foreign = folder / "notes.tmp"
    for path in (old, young, foreign):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    Project.open(project_file).close()
    assert not old.exists() and young.exists() and foreign.exists()
    assert clean_stale_temps(folder, min_age_s=0.0) == 1 and not young.exists() and foreign.exists()


# --- names and small helpers ------------------------------------------------------------------------------


def test_safe_file_names_stay_distinct_and_short() -> None:
    long_a, long_b = "a" * 300 + "1", "a" * 300 + "2"
    short_a, short_b = safe_file_name(long_a, ".png"), safe_file_name(long_b, ".png")
    assert short_a != short_b and len(short_a.encode()) <= 200 and short_a.endswith(".png")
    assert safe_file_name("x/../y") == "x_.._y"
    assert printable(os.fsdecode(b"caf\xe9")) == "caf%E9"


# --- remote: NaN scores from an Open Inference Protocol v2 server ------------------------------------------


def test_nan_scores_from_a_v2_server_are_errors(dataset: Path, tmp_path: Path) -> None:
    app = FastAPI()
    metadata = {"name": "seg", "platform": "test",
                "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, -1, -1, 3]}],
                "outputs": [{"name": "scores", "datatype": "FP32", "shape": [1, 19, -1, -1]}]}  # fmt: skip

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/seg")
    def meta() -> dict:
        return metadata

    @app.post("/v2/models/seg/infer")
    async def infer(request: Request) -> Response:
        await request.body()
        scores = np.zeros((1, 19, 8, 16), dtype=np.float32)
        scores[0, :, :4] = np.nan  # half of the map
        body = {
            "model_name": "seg",
            "outputs": [
                {
                    "name": "scores",
                    "datatype": "FP32",
                    "shape": [1, 19, 8, 16],
                    "data": scores.ravel().tolist(),
                }
            ],
        }
        return Response(json.dumps(body, allow_nan=True), media_type="application/json")

    with serve_app(app) as url:
        manifest = tmp_path / "remote.json"
        manifest.write_text(json.dumps({"name": "remote", "kind": "v2", "url": url, "scheme": "trainids",
                                        "options": {"model": "seg"}}))  # fmt: skip
        out = tmp_path / "o.json"
        proc = seglens("evaluate", "--dataset", dataset, "--model", manifest, "--json", out, "-q")
    assert proc.returncode == 1, proc.stderr
    assert (
        "/v2/models/seg/infer: the model's class scores hold 1216 of 2432 values that are NaN" in proc.stderr
    )
    assert json.loads(out.read_text())["models"][0]["images_evaluated"] == 0


def test_stale_temp_files_of_the_prediction_cache_are_cleaned(tmp_path: Path) -> None:
    from app.core.storage.prediction_cache import PredictionCache

    root = tmp_path / "cache"
    root.mkdir()
    stale = root / ".0123abcd.png.x1y2z3w4.tmp"
    stale.write_bytes(b"torn")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    PredictionCache(root, 1 << 20)
    assert not stale.exists()


def test_a_250_byte_output_name_is_written_atomically(tmp_path: Path) -> None:
    from app.core.io.fileutil import atomic_write_text

    target = tmp_path / ("r" * 245 + ".json")  # the temporary name beside it must still fit in 255 bytes
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_gate_with_every_label_unreadable_is_an_error_listing_them(
    dataset: Path, tmp_path: Path, centroid_model
) -> None:
    damaged = _damage_labels(dataset, 4)
    junit = tmp_path / "gate.xml"
    proc = seglens("gate", "--dataset", dataset, "--reference", centroid_model, "--candidate", centroid_model,
                   "--junit", junit, "-q")  # fmt: skip
    assert proc.returncode == 2
    error = ET.parse(junit).find(".//error")
    assert error is not None and error.text is not None
    for label in damaged:
        assert "skipped " in proc.stderr and str(label) in proc.stderr and str(label) in error.text


def test_an_output_file_that_is_a_fifo_is_refused_not_opened(tmp_path: Path) -> None:
    from app.core.io.fileutil import check_output_file

    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)  # writing the JSON into it would block until a reader came
    with pytest.raises(InputError, match="is not a regular file"):
        check_output_file(fifo, "JSON file")


def test_a_fifo_in_a_plain_folder_is_a_listing_note(tmp_path: Path, scenes: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copy(image_files(scenes)[0], folder / "a.png")
    os.mkfifo(folder / "b.png")
    listed = open_dataset(folder)
    assert [r.key for r in listed.refs] == ["a"]
    assert listed.notes == (
        f"{folder / 'b.png'}: not a regular file (a FIFO, socket, device or broken link), skipped",
    )
