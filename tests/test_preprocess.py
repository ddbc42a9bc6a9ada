"""Dynamic tiling and normalisation against the official fixtures, plus property tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

import tessera.preprocess as P
from tessera.images import TooManyImages
from tessera.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    dynamic_tiles,
    num_image_tokens,
    num_tiles,
    prepare_images,
    target_ratios,
    tile_grid,
    to_pixel_values,
)

from conftest import conformance_path


@pytest.fixture(scope="module")
def grid_table():
    return json.loads(conformance_path("preprocess", "grid_table.json").read_text())


@pytest.fixture(scope="module")
def tiles_index():
    return json.loads(conformance_path("preprocess", "tiles_index.json").read_text())


@pytest.fixture(scope="module")
def official_tiles():
    with np.load(conformance_path("preprocess", "tiles_448.npz")) as z:
        return {k: z[k] for k in z.files}


def _fixture_image(rel: str) -> Image.Image:
    return Image.open(conformance_path("preprocess", rel)).convert("RGB")


# ---------------------------------------------------------------------------------------------- grids


def test_target_ratio_order_matches_official(grid_table):
    orders = grid_table["target_ratios_in_search_order"]
    assert set(orders) == {"1", "6", "12", "24", "40"}
    for max_num, expected in orders.items():
        assert [list(r) for r in target_ratios(1, int(max_num))] == expected


def test_target_ratio_order_matches_this_interpreters_set():
    """The simulated CPython 3.11 set order equals a real set built like the official code (CPython 3.8+
    share the tuple hash and set layout), for many (min, max) pairs."""
    for lo in (1, 2, 3, 5):
        for hi in range(lo, 70):
            native = sorted(
                {(i, j) for n in range(lo, hi + 1) for i in range(1, n + 1) for j in range(1, n + 1) if lo <= i * j <= hi},
                key=lambda r: r[0] * r[1],
            )
            assert list(target_ratios(lo, hi)) == native, (lo, hi)


def test_every_grid_in_the_table(grid_table):
    assert grid_table["image_size"] == 448 and grid_table["min_num"] == 1
    checked = 0
    for case in grid_table["cases"]:
        w, h = case["width"], case["height"]
        for max_num in grid_table["max_nums"]:
            exp = case[f"max_num_{max_num}"]
            cols, rows = tile_grid(w, h, max_tiles=max_num)
            assert (cols, rows) == (exp["cols"], exp["rows"]), (w, h, max_num)
            assert cols * rows == exp["blocks"]
            assert num_tiles(w, h, max_tiles=max_num) == exp["num_tiles"], (w, h, max_num)
            assert [cols * 448, rows * 448] == exp["resize_to"]
            checked += 1
    assert checked == len(grid_table["cases"]) * 5 >= 900


def test_worked_example_tie_escalates():
    # Fact sheet 6.3: 1920x1080 ties 2x1 with 4x2 and has enough pixels for 4x2.
    assert tile_grid(1920, 1080, max_tiles=12) == (4, 2)
    assert num_tiles(1920, 1080, max_tiles=12) == 9
    assert num_image_tokens(1920, 1080, max_tiles=12) == 9 * 256
    assert num_tiles(448, 448) == 1  # one tile: no thumbnail
    assert num_tiles(1920, 1080, use_thumbnail=False) == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(width=0, height=10), "at least 1x1"),
        (dict(width=10, height=-1), "at least 1x1"),
        (dict(width=10, height=10, max_tiles=0), "max_tiles must be a positive integer"),
        (dict(width=10, height=10, min_tiles=5, max_tiles=4), "must not exceed"),
        (dict(width=10, height=10, image_size=0), "image_size must be a positive integer"),
    ],
)
def test_grid_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile_grid(**kwargs)


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 20000),
    h=st.integers(1, 20000),
    lo=st.integers(1, 4),
    extra=st.integers(0, 40),
    use_thumbnail=st.booleans(),
)
def test_grid_properties(w, h, lo, extra, use_thumbnail):
    hi = lo + extra
    cols, rows = tile_grid(w, h, min_tiles=lo, max_tiles=hi)
    assert lo <= cols * rows <= hi
    assert (cols, rows) in target_ratios(lo, hi)
    # no candidate is strictly closer in aspect ratio
    best = min(abs(w / h - i / j) for i, j in target_ratios(lo, hi))
    assert abs(w / h - cols / rows) == best
    n = num_tiles(w, h, min_tiles=lo, max_tiles=hi, use_thumbnail=use_thumbnail)
    assert n == cols * rows + (1 if use_thumbnail and cols * rows > 1 else 0)
    assert 1 <= n <= hi + 1


# ---------------------------------------------------------------------------------------------- tiles


def test_every_official_tile_array_is_bit_exact(tiles_index, official_tiles):
    assert len(tiles_index["tiles"]) >= 6
    for entry in tiles_index["tiles"]:
        image = _fixture_image(entry["image"])
        assert image.size == (entry["width"], entry["height"])
        tiles = dynamic_tiles(image, max_tiles=entry["max_num"])
        expected = official_tiles[entry["key"]]
        assert tiles.dtype == np.uint8 and tiles.shape == tuple(entry["shape"]), entry["key"]
        assert np.array_equal(tiles, expected), f"{entry['key']} max_num={entry['max_num']}"


def test_tiles_bit_exact_single_threaded(monkeypatch, tiles_index, official_tiles):
    """The sequential fallback gives the same tiles as the parallel path."""
    monkeypatch.setenv("TESSERA_PREPROCESS_THREADS", "1")
    entry = next(e for e in tiles_index["tiles"] if e["key"].startswith("uhd") and e["max_num"] == 12)
    tiles = dynamic_tiles(_fixture_image(entry["image"]), max_tiles=12)
    assert np.array_equal(tiles, official_tiles[entry["key"]])


def test_uhd_max40_matches_official_recipe():
    """No fixture for max 40: compare with the official recipe written out (one resize, row-major crops,
    thumbnail) on the 4K image, 7x4 grid + thumbnail."""
    image = _fixture_image("images/uhd_3840x2160.png")
    tiles = dynamic_tiles(image, max_tiles=40)
    assert tile_grid(3840, 2160, max_tiles=40) == (7, 4) and tiles.shape == (29, 448, 448, 3)
    resized = image.resize((7 * 448, 4 * 448))
    for k in (0, 6, 7, 27):
        box = ((k % 7) * 448, (k // 7) * 448, (k % 7 + 1) * 448, (k // 7 + 1) * 448)
        assert np.array_equal(tiles[k], np.asarray(resized.crop(box))), k
    assert np.array_equal(tiles[28], np.asarray(image.resize((448, 448))))


def _random_image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    # smooth gradients + noise, so that resampling errors would show
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    noise = rng.integers(-40, 40, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@settings(max_examples=20, deadline=None)
@given(w=st.integers(1, 1400), h=st.integers(1, 1400), max_tiles=st.integers(1, 12), thumb=st.booleans())
def test_dynamic_tiles_properties(w, h, max_tiles, thumb):
    """Small tile size (56) keeps this fast; tiles are row-major crops of one resize, thumbnail last."""
    s = 56
    image = _random_image(np.random.default_rng(w + 13 * h), w, h)
    tiles = dynamic_tiles(image, max_tiles=max_tiles, image_size=s, use_thumbnail=thumb)
    cols, rows = tile_grid(w, h, max_tiles=max_tiles, image_size=s)
    assert tiles.shape == (num_tiles(w, h, max_tiles=max_tiles, image_size=s, use_thumbnail=thumb), s, s, 3)
    grid = np.asarray(image.resize((cols * s, rows * s)))
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        assert np.array_equal(tiles[k], grid[r * s : (r + 1) * s, c * s : (c + 1) * s])
    if thumb and cols * rows > 1:
        assert np.array_equal(tiles[-1], np.asarray(image.resize((s, s))))


@settings(max_examples=25, deadline=None)
@given(
    w=st.integers(1, 900),
    h=st.integers(1, 900),
    max_tiles=st.integers(1, 24),
    threads=st.integers(2, 5),
    thumb=st.booleans(),
)
@example(w=168, h=112, max_tiles=6, threads=2, thumb=True)  # already 3x2 tiles: no resampling pass
@example(w=56, h=200, max_tiles=6, threads=3, thumb=True)  # width unchanged: vertical pass only
@example(w=400, h=56, max_tiles=12, threads=2, thumb=False)  # height unchanged: horizontal pass only
@example(w=300, h=900, max_tiles=4, threads=2, thumb=True)  # thumbnail: vertical pass first
def test_dynamic_tiles_parallel_path(w, h, max_tiles, threads, thumb):
    """The threaded compiled path gives the official recipe's tiles: one PIL resize, row-major crops, then
    the thumbnail."""
    s = 56
    image = _random_image(np.random.default_rng(w * 3 + h), w, h)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TESSERA_PREPROCESS_THREADS", str(threads))
        tiles = dynamic_tiles(image, max_tiles=max_tiles, image_size=s, use_thumbnail=thumb)
    cols, rows = tile_grid(w, h, max_tiles=max_tiles, image_size=s)
    resized = image.resize((cols * s, rows * s))
    expected = [np.asarray(resized.crop(((k % cols) * s, (k // cols) * s, (k % cols + 1) * s, (k // cols + 1) * s))) for k in range(cols * rows)]
    if thumb and cols * rows > 1:
        expected.append(np.asarray(image.resize((s, s))))
    assert np.array_equal(tiles, np.stack(expected))


def _tiles_in_child(image, queue):
    queue.put(dynamic_tiles(image, max_tiles=6).shape)


def test_dynamic_tiles_after_fork():
    """A forked child (DataLoader worker) must not wait forever on the parent's thread pool."""
    import multiprocessing as mp

    image = _random_image(np.random.default_rng(9), 1600, 900)  # > 1 MP: the threaded path
    parent = dynamic_tiles(image, max_tiles=6)  # the pool now exists in this process
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_tiles_in_child, args=(image, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("dynamic_tiles hung in a forked child")
    assert queue.get(timeout=5) == parent.shape


def test_dynamic_tiles_converts_modes_like_official():
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 4), dtype=np.uint8), "RGBA")
    tiles = dynamic_tiles(rgba, max_tiles=4, image_size=56)
    expected = dynamic_tiles(rgba.convert("RGB"), max_tiles=4, image_size=56)
    assert np.array_equal(tiles, expected)
    # numpy input goes through load_image
    assert np.array_equal(dynamic_tiles(np.asarray(rgba.convert("RGB")), max_tiles=4, image_size=56), expected)


