"""InternVL 1.5 dynamic high-resolution preprocessing: tile grid, tiles, pixel values.

The official pipeline (``internvl/train/dataset.py: dynamic_preprocess`` + ``build_transform``) is:

1. pick a grid ``cols x rows`` (``1 <= cols * rows``, ``min_tiles <= cols*rows <= max_tiles``) whose aspect
   ratio is closest to the image's, with an exact-tie rule that favours bigger grids for big images;
2. resize the whole image to ``(cols * S, rows * S)`` with PIL's default filter (bicubic for RGB);
3. cut it into ``cols * rows`` tiles of ``S x S`` pixels in row-major order;
4. append a thumbnail (the whole image squashed to ``S x S``) when there is more than one tile;
5. per tile: ``ToTensor`` (``/255``) and ``Normalize`` with the ImageNet mean and std.

This module reproduces steps 1-4 bit-exactly in uint8 (the tests compare against tiles produced by the
official code) and step 5 with the same float32 operations, vectorised over all tiles. It is faster than
the official code because the image is resized once, the tiles are written straight into one array, and
the PIL resizes (grid and thumbnail) are cut into independent pieces that run in parallel threads (PIL
releases the GIL). The cut does not change a single value, see :class:`_ExactResize`.

Shapes: ``T`` = tiles, ``S`` = tile size (448 for the released models), ``H, W`` = image height/width.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from PIL import Image

from tessera.images import check_image_count, load_image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "target_ratios",
    "tile_grid",
    "num_tiles",
    "num_image_tokens",
    "resize_exact",
    "dynamic_tiles",
    "to_pixel_values",
    "prepare_images",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------------
# Grid selection
# --------------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_XXPRIME_1 = 11400714785074694791
_XXPRIME_2 = 14029467366897019727
_XXPRIME_5 = 2870177450012600261
_SET_MINSIZE = 8
_LINEAR_PROBES = 9
_PERTURB_SHIFT = 5


def _cpython_tuple_hash(pair: tuple[int, int]) -> int:
    """``hash(pair)`` of a tuple of two small non-negative ints as CPython >= 3.8 (64-bit) computes it,
    returned as the unsigned 64-bit value that the set implementation uses for slot arithmetic."""
    acc = _XXPRIME_5
    for lane in pair:  # hash(small int) == int
        acc = (acc + lane * _XXPRIME_2) & _M64
        acc = ((acc << 31) | (acc >> 33)) & _M64
        acc = (acc * _XXPRIME_1) & _M64
    acc = (acc + (len(pair) ^ (_XXPRIME_5 ^ 3527539))) & _M64
    if acc == _M64:  # hash -1 is reserved
        acc = 1546275796
    return acc


def _cpython311_set_order(keys: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Iteration order of ``set(keys)`` in CPython 3.11 (``Objects/setobject.c``), simulated.

    The official code builds the candidate grids as a set and then sorts them stably by area, so the order of
    equal-area grids is the set's slot order. Simulating the hash table makes that order independent of the
    running interpreter: insertion with linear probing (9 slots) and perturbed re-probing, and a resize to
    ``used * 4`` when the table is 3/5 full, which re-inserts entries in slot order.
    """
    mask = _SET_MINSIZE - 1
    table: list[tuple[int, int] | None] = [None] * _SET_MINSIZE
    hashes: list[int] = [0] * _SET_MINSIZE
    fill = 0

    def insert_clean(tbl, hs, msk, key, h):  # set_insert_clean
        perturb = h
        i = h & msk
        while True:
            if tbl[i] is None:
                tbl[i], hs[i] = key, h
                return
            if i + _LINEAR_PROBES <= msk:
                for j in range(1, _LINEAR_PROBES + 1):
                    if tbl[i + j] is None:
                        tbl[i + j], hs[i + j] = key, h
                        return
            perturb >>= _PERTURB_SHIFT
            i = (i * 5 + 1 + perturb) & msk

    for key in keys:  # set_add_entry
        h = _cpython_tuple_hash(key)
        perturb = h
        i = h & mask
        slot = None
        while slot is None:
            probes = _LINEAR_PROBES if i + _LINEAR_PROBES <= mask else 0
            for j in range(probes + 1):
                k = table[i + j]
                if k is None:
                    slot = i + j
                    break
                if hashes[i + j] == h and k == key:
                    slot = -1  # already present
                    break
            if slot is None:
                perturb >>= _PERTURB_SHIFT
                i = (i * 5 + 1 + perturb) & mask
        if slot < 0:
            continue
        table[slot], hashes[slot] = key, h
        fill += 1
        if fill * 5 >= mask * 3:  # set_table_resize(so, used * 4); no deletions, so used == fill
            new_size = _SET_MINSIZE
            while new_size <= fill * 4:
                new_size <<= 1
            new_table: list[tuple[int, int] | None] = [None] * new_size
            new_hashes = [0] * new_size
            for k, hk in zip(table, hashes):
                if k is not None:
                    insert_clean(new_table, new_hashes, new_size - 1, k, hk)
            table, hashes, mask = new_table, new_hashes, new_size - 1
    return [k for k in table if k is not None]


