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
the official code because the image is decoded and converted once, the grid and the thumbnail are resized
together by :mod:`tessera.resample` (Pillow's integer arithmetic, bit for bit, as SIMD loops in parallel
threads), whose last pass writes the tiles straight into one array.

Shapes: ``T`` = tiles, ``S`` = tile size (448 for the released models), ``H, W`` = image height/width.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from tessera import resample
from tessera.images import check_image_count, load_pixels, unloaded_jpeg_pixels

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
# Resize
# --------------------------------------------------------------------------------------------------


def resize_exact(image: Image.Image, size: tuple[int, int], *, threads: int | None = None) -> np.ndarray:
    """``np.asarray(image.resize(size))`` for an RGB image, bit-identical, computed by tessera's compiled
    resampler (:mod:`tessera.resample`). Returns uint8 ``[size[1], size[0], 3]``."""
    return resample.resize(image, size, threads=threads)


# --------------------------------------------------------------------------------------------------
# Tiles
# --------------------------------------------------------------------------------------------------


def _rgb_pixels(image: Any) -> Image.Image | np.ndarray:
    """An RGB PIL image or uint8 ``[H, W, 3]`` pixels, whichever is at hand or faster to get (a JPEG source
    is decoded straight to an array, see :func:`tessera.images.load_pixels`)."""
    if isinstance(image, Image.Image):
        arr = unloaded_jpeg_pixels(image)  # Image.open("x.jpg") handed over before decoding
        if arr is not None:
            return arr
        if image.mode == "RGB":
            return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    return load_pixels(image)


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
    img = _rgb_pixels(image)
    h, w = img.shape[:2] if isinstance(img, np.ndarray) else (img.height, img.width)
    cols, rows = tile_grid(w, h, min_tiles=min_tiles, max_tiles=max_tiles, image_size=image_size)
    s = image_size
    blocks = cols * rows
    thumb = use_thumbnail and blocks != 1
    out = np.empty((blocks + int(thumb), s, s, 3), np.uint8)
    jobs = [((cols * s, rows * s), s)] + ([((s, s), s)] if thumb else [])
    # one pass over the image for both: the grid's last pass writes the tiles, the thumbnail goes last
    resample.resize_many(img, jobs, [out[:blocks], out[blocks:]] if thumb else [out])
    return out


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------


_MEAN32 = np.array(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
_STD32 = np.array(IMAGENET_STD, np.float32).reshape(3, 1, 1)


@functools.lru_cache(maxsize=1)
def _normalise_lut() -> np.ndarray:
    """float32 ``[3, 256]``: every uint8 value of each channel normalised by :func:`_normalise_tile`'s
    float32 operations, so a lookup gives the same bits."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(1, 256, 1, 3)  # a 256x1 "tile"
    out = np.empty((1, 3, 256, 1), np.float32)
    _normalise_tile(values, out, 0)
    return np.ascontiguousarray(out[0, :, :, 0])


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
    data (4x smaller than float32) is moved first and the normalisation runs there. On the CPU a compiled
    loop looks every value up in a table of the 256 normalised values per channel, tiles split over the
    preprocessing threads (numpy per tile, same values, without numba).
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
        arr = np.ascontiguousarray(x.cpu().numpy())
        out = np.empty((arr.shape[0], 3, arr.shape[1], arr.shape[2]), np.float32)
        threads = resample.num_threads()
        small = arr.size < resample.SMALL_OUTPUT_PIXELS * 3  # numpy: no numba start for a few small tiles
        if not small and resample.kernels_available():  # one table lookup per value, tiles split over threads
            from tessera._kernels import normalise_tiles

            pieces = resample.splits(arr.shape[0], threads)
            args = [(arr, _normalise_lut(), out, a, b) for a, b in pieces]
            if len(args) > 1:
                list(resample.pool().map(lambda a: normalise_tiles(*a), args))
            else:
                normalise_tiles(*args[0])
        elif arr.shape[0] > 1 and threads > 1:
            list(resample.pool().map(functools.partial(_normalise_tile, arr, out), range(arr.shape[0])))
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