# ---------------------------------------------------------------------------------------------- pixels


def test_pixel_values_small_matches_official(tiles_index):
    meta = tiles_index["pixel_values_small"]
    with np.load(conformance_path("preprocess", meta["file"])) as z:
        expected = z[meta["key"]].astype(np.float32)
    assert list(IMAGENET_MEAN) == meta["mean"] and list(IMAGENET_STD) == meta["std"]
    tiles = dynamic_tiles(_fixture_image(meta["image"]), max_tiles=meta["max_num"])
    pv = to_pixel_values(tiles)
    assert pv.dtype == torch.float32 and list(pv.shape) == meta["shape"]
    assert np.abs(pv.numpy() - expected).max() <= 2e-3


def test_to_pixel_values_is_bit_identical_to_totensor_normalize(monkeypatch):
    tiles = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    monkeypatch.setattr(P.resample, "SMALL_OUTPUT_PIXELS", 0)  # the compiled loop even for these small tiles
    # torchvision ToTensor: float().div(255); Normalize: sub_(mean).div_(std), per tile
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    ref = torch.stack([torch.from_numpy(t).permute(2, 0, 1).float().div(255).sub_(mean).div_(std) for t in tiles])
    pv = to_pixel_values(tiles)
    assert pv.shape == (5, 3, 16, 16) and pv.dtype == torch.float32
    assert torch.equal(pv, ref)
    assert torch.equal(to_pixel_values(torch.from_numpy(tiles)), ref)  # tensor input
    assert torch.equal(P._normalise_torch(torch.from_numpy(tiles)), ref)  # the accelerator path, run on CPU
    assert torch.equal(to_pixel_values(tiles[:1]), ref[:1])  # single tile, no threads
    with pytest.MonkeyPatch.context() as mp:  # without numba: numpy per tile, the same bits
        mp.setattr(P.resample, "kernels_available", lambda: False)
        assert torch.equal(to_pixel_values(tiles), ref)
    monkeypatch.undo()  # small tiles: numpy, without starting numba, the same bits
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P.resample, "kernels_available", lambda: pytest.fail("numba consulted for small tiles"))
        assert torch.equal(to_pixel_values(tiles), ref)
    bf = to_pixel_values(tiles, dtype=torch.bfloat16, device="cpu")
    assert bf.dtype == torch.bfloat16 and bf.device.type == "cpu"
    assert torch.equal(bf, ref.to(torch.bfloat16))
    with pytest.raises(ValueError, match="uint8 tiles"):
        to_pixel_values(tiles.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 tiles"):
        to_pixel_values(tiles[0])


def test_prepare_images_separate_mode(tmp_path):
    a = _random_image(np.random.default_rng(5), 300, 100)  # 3x1 at max 6 -> 4 tiles
    b = _random_image(np.random.default_rng(6), 50, 50)  # 1 tile
    path = tmp_path / "a.png"
    a.save(path)
    pv, counts = prepare_images([str(path), b], max_tiles=6, image_size=56)
    assert counts == [num_tiles(300, 100, max_tiles=6, image_size=56), 1] == [4, 1]
    assert pv.shape == (5, 3, 56, 56)
    expected = torch.cat(
        [to_pixel_values(dynamic_tiles(a, max_tiles=6, image_size=56)), to_pixel_values(dynamic_tiles(b, image_size=56))]
    )
    assert torch.equal(pv, expected)
    pv1, counts1 = prepare_images(b, image_size=56)  # a single source is accepted too
    assert counts1 == [1] and pv1.shape == (1, 3, 56, 56)
    with pytest.raises(ValueError, match="at least one image"):
        prepare_images([])
    with pytest.raises(TooManyImages, match="3 images given but at most 2"):
        prepare_images([b, b, b], image_size=56, max_images=2)
