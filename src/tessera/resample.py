"""Pillow's default ``Image.resize`` (bicubic) for RGB images, bit for bit, but several times faster.

The official preprocessing resizes every image with PIL, and the tiles must stay identical to the ones the
models were trained on, so the arithmetic has to be Pillow's own (``libImaging/Resample.c``):

* two separable passes, one per axis, with a uint8 image in between; a pass is skipped when its length
  does not change; the order is x then y, except that Pillow 13 starts with y when the height shrinks by
  more than twice as many pixels as the width (found by probing, see :func:`pass_order`);
* per output pixel a window of input pixels ``start .. start + length`` and weights from the bicubic
  kernel (``a = -0.5``), stretched by the scale when shrinking, normalised to sum 1 in float64 and rounded
  to 22-bit fixed point (:func:`pillow_weights`);
* an int32 sum starting at ``2**21``, shifted right by 22 and clipped to 0..255.

Pillow runs this as scalar C, one pixel and one channel at a time. Here one pass is a loop over the
*rows* of the input: each output row is a weighted sum of a few whole input rows, a contiguous
multiply-add that compiles to SIMD (numba). The x pass runs on the transposed image (pixels transposed
in cache-friendly sweeps), and every pass is cut into row ranges that run in parallel threads. The
integer arithmetic is the same, so the result is the same; :func:`pass_order` checks that against the
installed Pillow on small probe images the first time it is used and falls back to ``Image.resize`` if
they ever disagree (or numba is missing).

Shapes: ``H, W`` input height/width, ``oh, ow`` output height/width, pixels are 3 bytes (RGB).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

PRECISION_BITS = 22  # Pillow: 32 - 8 bits of output - 2 bits of headroom
BICUBIC_SUPPORT = 2.0

# --------------------------------------------------------------------------------------------------
# Worker threads
# --------------------------------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()
PIECES_PER_THREAD = 2  # smaller pieces balance uneven passes across the threads


def num_threads() -> int:
    """Threads for preprocessing: ``TESSERA_PREPROCESS_THREADS`` or the core count (at most 4)."""
    env = os.environ.get("TESSERA_PREPROCESS_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def pool() -> ThreadPoolExecutor:
    """The shared worker threads; a forked child (e.g. a DataLoader worker) gets its own, since threads do
    not survive ``fork`` and the parent's pool would never run anything there."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(num_threads(), thread_name_prefix="tessera-preprocess")
            _POOL_PID = os.getpid()
        return _POOL


_SCRATCH = threading.local()
SCRATCH_MAX_BYTES = 256 << 20  # per thread; a bigger intermediate is allocated for one call only


