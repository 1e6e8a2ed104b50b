"""The Hugging Face backend and exporter on tiny real transformers checkpoints (random weights, built and
saved by tests/hf_models.py, never fetched): preprocessing and labels against the HF image processors,
pickle refusal, sliding-window inference, the registry, threads, export fidelity and lazy imports."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from app.core.domain.errors import ModelLoadError, PredictError
from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import render_scene

torch = require("torch")
transformers = require("transformers")
import hf_models  # noqa: E402

from app.inference.backends.hf_backend import HfSegmenter, Sliding  # noqa: E402
from app.inference.registry import load_model  # noqa: E402
from app.inference.tools.export_hf import export_hf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = (64, 128)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_scene(0, size=SIZE).image


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory) -> Path:
    return hf_models.save_segformer(tmp_path_factory.mktemp("segformer"), size=SIZE)


@pytest.fixture(scope="module")
def mobilevit_dir(tmp_path_factory) -> Path:
    return hf_models.save_mobilevit(tmp_path_factory.mktemp("mobilevit"))


@pytest.fixture(scope="module")
def mask2former_dir(tmp_path_factory) -> Path:
    # transformers builds Mask2Former's training loss in __init__, and that loss imports scipy (Hungarian
    # matching): without scipy no Mask2Former can be instantiated at all, ours included.
    require("scipy")  # in the hf extra
    return hf_models.save_mask2former(tmp_path_factory.mktemp("mask2former"))


@pytest.fixture(scope="module")
def segformer(segformer_dir):
    model = load_model(segformer_dir)
    yield model
    model.close()


def processor_for(directory: Path):
    # The PIL image processors are the reference (the torchvision ones resize differently on purpose).
    auto = transformers.AutoImageProcessor
    return auto.from_pretrained(str(directory), local_files_only=True, backend="pil")


def hf_reference(directory: Path, model, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixel_values, labels) the HF processor + model give for `image` at its own size."""
    processor = processor_for(directory)
    pixel_values = processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        outputs = model.torch_model(pixel_values=pixel_values)
    labels = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0]
    return pixel_values.numpy(), labels.numpy()


# --- equality with the HF processors ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["segformer_dir", "mobilevit_dir", "mask2former_dir"])
@pytest.mark.parametrize("size", [SIZE, (90, 150)], ids=["64x128", "90x150"])
def test_preprocessing_and_labels_equal_hf_processor(request, name, size):
    directory = request.getfixturevalue(name)
    image = render_scene(1, size=size).image
    model = load_model(directory)
    try:
        pixel_values, expected = hf_reference(directory, model, image)
        np.testing.assert_array_equal(model.prepare(image), pixel_values)
        labels = model.predict(image).labels
        assert labels.shape == size and labels.dtype == np.uint8
        assert len(np.unique(labels)) >= 3, "a near-constant prediction would make this comparison weak"
        np.testing.assert_array_equal(labels, expected)
    finally:
        model.close()


def test_segformer_info_from_config(segformer_dir, segformer):
    info = segformer.info
    assert info.backend == "hf" and info.source == str(segformer_dir)
    assert info.class_names == TRAINIDS.names and info.scheme == "trainids"
    assert (info.input.height, info.input.width, info.input.resize) == (*SIZE, "fixed")
    assert info.input.mean == pytest.approx((0.485, 0.456, 0.406))
    assert info.extra["weights"] == "safetensors" and info.extra["model_type"] == "segformer"
    assert info.file_size == (segformer_dir / "model.safetensors").stat().st_size
    expected = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        content = hashlib.sha256((segformer_dir / name).read_bytes()).hexdigest()
        expected.update(f"{name}\0{content}\n".encode())
    assert info.digest == expected.hexdigest()


def test_mobilevit_reads_bgr_and_shortest_edge(mobilevit_dir, image):
    model = HfSegmenter(mobilevit_dir)
    try:
        assert model.info.input.channel_order == "BGR" and model.info.input.resize == "any"
        assert model.prepare(image).shape == (1, 3, 48, 96)  # shortest edge 48, aspect kept
    finally:
        model.close()