def _check_tile_args(min_tiles: int, max_tiles: int, image_size: int) -> None:
    for name, value in (("min_tiles", min_tiles), ("max_tiles", max_tiles), ("image_size", image_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if min_tiles > max_tiles:
        raise ValueError(f"min_tiles ({min_tiles}) must not exceed max_tiles ({max_tiles})")


def target_ratios(min_tiles: int = 1, max_tiles: int = 12) -> list[tuple[int, int]]:
    """Candidate grids ``(cols, rows)`` with ``min_tiles <= cols*rows <= max_tiles``, in the official
    search order: sorted by ``cols*rows``; grids of equal area keep CPython 3.11 set-iteration order.

    The order only matters for exact distance ties between different aspect ratios, but it is reproduced
    exactly (see ``target_ratios_in_search_order`` in the conformance ``grid_table.json``).
    """
    _check_tile_args(min_tiles, max_tiles, 1)
    return list(_target_ratios(min_tiles, max_tiles))


@functools.lru_cache(maxsize=64)
def _target_ratios(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    # The official code inserts (i, j) for n in [min, max], i and j in [1, n]; re-inserting a present key
    # changes nothing, so only first insertions matter: at n = max(i, j, min_tiles), in (i, j) order.
    valid = [(i, j) for i in range(1, max_tiles + 1) for j in range(1, max_tiles // i + 1) if i * j >= min_tiles]
    keys = sorted(valid, key=lambda r: (max(r[0], r[1], min_tiles), r[0], r[1]))
    return tuple(sorted(_cpython311_set_order(keys), key=lambda r: r[0] * r[1]))


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be at least 1x1 pixels, got {width}x{height}")


def tile_grid(
    width: int, height: int, *, min_tiles: int = 1, max_tiles: int = 12, image_size: int = 448
) -> tuple[int, int]:
    """The ``(cols, rows)`` grid the official ``find_closest_aspect_ratio`` picks for a ``width x height``
    image.

    The grid with the smallest ``|width/height - cols/rows|`` wins; on an exact float tie a later candidate
    (larger or equal area) replaces the current one only if the image has more than half the pixels of
    that grid (``width*height > 0.5 * image_size**2 * cols * rows``).
    """
    _check_size(width, height)
    _check_tile_args(min_tiles, max_tiles, image_size)
    aspect = width / height
    area = width * height
    best_diff = float("inf")
    best = (1, 1)
    for ratio in _target_ratios(min_tiles, max_tiles):
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def num_tiles(
    width: int,
    height: int,
    *,
    min_tiles: int = 1,
    max_tiles: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> int:
    """Number of tiles :func:`dynamic_tiles` returns: ``cols*rows``, plus 1 thumbnail when
    ``use_thumbnail`` and ``cols*rows > 1``."""
    cols, rows = tile_grid(width, height, min_tiles=min_tiles, max_tiles=max_tiles, image_size=image_size)
    blocks = cols * rows
    return blocks + 1 if use_thumbnail and blocks != 1 else blocks


def num_image_tokens(
    width: int,
    height: int,
    *,
    tokens_per_tile: int = 256,
    min_tiles: int = 1,
    max_tiles: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> int:
    """``<IMG_CONTEXT>`` tokens an image costs: ``num_tiles(...) * tokens_per_tile`` (256 for the released
    448-px models: (448/14)^2 patches, pixel shuffle 0.5 -> 256)."""
    n = num_tiles(
        width, height, min_tiles=min_tiles, max_tiles=max_tiles, image_size=image_size, use_thumbnail=use_thumbnail
    )
    return n * tokens_per_tile


# --------------------------------------------------------------------------------------------------
# Exact parallel resize
# --------------------------------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_PID = 0
_POOL_LOCK = threading.Lock()
_PARALLEL_MIN_PIXELS = 1 << 20  # below ~1 MP the thread overhead is not worth it
_PIECES_PER_THREAD = 2  # smaller pieces balance the uneven grid / thumbnail passes across the threads


def _num_threads() -> int:
    env = os.environ.get("TESSERA_PREPROCESS_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    """The shared worker threads; a forked child (e.g. a DataLoader worker) gets its own, since threads do
    not survive ``fork`` and the parent's pool would never run anything there."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(_num_threads(), thread_name_prefix="tessera-preprocess")
            _POOL_PID = os.getpid()
        return _POOL


def _splits(total: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """Split ``range(total)`` into at most ``parts`` contiguous non-empty pieces (cuts on multiples of
    ``align`` where possible)."""
    units = -(-total // align)
    parts = max(1, min(parts, units))
    cuts = [min(total, round(units * k / parts) * align) for k in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _vertical_first_rule(w: int, h: int, out_w: int, out_h: int) -> bool:
    """Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as
    the width (``out_h < h`` and ``h - out_h > 2 * (w - out_w)``); older Pillow always starts with the
    horizontal pass. Established by probing Pillow 13.0.0 over all four up/down-scaling combinations and the
    ``h - out_h == 2 * (w - out_w)`` boundary; :func:`_pass_order` re-checks it against the installed Pillow."""
    return out_h < h and (h - out_h) > 2 * (w - out_w)


def _always_horizontal_first(w: int, h: int, out_w: int, out_h: int) -> bool:
    return False


@functools.lru_cache(maxsize=1)
def _pass_order() -> Any:
    """The installed Pillow's pass-order rule (a ``(w, h, out_w, out_h) -> vertical_first`` function),
    found by comparing ``Image.resize`` with both explicit two-pass orders on small random images; ``None``
    when neither known rule matches (the split resize is then not used)."""
    rng = np.random.default_rng(1234)
    cases = [((8, 8), (12, 3)), ((20, 20), (15, 10)), ((30, 16), (12, 9)), ((9, 40), (14, 11)), ((41, 30), (20, 7))]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for (w, h), _ in cases]
    for rule in (_vertical_first_rule, _always_horizontal_first):
        if all(
            np.array_equal(np.asarray(img.resize(size)), _split_resize_sequential(img, size, rule))
            for img, (_, size) in zip(images, cases)
        ):
            return rule
    return None


class _ExactResize:
    """``Image.resize(size)`` (default filter, RGB) cut into independent pieces with bit-identical results.

    Pillow resamples in two passes with a uint8 image in between: one along x (each row on its own), one
    along y (each column on its own), skipping a pass whose length does not change. The weights of a pass
    depend only on the input and output lengths along its axis, so the x pass can run on row bands and the
    y pass on column strips, each an ordinary ``Image.resize`` that changes one length only, without changing
    a single output value, provided the passes run in the order Pillow uses (:func:`_pass_order`).

    ``self.out`` is the resized image ``[out_h, out_w, 3]``, or with ``tile=S`` the ``S x S`` tiles of it in
    row-major order ``[rows * cols, S, S, 3]`` (into ``out`` if given), written there directly by the last
    pass.
    """

    def __init__(
        self,
        image: Image.Image,
        size: tuple[int, int],
        parts: int,
        rule: Any,
        tile: int | None = None,
        out: np.ndarray | None = None,
    ):
        w, h = image.size
        out_w, out_h = size
        axes = [a for a, needed in (("x", out_w != w), ("y", out_h != h)) if needed]
        if len(axes) == 2 and rule(w, h, out_w, out_h):
            axes.reverse()
        self.image, self.size, self.parts, self.axes = image, size, parts, axes
        self.tile = tile
        if tile is None:
            self.out = np.empty((out_h, out_w, 3), np.uint8)
        else:
            rows, cols = out_h // tile, out_w // tile
            self.out = np.empty((rows * cols, tile, tile, 3), np.uint8) if out is None else out
            assert self.out.shape == (rows * cols, tile, tile, 3) and self.out.flags.c_contiguous
            # [rows*cols, S, S, 3] seen as [rows, S, cols, S, 3]: the grid's (y, x) layout, as a view
            self.grid_view = self.out.reshape(rows, cols, tile, tile, 3).transpose(0, 2, 1, 3, 4)

    def _store(self, dest: Any, piece: Image.Image, y0: int, x0: int) -> None:
        """Put a finished piece at (y0, x0): into an intermediate PIL image, an array, or the tiles."""
        if isinstance(dest, Image.Image):
            dest.paste(piece, (x0, y0))
            return
        arr = np.asarray(piece)
        y1, x1 = y0 + arr.shape[0], x0 + arr.shape[1]
        if dest is not None:
            dest[y0:y1, x0:x1] = arr
            return
        s = self.tile
        self.grid_view[y0 // s : y1 // s, :, x0 // s : x1 // s] = arr.reshape((y1 - y0) // s, s, (x1 - x0) // s, s, 3)

    def _tasks(self, src: Image.Image, axis: str, dest: Any) -> list[tuple[Any, ...]]:
        align = self.tile if dest is None else 1  # pieces of the last pass cover whole tiles
        if axis == "x":  # row bands, each resized along x only
            return [(self._x_band, src, dest, a, b) for a, b in _splits(src.height, self.parts, align)]
        return [(self._y_strip, src, dest, a, b) for a, b in _splits(src.width, self.parts, align)]

    def _x_band(self, src: Image.Image, dest: Any, y0: int, y1: int) -> None:
        self._store(dest, src.crop((0, y0, src.width, y1)).resize((self.size[0], y1 - y0)), y0, 0)

    def _y_strip(self, src: Image.Image, dest: Any, x0: int, x1: int) -> None:
        self._store(dest, src.crop((x0, 0, x1, src.height)).resize((x1 - x0, self.size[1])), 0, x0)

    def _last_dest(self) -> np.ndarray | None:
        return self.out if self.tile is None else None

    def first_tasks(self) -> list[tuple[Any, ...]]:
        if not self.axes:
            self._store(self._last_dest(), self.image, 0, 0)
            return []
        if len(self.axes) == 1:
            return self._tasks(self.image, self.axes[0], self._last_dest())
        w, h = self.image.size
        self.mid = Image.new("RGB", (self.size[0], h) if self.axes[0] == "x" else (w, self.size[1]))
        return self._tasks(self.image, self.axes[0], self.mid)

    def second_tasks(self) -> list[tuple[Any, ...]]:
        if len(self.axes) < 2:
            return []
        return self._tasks(self.mid, self.axes[1], self._last_dest())


def _split_resize_sequential(image: Image.Image, size: tuple[int, int], rule: Any, parts: int = 3) -> np.ndarray:
    job = _ExactResize(image, size, parts, rule)
    for tasks in (job.first_tasks, job.second_tasks):
        for fn, *args in tasks():
            fn(*args)
    return job.out


def _run_resizes(jobs: list[_ExactResize]) -> list[np.ndarray]:
    """Run exact resizes on the shared thread pool: every job's first pass, then each job's second pass
    as soon as its first pass is complete."""
    pool = _pool()

    def submit(tasks: list[tuple[Any, ...]]) -> list[Future]:
        return [pool.submit(fn, *args) for fn, *args in tasks]

    firsts = [submit(job.first_tasks()) for job in jobs]
    seconds = []
    for job, futs in zip(jobs, firsts):
        for f in futs:
            f.result()
        seconds.append(submit(job.second_tasks()))
    for futs in seconds:
        for f in futs:
            f.result()
    return [job.out for job in jobs]


def _use_split(image: Image.Image, threads: int) -> Any:
    if threads < 2 or image.mode != "RGB" or image.width * image.height < _PARALLEL_MIN_PIXELS:
        return None
    return _pass_order()


def resize_exact(image: Image.Image, size: tuple[int, int], *, threads: int | None = None) -> np.ndarray:
    """``np.asarray(image.resize(size))`` for an RGB image, bit-identical, computed in parallel pieces
    (plain ``Image.resize`` for small images or one thread). Returns uint8 ``[size[1], size[0], 3]``."""
    if image.mode != "RGB":
        raise ValueError(f"resize_exact expects an RGB image, got mode {image.mode!r}")
    threads = threads or _num_threads()
    rule = _use_split(image, threads)
    if rule is None:
        return np.asarray(image.resize(size))
    return _run_resizes([_ExactResize(image, size, threads * _PIECES_PER_THREAD, rule)])[0]


# --------------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------------


def _as_rgb(image: Any) -> Image.Image:
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    return load_image(image)


def dynamic_tiles(
    image: Any,
    *,
    min_tiles: int = 1,
    max_tiles: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
) -> np.ndarray:
    """Cut an image into the official InternVL tiles.

    Args:
        image: a PIL image (converted to RGB like the official ``Image.convert("RGB")``), or any source
            :func:`tessera.images.load_image` accepts (path, URL, bytes, base64, numpy array).
        min_tiles, max_tiles: bounds on ``cols * rows`` (the official ``min_num`` / ``max_num``).
        image_size: tile side ``S`` (448 for the released models).
        use_thumbnail: append the whole image resized to ``S x S`` when the grid has more than one tile.

    Returns:
        uint8 ``[T, S, S, 3]`` (RGB, HWC): grid tiles in row-major order (left to right, top to bottom),
        then the thumbnail. Bit-identical to the official ``dynamic_preprocess``.
    """
    img = _as_rgb(image)
    w, h = img.size
    cols, rows = tile_grid(w, h, min_tiles=min_tiles, max_tiles=max_tiles, image_size=image_size)
    s = image_size
    blocks = cols * rows
    thumb = use_thumbnail and blocks != 1
    out = np.empty((blocks + int(thumb), s, s, 3), np.uint8)
    threads = _num_threads()
    rule = _use_split(img, threads)
    if rule is None:  # small image or one thread: plain PIL
        grid = np.asarray(img.resize((cols * s, rows * s)))
        # [rows*S, cols*S, 3] -> [rows, S, cols, S, 3] -> [rows, cols, S, S, 3]: row-major tiles
        out[:blocks] = grid.reshape(rows, s, cols, s, 3).transpose(0, 2, 1, 3, 4).reshape(blocks, s, s, 3)
        if thumb:
            out[blocks] = np.asarray(img.resize((s, s)))
        return out
    # The grid resize and the thumbnail run side by side; the grid's last pass writes the tiles directly.
    parts = threads * _PIECES_PER_THREAD
    jobs = [_ExactResize(img, (cols * s, rows * s), parts, rule, tile=s, out=out[:blocks])]
    if thumb:
        jobs.append(_ExactResize(img, (s, s), parts, rule))
    outs = _run_resizes(jobs)
    if thumb:
        out[blocks] = outs[1]
    return out


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------


_MEAN32 = np.array(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
_STD32 = np.array(IMAGENET_STD, np.float32).reshape(3, 1, 1)


def _normalise_tile(tiles: np.ndarray, out: np.ndarray, i: int) -> None:
    o = out[i]  # [3, S, S] float32
    np.copyto(o, tiles[i].transpose(2, 0, 1), casting="unsafe")  # [S, S, 3] uint8 -> [3, S, S] float32
    np.divide(o, np.float32(255), out=o)
    np.subtract(o, _MEAN32, out=o)
    np.divide(o, _STD32, out=o)


def to_pixel_values(
    tiles: np.ndarray | torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """uint8 tiles ``[T, S, S, 3]`` (HWC) -> normalised ``pixel_values`` ``[T, 3, S, S]``.

    The same float32 operations as the official ``ToTensor`` + ``Normalize`` (``x / 255``, ``- mean``,
    ``/ std``), so the values are bit-identical, then cast to ``dtype``. With a non-CPU ``device`` the uint8
    data (4x smaller than float32) is moved first and the normalisation runs there. On the CPU each tile is
    normalised by numpy in the preprocessing threads (cache-sized pieces, no OpenMP team to synchronise).
    """
    if isinstance(tiles, torch.Tensor):
        x = tiles
    else:
        x = torch.from_numpy(np.ascontiguousarray(tiles))
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(
            f"to_pixel_values expects uint8 tiles [T, S, S, 3], got {tuple(x.shape)} {x.dtype}; "
            "use dynamic_tiles() to make them"
        )
    target = torch.device(device) if device is not None else x.device
    if target.type == "cpu":
        arr = x.cpu().numpy()
        out = np.empty((arr.shape[0], 3, arr.shape[1], arr.shape[2]), np.float32)
        if arr.shape[0] > 1 and _num_threads() > 1:
            list(_pool().map(functools.partial(_normalise_tile, arr, out), range(arr.shape[0])))
        else:
            for i in range(arr.shape[0]):
                _normalise_tile(arr, out, i)
        pv = torch.from_numpy(out)
    else:
        pv = _normalise_torch(x.to(target))
    return pv if dtype == torch.float32 else pv.to(dtype)


def _normalise_torch(x: torch.Tensor) -> torch.Tensor:
    """The device path of :func:`to_pixel_values`: uint8 ``[T, S, S, 3]`` -> float32 ``[T, 3, S, S]``."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    pv = torch.empty((x.shape[0], 3, x.shape[1], x.shape[2]), dtype=torch.float32, device=x.device)
    pv.copy_(x.permute(0, 3, 1, 2))  # [T, S, S, 3] -> [T, 3, S, S], uint8 -> float32 in one pass
    return pv.div_(255.0).sub_(mean).div_(std)


def prepare_images(
    images: Sequence[Any],
    *,
    min_tiles: int = 1,
    max_tiles: int = 12,
    image_size: int = 448,
    use_thumbnail: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    max_images: int | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Load and tile several images for one prompt.

    Each image is tiled independently with the same ``max_tiles``, as the official inference examples do for
    "separate" multi-image input (``num_patches_list=[n1, n2, ...]``, one ``<image>`` placeholder per image).

    Sources are loaded with :func:`tessera.images.load_image` defaults; to restrict them (a server), load
    them first with the options you need and pass the PIL images. ``max_images`` raises
    :class:`tessera.images.TooManyImages` beyond that many.

    Returns:
        ``pixel_values`` ``[sum(num_patches_list), 3, S, S]`` (images in order, each image's tiles in
        :func:`dynamic_tiles` order) and ``num_patches_list`` (tiles per image).
    """
    if isinstance(images, (str, bytes, Image.Image, np.ndarray)) or not isinstance(images, Sequence):
        images = [images]
    if len(images) == 0:
        raise ValueError("prepare_images needs at least one image")
    check_image_count(len(images), max_images)
    tiles = [
        dynamic_tiles(
            img, min_tiles=min_tiles, max_tiles=max_tiles, image_size=image_size, use_thumbnail=use_thumbnail
        )
        for img in images
    ]
    counts = [t.shape[0] for t in tiles]
    stacked = tiles[0] if len(tiles) == 1 else np.concatenate(tiles)
    return to_pixel_values(stacked, dtype=dtype, device=device), counts