def _scratch(slot: int, shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 work array of ``shape`` that reuses the calling thread's buffer number ``slot``: fresh pages
    cost a page fault each (several ms for a 4K intermediate, far more on a busy VM), reused ones do not."""
    size = math.prod(shape)
    bufs = _SCRATCH.__dict__.setdefault("bufs", {})
    buf = bufs.get(slot)
    if buf is None or buf.size < size:
        buf = np.empty(size, np.uint8)
        if size <= SCRATCH_MAX_BYTES:
            bufs[slot] = buf
    return buf[:size].reshape(shape)


def splits(total: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """``range(total)`` cut into at most ``parts`` contiguous non-empty pieces, on multiples of ``align``."""
    units = -(-total // align)
    parts = max(1, min(parts, units))
    cuts = [min(total, round(units * k / parts) * align) for k in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


# --------------------------------------------------------------------------------------------------
# Pillow's weights
# --------------------------------------------------------------------------------------------------


class Weights(NamedTuple):
    """One pass's fixed-point weights: output ``j`` reads inputs ``start[j] .. start[j] + length[j]``
    with ``weights[j, :length[j]]`` (int32, sum ~ ``2**22``)."""

    start: np.ndarray  # int32 [out]
    length: np.ndarray  # int32 [out]
    weights: np.ndarray  # int32 [out, k]


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's ``bicubic_filter`` (a = -0.5) with the same float64 operations in the same order."""
    x = np.abs(x)
    inner = ((1.5 * x - 2.5) * x) * x + 1
    outer = ((((x - 5) * x + 8) * x) - 4) * -0.5
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


@functools.lru_cache(maxsize=64)
def pillow_weights(in_size: int, out_size: int) -> Weights:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for the bicubic filter, whole box.

    Every float64 operation is the one Pillow's C code does, in the same order (the centre, the window
    bounds truncated toward zero, the kernel argument, the running sum for the normalisation, the
    rounding away from zero to fixed point), so the integer weights are identical.
    """
    scale = float(np.float32(in_size)) / out_size  # (double)(in1 - in0) / outSize, with float box coords
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    start = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    stop = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size)
    length = stop - start
    taps = np.arange(ksize)
    arg = ((start[:, None] + taps).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    w = _bicubic(arg)
    w[taps >= length[:, None]] = 0.0
    total = np.zeros(out_size)
    for t in range(ksize):  # Pillow's running sum, tap by tap
        total += w[:, t]
    w = np.where(total[:, None] != 0.0, w / np.where(total == 0.0, 1.0, total)[:, None], w)
    fixed = np.where(w < 0, -0.5 + w * (1 << PRECISION_BITS), 0.5 + w * (1 << PRECISION_BITS))
    return Weights(start.astype(np.int32), length.astype(np.int32), np.trunc(fixed).astype(np.int32))


# --------------------------------------------------------------------------------------------------
# Pass order
# --------------------------------------------------------------------------------------------------


def vertical_first_rule(w: int, h: int, out_w: int, out_h: int) -> bool:
    """Pillow 13 runs the y pass first when the height shrinks by more than twice as many pixels as the
    width (``out_h < h`` and ``h - out_h > 2 * (w - out_w)``); established by probing Pillow 13.0.0 over all
    up/down-scaling combinations and the equality boundary."""
    return out_h < h and (h - out_h) > 2 * (w - out_w)


def horizontal_first_rule(w: int, h: int, out_w: int, out_h: int) -> bool:
    """Older Pillow: always x first."""
    return False


_PROBES = [((8, 8), (12, 3)), ((20, 20), (15, 10)), ((30, 16), (12, 9)), ((9, 40), (14, 11)), ((41, 30), (20, 7)),
           ((37, 29), (37, 13)), ((23, 31), (64, 31)), ((97, 61), (33, 200)), ((5, 3), (5, 3))]


@functools.lru_cache(maxsize=1)
def kernels_available() -> bool:
    """Whether the compiled kernels (:mod:`tessera._kernels`, numba) can be used; compiles or loads them."""
    try:
        from tessera import _kernels  # noqa: F401
    except ImportError:
        warnings.warn("numba is not installed: preprocessing falls back to PIL and numpy (slower, same values)",
                      stacklevel=2)
        return False
    return True


@functools.lru_cache(maxsize=1)
def pass_order() -> Callable[[int, int, int, int], bool] | None:
    """The installed Pillow's pass-order rule for the fast path, or ``None`` when the fast path must not be
    used (numba missing, or neither rule reproduces ``Image.resize`` on the probe images)."""
    if not kernels_available():
        return None
    rng = np.random.default_rng(1234)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for (w, h), _ in _PROBES]
    for rule in (vertical_first_rule, horizontal_first_rule):
        if all(
            np.array_equal(np.asarray(Image.fromarray(a).resize(size)), _resize_fast(a, [(size, None)], rule, 1)[0])
            for a, (_, size) in zip(images, _PROBES)
        ):
            return rule
    warnings.warn(f"tessera's resampler does not match Pillow {Image.__version__}; using PIL", stacklevel=2)
    return None


# --------------------------------------------------------------------------------------------------
# Passes
# --------------------------------------------------------------------------------------------------

Task = tuple[Callable[..., None], tuple[Any, ...]]


def _rows_tasks(src: np.ndarray, wts: Weights, out3: np.ndarray, tile: int, cols: int, parts: int) -> list[Task]:
    from tessera._kernels import resample_rows

    return [(resample_rows, (src, wts.start, wts.length, wts.weights, out3, tile, cols, a, b))
            for a, b in splits(len(wts.start), parts)]


def _transpose_tasks(src: np.ndarray, out: np.ndarray, parts: int) -> list[Task]:
    from tessera._kernels import TRANSPOSE_ROWS, transpose_pixels

    return [(transpose_pixels, (src, out, a, b, 0)) for a, b in splits(src.shape[0], parts, TRANSPOSE_ROWS)]


def _shifted(wts: Weights, offset: int) -> Weights:
    return Weights(wts.start - np.int32(offset), wts.length, wts.weights)


def _resize_fast(source: np.ndarray | Image.Image, jobs: Sequence[tuple[tuple[int, int], int | None]],
                 rule: Callable, threads: int, outs: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Resize ``source`` (uint8 ``[H, W, 3]`` or an RGB PIL image) to several sizes at once: the passes of all
    jobs share the threads, and the x-first jobs share one transposed copy of the input.

    ``jobs``: ``((ow, oh), tile)``; with ``tile = S`` the result is the ``S x S`` tiles of the resized image
    in row-major order ``[(oh // S) * (ow // S), S, S, 3]``, else the image ``[oh, ow, 3]``. ``outs`` may
    supply the result arrays (C-contiguous). Returns the results.
    """
    slot = itertools.count().__next__  # one scratch buffer per intermediate of this call
    if isinstance(source, Image.Image):  # its pixels are copied in bands, see _fill
        w, h = source.size
        src = _scratch(slot(), (h, w * 3))  # filled only if a job reads it directly (not via the transpose)
    else:
        h, w = source.shape[:2]
        src = source.reshape(h, w * 3)
    direct = False  # whether a job reads ``src`` itself (else only its transposed rows are needed)
    parts = threads * PIECES_PER_THREAD if threads > 1 else 1
    stages: list[list[Task]] = [[], [], [], []]
    results, copies = [], []
    transposed = None  # [W, rows * 3]: the input rows lo .. hi, transposed, shared by the x-first jobs
    lo = hi = 0
    x_first = []
    for i, ((ow, oh), tile) in enumerate(jobs):
        res = outs[i] if outs is not None and outs[i] is not None else (
            np.empty(((oh // tile) * (ow // tile), tile, tile, 3) if tile else (oh, ow, 3), np.uint8))
        results.append(res)
        out3, t, c = (res.reshape(res.shape[0], tile, tile * 3), tile, ow // tile) if tile else (
            res.reshape(1, oh, ow * 3), oh, 1)
        if (ow, oh) == (w, h):
            direct = True
            copies.append((out3, src[None] if c == 1 else _as_tiles(src, t, c)))
        elif oh == h:  # x only
            x_first.append((ow, oh, 0, h, None, out3, t, c))
        elif ow == w:  # y only
            direct = True
            stages[3] += _rows_tasks(src, pillow_weights(h, oh), out3, t, c, parts)
        elif not rule(w, h, ow, oh):  # x then y; the x pass only needs the rows the y pass reads
            ys = pillow_weights(h, oh)
            x_first.append((ow, oh, int(ys.start[0]), int(ys.start[-1] + ys.length[-1]), ys, out3, t, c))
        else:  # y then x
            direct = True
            mid = _scratch(slot(), (oh, w * 3))
            stages[0] += _rows_tasks(src, pillow_weights(h, oh), mid[None], oh, 1, parts)
            mid_t = _scratch(slot(), (w, oh * 3))
            stages[1] += _transpose_tasks(mid, mid_t, parts)
            xt = _scratch(slot(), (ow, oh * 3))
            stages[2] += _rows_tasks(mid_t, pillow_weights(w, ow), xt[None], ow, 1, parts)
            plain = _scratch(slot(), (oh, ow * 3))
            stages[3] += _transpose_tasks(xt, plain, parts)
            copies.append((out3, plain.reshape(1, oh, ow * 3) if c == 1 else _as_tiles(plain, t, c)))
    if x_first:
        lo = min(job[2] for job in x_first)
        hi = max(job[3] for job in x_first)
        transposed = _scratch(slot(), (w, (hi - lo) * 3))
        if not isinstance(source, Image.Image):
            stages[0] += _transpose_tasks(src[lo:hi], transposed, parts)
        for ow, oh, _, _, ys, out3, t, c in x_first:
            xt = _scratch(slot(), (ow, (hi - lo) * 3))
            stages[1] += _rows_tasks(transposed, pillow_weights(w, ow), xt[None], ow, 1, parts)
            back = _scratch(slot(), (hi - lo, ow * 3))
            stages[2] += _transpose_tasks(xt, back, parts)
            if ys is None:  # x only: the transposed-back image is the result
                copies.append((out3, back.reshape(1, oh, ow * 3) if c == 1 else _as_tiles(back, t, c)))
            else:
                stages[3] += _rows_tasks(back, _shifted(ys, lo), out3, t, c, parts)
    if isinstance(source, Image.Image):
        _fill(source, src if direct else None, transposed, lo, threads)
    _run(stages, threads)
    for dest, value in copies:
        np.copyto(dest, value.reshape(dest.shape))
    return results


BAND_ROWS = 128  # rows per band of _fill (a multiple of the transpose block)


def _fill(image: Image.Image, src: np.ndarray | None, transposed: np.ndarray | None, lo: int, threads: int) -> None:
    """Read an RGB PIL image's pixels in bands of rows (``crop(band).tobytes()``: the bytes ``np.asarray``
    gives, without one big fresh array) and, while each band is in cache, transpose its rows
    ``lo .. lo + transposed.shape[1] // 3`` into ``transposed`` and/or copy it into ``src`` ``[H, W * 3]``.

    The bands run on the worker threads: Pillow holds the GIL while it copies one band, the compiled
    transposition of another band runs meanwhile without it."""
    from tessera._kernels import transpose_pixels

    w, h = image.size
    hi = lo + transposed.shape[1] // 3 if transposed is not None else lo
    cuts = sorted({0, h, hi, *range(lo, hi, BAND_ROWS)} | set(range(0, lo, BAND_ROWS)) | set(range(hi, h, BAND_ROWS)))

    def band(y0: int, y1: int) -> None:
        a, b = max(y0, lo), min(y1, hi)
        if src is None and a >= b:
            return
        view = np.frombuffer(image.crop((0, y0, w, y1)).tobytes(), np.uint8).reshape(y1 - y0, w * 3)
        if src is not None:
            src[y0:y1] = view
        if transposed is not None and a < b:
            transpose_pixels(view, transposed, a - y0, b - y0, y0 - lo)

    image.load()  # before the threads: a lazy image must not be loaded by several of them at once
    pieces = list(zip(cuts[:-1], cuts[1:]))
    if threads > 1:
        list(pool().map(lambda p: band(*p), pieces))
    else:
        for p in pieces:
            band(*p)


def _as_tiles(plain: np.ndarray, tile: int, cols: int) -> np.ndarray:
    """``[rows * S, cols * S * 3]`` -> ``[rows * cols, S, S * 3]`` (a strided view, copied by the caller)."""
    rows = plain.shape[0] // tile
    return plain.reshape(rows, tile, cols, tile * 3).transpose(0, 2, 1, 3)


def _run(stages: list[list[Task]], threads: int) -> None:
    """Run the stages in order, each stage's tasks in parallel."""
    for tasks in stages:
        if threads > 1 and len(tasks) > 1:
            for f in [pool().submit(fn, *args) for fn, args in tasks]:
                f.result()
        else:
            for fn, args in tasks:
                fn(*args)


# --------------------------------------------------------------------------------------------------
# Public
# --------------------------------------------------------------------------------------------------


SMALL_OUTPUT_PIXELS = 1 << 20  # below this many output pixels PIL's resize takes a few ms


def fast_path_available() -> bool:
    """Whether the compiled resampler is in use (numba installed and bit-identical to this Pillow)."""
    return pass_order() is not None


def resize_many(image: Image.Image | np.ndarray, jobs: Sequence[tuple[tuple[int, int], int | None]],
                outs: Sequence[np.ndarray | None] | None = None, *, threads: int | None = None) -> list[np.ndarray]:
    """``Image.resize`` of one RGB image to several sizes, bit-identical, optionally cut into tiles.

    Args:
        image: an RGB PIL image, or its pixels as uint8 ``[H, W, 3]``.
        jobs: ``((width, height), tile)`` per result; with ``tile = S`` the result is the resized image's
            ``S x S`` tiles in row-major order, uint8 ``[rows * cols, S, S, 3]``; with ``None`` the resized
            image uint8 ``[height, width, 3]``.
        outs: optional C-contiguous arrays to write the results into (one per job, or ``None``).
        threads: worker threads (default :func:`num_threads`).

    Returns:
        The results, in the order of ``jobs``.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"resize expects RGB pixels uint8 [H, W, 3], got {image.dtype} {tuple(image.shape)}")
    elif image.mode != "RGB":
        raise ValueError(f"resize expects an RGB image, got mode {image.mode!r}; convert it first")
    for (ow, oh), tile in jobs:
        if ow < 1 or oh < 1:
            raise ValueError(f"resize to {ow}x{oh}: the size must be at least 1x1")
        if tile and (ow % tile or oh % tile):
            raise ValueError(f"resize to {ow}x{oh} does not cut into {tile}x{tile} tiles")
    # small work goes to PIL: the same bits, and a one-shot command does not pay numba's start (~1 s)
    small = sum(ow * oh for (ow, oh), _ in jobs) < SMALL_OUTPUT_PIXELS
    rule = None if small else pass_order()
    threads = threads or num_threads()
    if rule is not None:
        source = np.ascontiguousarray(image) if isinstance(image, np.ndarray) else image
        return _resize_fast(source, jobs, rule, threads, outs)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    results = []
    for i, ((ow, oh), tile) in enumerate(jobs):
        plain = np.asarray(image.resize((ow, oh)))
        value = plain if not tile else _as_tiles(plain.reshape(oh, ow * 3), tile, ow // tile).reshape(-1, tile, tile, 3)
        res = outs[i] if outs is not None and outs[i] is not None else np.empty(value.shape, np.uint8)
        np.copyto(res, value)
        results.append(res)
    return results


def resize(image: Image.Image | np.ndarray, size: tuple[int, int], *, threads: int | None = None) -> np.ndarray:
    """``np.asarray(image.resize(size))`` for an RGB image (PIL or uint8 ``[H, W, 3]``), bit-identical.
    Returns uint8 ``[h, w, 3]``."""
    return resize_many(image, [(size, None)], threads=threads)[0]