def test_custom_class_names_give_custom_scheme_and_new_digest(tmp_path, segformer_dir, segformer):
    copy = shutil.copytree(segformer_dir, tmp_path / "renamed")
    config = json.loads((copy / "config.json").read_text())
    config["id2label"]["0"] = "tarmac"
    (copy / "config.json").write_text(json.dumps(config))
    model = load_model(copy)
    try:
        assert model.info.class_names[0] == "tarmac" and model.info.scheme == "custom:renamed"
        assert model.info.digest != segformer.info.digest
    finally:
        model.close()


# --- weights safety -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pickle_dir(tmp_path_factory, segformer_dir) -> Path:
    directory = tmp_path_factory.mktemp("pickle") / "ckpt"
    shutil.copytree(segformer_dir, directory)
    auto = transformers.AutoModelForSemanticSegmentation
    model = auto.from_pretrained(str(directory), local_files_only=True)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    return directory


def test_pickle_only_checkpoint_is_refused(pickle_dir):
    with pytest.raises(ModelLoadError, match="allow_pickle") as caught:
        load_model(pickle_dir)
    assert "pytorch_model.bin" in str(caught.value)


def test_pickle_checkpoint_opens_with_manifest_opt_in(pickle_dir, segformer, image):
    manifest = pickle_dir.parent / "opt-in.json"
    manifest.write_text(json.dumps({"kind": "hf", "path": "ckpt", "options": {"allow_pickle": True}}))
    model = load_model(manifest)
    try:
        assert model.info.extra["weights"].startswith("pickle") and model.info.name == "ckpt"
        np.testing.assert_array_equal(model.predict(image).labels, segformer.predict(image).labels)
    finally:
        model.close()


# --- sliding window -----------------------------------------------------------------------------------------


def sliding_model(directory: Path, crop, stride) -> HfSegmenter:
    manifest = directory.parent / f"{directory.name}-sliding.json"
    options = {"inference": "sliding", "crop": crop, "stride": stride}
    manifest.write_text(json.dumps({"kind": "hf", "path": directory.name, "options": options}))
    return load_model(manifest)


@pytest.mark.parametrize("crop", [[64, 128], [128, 256]], ids=["exact", "larger"])
def test_sliding_equals_resize_when_the_crop_covers_the_image(segformer_dir, segformer, image, crop):
    model = sliding_model(segformer_dir, crop, [32, 64])
    try:
        assert model.info.extra["inference"].startswith("sliding")
        np.testing.assert_array_equal(model.predict(image).labels, segformer.predict(image).labels)
    finally:
        model.close()


def test_sliding_windows_follow_mmseg_and_cover_every_pixel():
    windows = list(Sliding((1024, 1024), (768, 768)).windows(1024, 2048))
    assert windows == [(0, 1024, 0, 1024), (0, 1024, 768, 1792), (0, 1024, 1024, 2048)]
    for crop, stride, shape in [((40, 48), (24, 40), (64, 128)), ((17, 33), (5, 7), (50, 61))]:
        count = np.zeros(shape, dtype=int)
        for y1, y2, x1, x2 in Sliding(crop, stride).windows(*shape):
            assert (y2 - y1, x2 - x1) == crop
            count[y1:y2, x1:x2] += 1
        assert count.min() >= 1


def test_sliding_matches_an_independent_slide_inference(segformer_dir, image):
    """Windows smaller than the image: per-window HF logits upsampled to the window, averaged, argmax."""
    crop, stride = (40, 48), (24, 40)
    processor = processor_for(segformer_dir)
    model = sliding_model(segformer_dir, list(crop), list(stride))
    try:
        pixels = processor(images=image, do_resize=False, return_tensors="pt")["pixel_values"]
        total = torch.zeros((19, *SIZE))
        count = torch.zeros(SIZE)
        for y1, y2, x1, x2 in Sliding(crop, stride).windows(*SIZE):
            with torch.inference_mode():
                logits = model.torch_model(pixel_values=pixels[:, :, y1:y2, x1:x2]).logits
            total[:, y1:y2, x1:x2] += torch.nn.functional.interpolate(
                logits, size=crop, mode="bilinear", align_corners=False
            )[0]
            count[y1:y2, x1:x2] += 1
        expected = (total / count).argmax(dim=0).numpy()
        labels = model.predict(image).labels
        assert len(np.unique(expected)) >= 3
        np.testing.assert_array_equal(labels, expected)
    finally:
        model.close()


