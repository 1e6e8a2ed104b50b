"""The fast PNG decoder gives Pillow's pixels bit for bit on every kind it takes, and hands the rest
(palette, low bit depths, 16-bit colour, tRNS, damaged and oversized files) back to Pillow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.labels import LABELIDS
from app.core.io import pngdecode
from app.core.io.imageio import image_size, read_image, read_instances, read_label

imagecodecs = pytest.importorskip("imagecodecs", reason="imagecodecs (a dependency) is not installed here")


@pytest.fixture(autouse=True)
def fast_decoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(pngdecode.DECODER_ENV, raising=False)
    pngdecode.reset()
    assert pngdecode.decoder_name() == "imagecodecs"
    yield
    pngdecode.reset()


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return np.asarray(img)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth shading plus sensor noise: realistic compression, every PNG filter type exercised."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [128 + 60 * np.sin(xx / (17.0 + 9 * c)) * np.cos(yy / (13.0 + 5 * c)) for c in range(3)]
    rgb = np.stack(planes, axis=2) + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _kinds(tmp_path: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (file, whether the fast decoder takes it)."""
    rng = np.random.default_rng(3)
    rgb = _photo(37, 53)
    grey = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    wide = rng.integers(0, 65536, (37, 53), dtype=np.uint16)
    files: dict[str, tuple[Path, bool]] = {}

    def save(name: str, img: Image.Image, fast: bool, **kwargs: object) -> None:
        path = tmp_path / f"{name}.png"
        img.save(path, **kwargs)
        files[name] = (path, fast)

    save("rgb8", Image.fromarray(rgb), True)
    save("rgb8_fast_compress", Image.fromarray(rgb), True, compress_level=1)
    save("rgba8", Image.fromarray(np.dstack([rgb, grey])), True)
    save("grey8", Image.fromarray(grey), True)
    save("grey16", Image.fromarray(wide), True)
    palette = Image.frombytes("P", (53, 37), (grey % 40).tobytes())
    palette.putpalette(list(rng.integers(0, 256, 768)))
    save("palette8", palette, False)
    save("grey1", Image.fromarray(grey > 128), False)
    save("rgb8_trns", Image.fromarray(rgb), False, transparency=tuple(int(v) for v in rgb[0, 0]))
    save("grey8_trns", Image.fromarray(grey), False, transparency=int(grey[0, 0]))
    return files


def test_fast_kinds_equal_pillow_bit_for_bit(tmp_path: Path) -> None:
    for name, (path, fast) in _kinds(tmp_path).items():
        got = pngdecode.decode(path, None)
        if not fast:
            assert got is None, f"{name} must be left to Pillow"
            continue
        assert got is not None, name
        pixels, mode = got
        expected = _pillow(path)
        with Image.open(path) as img:
            assert mode == img.mode, name
        assert pixels.dtype == expected.dtype and pixels.shape == expected.shape, name
        np.testing.assert_array_equal(pixels, expected, err_msg=name)


def test_interlaced_png_equals_pillow(tmp_path: Path) -> None:
    # Pillow cannot write Adam7; libpng can (imagecodecs' encoder does not either): build one by hand.
    rgb = _photo(29, 31, seed=5)
    path = tmp_path / "adam7.png"
    path.write_bytes(_adam7_png(rgb))
    expected = _pillow(path)
    np.testing.assert_array_equal(expected, rgb)
    got = pngdecode.decode(path, None)
    assert got is not None and got[1] == "RGB"
    np.testing.assert_array_equal(got[0], expected)


def _adam7_png(rgb: np.ndarray) -> bytes:
    import struct
    import zlib

    h, w, _ = rgb.shape
    passes = [
        (0, 0, 8, 8),
        (0, 4, 8, 8),
        (4, 0, 8, 4),
        (0, 2, 4, 4),
        (2, 0, 4, 2),
        (0, 1, 2, 2),
        (1, 0, 2, 1),
    ]
    raw = bytearray()
    for y0, x0, dy, dx in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def test_readers_agree_with_pillow_only_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_image / read_label / read_instances give the same arrays whichever decoder runs."""
    rng = np.random.default_rng(8)
    labels = rng.choice(np.array([7, 11, 23, 26, 1], dtype=np.uint8), size=(64, 96))
    instances = labels.astype(np.uint16) * 1000 + rng.integers(0, 5, size=labels.shape).astype(np.uint16)
    files = {
        "image": tmp_path / "a_leftImg8bit.png",
        "label": tmp_path / "a_labelIds.png",
        "instances": tmp_path / "a_instanceIds.png",
        "palette": tmp_path / "a_palette.png",
    }
    Image.fromarray(_photo(64, 96)).save(files["image"])
    Image.fromarray(labels).save(files["label"])
    Image.fromarray(instances).save(files["instances"])
    palette = Image.frombytes("P", (96, 64), labels.tobytes())
    palette.putpalette([v for i in range(256) for v in (i, i, i)])  # grey: the indices are the ids
    palette.save(files["palette"])

    def read_all() -> list[np.ndarray]:
        return [
            read_image(files["image"]),
            read_image(files["label"]),
            read_image(files["instances"]),
            read_label(files["label"], LABELIDS)[0],
            read_label(files["palette"], LABELIDS)[0],
            read_instances(files["instances"]),
        ]

    fast = read_all()
    monkeypatch.setenv(pngdecode.DECODER_ENV, "pillow")
    pngdecode.reset()
    assert pngdecode.decoder_name() == "pillow"
    slow = read_all()
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast[4], labels)  # palette indices, not colours


def test_full_size_photo_equals_pillow(tmp_path: Path) -> None:
    path = tmp_path / "frame_leftImg8bit.png"
    Image.fromarray(_photo(1024, 2048, seed=2)).save(path)
    np.testing.assert_array_equal(read_image(path), _pillow(path))


def test_damaged_and_oversized_files_go_to_pillow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(_photo(40, 40)).save(path)
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = b"\xff" * 32
    path.write_bytes(bytes(data))
    assert pngdecode.decode(path, None) is None
    with pytest.raises(InputError) as info:
        read_image(path)
    assert info.value.path == path

    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(big)
    assert pngdecode.decode(big, 1599) is None  # over the pixel limit: Pillow refuses it from the header
    monkeypatch.setenv("SEGLENS_MAX_PIXELS", "100")
    with pytest.raises(InputError, match="pixel"):
        read_image(big)  # 1600 px > the 100-pixel budget: refused before decoding, named


def test_image_size_reads_the_header_only(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    Image.fromarray(np.zeros((3, 5, 3), dtype=np.uint8)).save(png)
    jpg = tmp_path / "b.jpg"
    Image.fromarray(np.zeros((7, 9, 3), dtype=np.uint8)).save(jpg)
    assert image_size(png) == (3, 5)
    assert image_size(jpg) == (7, 9)
    truncated = tmp_path / "t.png"
    truncated.write_bytes(png.read_bytes()[:40])  # header intact, pixels gone: the size is still known
    assert image_size(truncated) == (3, 5)
    for bad, fragment in ((tmp_path / "missing.png", "not found"), (tmp_path, "folder")):
        with pytest.raises(InputError, match=fragment):
            image_size(bad)
    text = tmp_path / "n.png"
    text.write_text("no image")
    with pytest.raises(InputError, match="not a readable image"):
        image_size(text)


def test_first_decodes_from_many_threads_all_use_the_fast_decoder(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "a.png"
    Image.fromarray(_photo(16, 16)).save(path)
    for _ in range(5):
        pngdecode.reset()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: pngdecode.decode(path, None), range(8)))
        assert all(r is not None for r in results)  # a race once sent the first images to Pillow
