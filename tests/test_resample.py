"""tessera.resample: Pillow's bicubic resize, bit for bit, in compiled threaded passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tessera import resample
from tessera.preprocess import resize_exact


def _random_image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    # smooth gradients + noise + saturated patches, so that rounding, clipping and offsets would show
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
    arr = np.clip(base + rng.integers(-40, 40, (h, w, 3)), 0, 255)
    arr[rng.random((h, w)) < 0.05] = rng.choice([0, 255])  # overshoot of the bicubic lobes -> clipping
    return Image.fromarray(arr.astype(np.uint8))


@pytest.fixture(autouse=True)
def _kernels_for_every_size(monkeypatch):
    """The compiled passes even for the small sizes these tests use (resize_many sends small work to PIL)."""
    monkeypatch.setattr(resample, "SMALL_OUTPUT_PIXELS", 0)


def test_small_work_goes_to_pil_without_the_kernels(monkeypatch):
    """Below SMALL_OUTPUT_PIXELS output pixels, PIL: the same bits, and numba is not even consulted."""
    monkeypatch.undo()
    monkeypatch.setattr(resample, "pass_order", lambda: pytest.fail("kernels consulted for a small resize"))
    image = _random_image(np.random.default_rng(3), 306, 153)
    tiles, thumb = resample.resize_many(image, [((224, 112), 112), ((112, 112), None)])
    ref = np.asarray(image.resize((224, 112)))
    assert np.array_equal(tiles, np.stack([ref[:, :112], ref[:, 112:]]))
    assert np.array_equal(thumb, np.asarray(image.resize((112, 112))))


def test_fast_path_in_use():
    """numba is a dependency and the probe must agree with the installed Pillow: the fast path is on."""
    assert resample.fast_path_available()
    assert resample.pass_order() is resample.vertical_first_rule  # Pillow 13


@settings(max_examples=40, deadline=None)
@given(w=st.integers(1, 600), h=st.integers(1, 600), ow=st.integers(1, 800), oh=st.integers(1, 800),
       threads=st.integers(1, 5))
def test_resize_equals_pil(w, h, ow, oh, threads):
    """Down and up scaling on both axes, both pass orders, any thread count."""
    image = _random_image(np.random.default_rng(w * 7 + h), w, h)
    assert np.array_equal(resample.resize(image, (ow, oh), threads=threads), np.asarray(image.resize((ow, oh))))


@pytest.mark.parametrize(
    "size, out",
    [
        ((2, 2), (3, 1)),  # width up, height down: vertical pass first on Pillow 13
        ((300, 1800), (448, 448)),  # thumbnail of a tall image
        ((60, 50), (50, 10)),  # both down, height by more than twice as many pixels: vertical first
        ((60, 50), (40, 10)),  # h - oh == 2 * (w - ow) exactly: horizontal first
        ((81, 42), (68, 16)),
        ((50, 60), (70, 80)),  # both up
        ((1, 1), (9, 4)),
        ((700, 1), (3, 1)),  # x only
        ((1, 700), (1, 5)),  # y only
        ((40, 30), (40, 30)),  # no pass
    ],
)
def test_resize_pass_order_cases(size, out):
    image = _random_image(np.random.default_rng(size[0]), *size)
    for threads in (1, 3):
        assert np.array_equal(resample.resize(image, out, threads=threads), np.asarray(image.resize(out)))


def test_resize_4k_jobs_share_the_passes():
    """The grid (as tiles) and the thumbnail of a 4K image in one call, as dynamic_tiles uses it."""
    image = _random_image(np.random.default_rng(1), 3840, 2160)
    s = 448
    grid, thumb = resample.resize_many(image, [((4 * s, 2 * s), s), ((s, s), None)])
    ref = np.asarray(image.resize((4 * s, 2 * s)))
    assert grid.shape == (8, s, s, 3)
    for k in range(8):
        r, c = divmod(k, 4)
        assert np.array_equal(grid[k], ref[r * s : (r + 1) * s, c * s : (c + 1) * s])
    assert np.array_equal(thumb, np.asarray(image.resize((s, s))))


@pytest.mark.parametrize("size", [(620, 1111), (1400, 100), (3000, 1700), (1500, 800)])
def test_resize_exact_public(size):
    image = _random_image(np.random.default_rng(0), 1500, 800)
    assert np.array_equal(resize_exact(image, size, threads=3), np.asarray(image.resize(size)))


def test_fallback_without_fast_path(monkeypatch):
    """When the probe fails (numba missing, another Pillow), plain PIL gives the same results."""
    image = _random_image(np.random.default_rng(2), 300, 170)
    monkeypatch.setattr(resample, "pass_order", lambda: None)
    assert not resample.fast_path_available()
    tiles, plain = resample.resize_many(image, [((112, 56), 56), ((77, 33), None)])
    ref = np.asarray(image.resize((112, 56)))
    assert np.array_equal(tiles, np.stack([ref[:, :56], ref[:, 56:]]))
    assert np.array_equal(plain, np.asarray(image.resize((77, 33))))


def test_weights_sum_to_one_in_fixed_point():
    for n_in, n_out in [(3840, 1792), (2160, 448), (100, 333), (7, 7), (1, 5)]:
        w = resample.pillow_weights(n_in, n_out)
        assert (w.start >= 0).all() and (w.start + w.length <= n_in).all()
        sums = w.weights.sum(1)
        assert np.all(np.abs(sums - (1 << resample.PRECISION_BITS)) <= w.length), (n_in, n_out)


def test_bad_arguments():
    image = _random_image(np.random.default_rng(0), 20, 20)
    with pytest.raises(ValueError, match="RGB"):
        resample.resize(image.convert("L"), (10, 10))
    with pytest.raises(ValueError, match="at least 1x1"):
        resample.resize(image, (0, 10))
    with pytest.raises(ValueError, match="tiles"):
        resample.resize_many(image, [((30, 20), 20)])