# --- registry, options, threads, lifecycle ------------------------------------------------------------------


def test_registry_refuses_folders_that_are_not_checkpoints(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model(tmp_path)


def test_unknown_option_is_refused(segformer_dir):
    manifest = segformer_dir.parent / "bad.json"
    manifest.write_text(json.dumps({"kind": "hf", "path": segformer_dir.name, "options": {"tile": 3}}))
    with pytest.raises(ModelLoadError, match="unknown hf option"):
        load_model(manifest)


def test_manifest_input_size_overrides_the_processor(segformer_dir, image):
    manifest = segformer_dir.parent / "size.json"
    manifest.write_text(json.dumps({"kind": "hf", "path": segformer_dir.name, "input_size": [32, 64]}))
    model = load_model(manifest)
    try:
        assert model.prepare(image).shape == (1, 3, 32, 64)
        assert model.predict(image).labels.shape == SIZE
    finally:
        model.close()


def test_predict_from_two_threads_equals_serial(segformer):
    images = [render_scene(i, size=SIZE).image for i in range(6)]
    serial = [segformer.predict(img).labels for img in images]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(lambda img: segformer.predict(img).labels, images))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_close_is_idempotent_and_predict_after_close_fails(segformer_dir, image):
    model = load_model(segformer_dir)
    model.close()
    model.close()
    with pytest.raises(PredictError, match="closed"):
        model.predict(image)


# --- export -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fuse", [False, True], ids=["logits", "fused"])
def test_export_fidelity_and_exported_model_loads(tmp_path, segformer_dir, segformer, fuse):
    images = [render_scene(i, size=SIZE).image for i in range(2)]
    out = tmp_path / "segformer.onnx"
    report = export_hf(segformer_dir, out, sample_images=images, fuse_postprocess=fuse)
    assert report.ok, report.describe()
    assert report.images == 2 and report.max_abs_diff <= 1e-4
    assert (report.labels_agreement is not None) == fuse
    exported = load_model(out)
    try:
        assert exported.info.backend == "onnx" and exported.info.scheme == "trainids"
        assert exported.info.output == ("labels" if fuse else "logits")
        for img in [*images, render_scene(5, size=SIZE).image]:
            np.testing.assert_array_equal(exported.predict(img).labels, segformer.predict(img).labels)
    finally:
        exported.close()
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["seglens.source_kind"] == "hf" and props["seglens.source_digest"] == segformer.info.digest


def test_export_dynamic_size(tmp_path, segformer_dir):
    """Height and width are dynamic: another input size runs through the same graph."""
    import onnxruntime as ort

    out = tmp_path / "dyn.onnx"
    export_hf(segformer_dir, out, sample_images=[render_scene(0, size=SIZE).image])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"pixel_values": np.zeros((1, 3, 96, 160), dtype=np.float32)})[0]
    assert logits.shape == (1, 19, 24, 40)


def test_export_refuses_mask2former(tmp_path, mask2former_dir, image):
    with pytest.raises(ModelLoadError, match="Mask2Former"):
        export_hf(mask2former_dir, tmp_path / "m2f.onnx", sample_images=[image])


# --- imports ------------------------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_importing_the_registry_and_hf_modules_does_not_import_torch():
    result = run_python(
        """
        import sys
        import app.inference.registry, app.inference.backends.hf_backend, app.inference.tools.export_hf
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    assert result.returncode == 0, result.stderr


def test_missing_extra_names_the_install_command(segformer_dir):
    result = run_python(
        f"""
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        from app.core.domain.errors import ModelLoadError
        from app.inference.registry import load_model
        try:
            load_model({str(segformer_dir)!r})
        except ModelLoadError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'seglens[hf]'" in result.stdout
