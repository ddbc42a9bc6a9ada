"""tessera.jpeg + images.load_pixels: JPEGs decoded straight to arrays, with PIL's pixels and PIL's errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tessera import jpeg
from tessera.images import (
    EmptyImage,
    ImageTooLarge,
    InvalidImage,
    load_image,
    load_pixels,
    unloaded_jpeg_pixels,
)
from tessera.preprocess import dynamic_tiles, tile_grid


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // w, y * 255 // h, (x ^ y) % 256], -1) + rng.integers(-20, 20, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_fast_path_in_use():
    assert jpeg.fast_jpeg_available()


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_same_pixels_as_pil(tmp_path, subsampling, progressive, mode):
    data = _jpeg(_photo(301, 203).convert(mode), quality=88, subsampling=subsampling, progressive=progressive)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    want = np.asarray(load_image(data))
    for source in (data, str(path), path, base64.b64encode(data).decode(),
                   "data:image/jpeg;base64," + base64.b64encode(data).decode()):
        got = load_pixels(source)
        assert isinstance(got, np.ndarray) and got.dtype == np.uint8, type(source)
        assert np.array_equal(got, want), type(source)


def test_other_inputs_stay_pil(tmp_path):
    png = io.BytesIO()
    _photo(50, 40).save(png, "PNG")
    assert isinstance(load_pixels(png.getvalue()), Image.Image)
    cmyk = _jpeg(_photo(50, 40).convert("CMYK"))
    got = load_pixels(cmyk)  # CMYK JPEGs are PIL's job (its conversion formula)
    assert isinstance(got, Image.Image) and got.mode == "RGB"
    assert np.array_equal(np.asarray(got), np.asarray(load_image(cmyk)))


def test_errors_are_pils():
    data = _jpeg(_photo(300, 200))
    with pytest.raises(InvalidImage, match="truncated|corrupt"):
        load_pixels(data[: len(data) // 2])
    with pytest.raises(EmptyImage):
        load_pixels(b"")
    with pytest.raises(ImageTooLarge, match="60000 pixels, more than the limit of 1000"):
        load_pixels(data, max_pixels=1000)  # from the header, before decoding


def test_dynamic_tiles_from_jpeg_file(tmp_path):
    """A JPEG path takes the array path end to end and gives the tiles of the PIL recipe."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(_photo(1000, 700, seed=3), quality=92))
    tiles = dynamic_tiles(str(path), max_tiles=12, image_size=112)
    img = Image.open(path).convert("RGB")
    cols, rows = tile_grid(1000, 700, max_tiles=12, image_size=112)
    grid = np.asarray(img.resize((cols * 112, rows * 112)))
    assert tiles.shape == (cols * rows + 1, 112, 112, 3) and cols * rows > 1
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        assert np.array_equal(tiles[k], grid[r * 112 : (r + 1) * 112, c * 112 : (c + 1) * 112])
    assert np.array_equal(tiles[-1], np.asarray(img.resize((112, 112))))


def test_unloaded_jpeg_from_image_open(tmp_path, monkeypatch):
    """``Image.open("x.jpg")`` handed over undecoded takes the array path; loaded, drafted or CMYK images
    stay with PIL; the tiles are the same either way."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(_photo(640, 480, seed=4), quality=90))
    calls = []
    real = jpeg.decode_rgb
    monkeypatch.setattr(jpeg, "decode_rgb", lambda *a: calls.append(1) or real(*a))
    want = dynamic_tiles(Image.open(path).convert("RGB"), max_tiles=6, image_size=112)
    assert not calls
    got = dynamic_tiles(Image.open(path), max_tiles=6, image_size=112)
    assert len(calls) == 1 and np.array_equal(got, want)
    loaded = Image.open(path)
    loaded.load()
    assert np.array_equal(dynamic_tiles(loaded, max_tiles=6, image_size=112), want)
    drafted = Image.open(path)
    drafted.draft("RGB", (320, 240))
    assert unloaded_jpeg_pixels(drafted) is None  # a reduced decode is not the file's pixels
    assert len(calls) == 1
