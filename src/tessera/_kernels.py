"""The compiled loops of the preprocessing: :mod:`tessera.resample` and the CPU path of
:func:`tessera.preprocess.to_pixel_values` (numba; imported lazily, since compiling them or loading them
from numba's cache takes a moment that plain ``import tessera`` should not pay).

Every kernel processes a range of rows or tiles, so that several threads can share one call's work
(``nogil``). Pixels are 3 bytes (RGB).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_HALF = 1 << 21  # rounding term: Pillow starts each sum at 1 << (PRECISION_BITS - 1), PRECISION_BITS = 22


@njit(nogil=True, cache=True, boundscheck=False)
def resample_rows(src, start, length, weights, out, tile, cols, j0, j1):  # pragma: no cover - compiled
    """One Pillow resampling pass along axis 0, for output rows ``j0 .. j1``.

    ``src`` uint8 ``[N, L]``; output row ``j`` is ``sum_t weights[j, t] * src[start[j] + t]`` in int32 with
    Pillow's rounding and clipping (``(sum + 2**21) >> 22`` clipped to 0..255). The inner loop runs over the
    ``L`` contiguous bytes of a row, which the compiler turns into SIMD. Output row ``j`` is written as
    ``cols`` equal segments into ``out`` ``[n, tile, L // cols]``: segment ``c`` goes to
    ``out[(j // tile) * cols + c, j % tile]`` (the tiles of a grid in row-major order; a plain image is
    ``out = image[None]`` with ``tile = N_out``, ``cols = 1``).
    """
    width = src.shape[1]
    seg = width // cols
    acc = np.empty(width, np.int32)
    for j in range(j0, j1):
        for i in range(width):
            acc[i] = _HALF
        first = start[j]
        n = length[j]
        t = 0
        # taps 4 (then 2, then 1) at a time: fewer passes over acc; int32 sums wrap like Pillow's, so the
        # grouping does not change the result
        while t + 4 <= n:
            c0, c1, c2, c3 = weights[j, t], weights[j, t + 1], weights[j, t + 2], weights[j, t + 3]
            r0, r1, r2, r3 = src[first + t], src[first + t + 1], src[first + t + 2], src[first + t + 3]
            for i in range(width):
                acc[i] += np.int32(r0[i]) * c0 + np.int32(r1[i]) * c1 + np.int32(r2[i]) * c2 + np.int32(r3[i]) * c3
            t += 4
        if t + 2 <= n:
            c0, c1 = weights[j, t], weights[j, t + 1]
            r0, r1 = src[first + t], src[first + t + 1]
            for i in range(width):
                acc[i] += np.int32(r0[i]) * c0 + np.int32(r1[i]) * c1
            t += 2
        if t < n:
            c0 = weights[j, t]
            r0 = src[first + t]
            for i in range(width):
                acc[i] += np.int32(r0[i]) * c0
        base = (j // tile) * cols
        r = j % tile
        for tc in range(cols):
            dest = out[base + tc, r]
            off = tc * seg
            for i in range(seg):
                v = acc[off + i] >> 22
                dest[i] = 0 if v < 0 else (255 if v > 255 else v)


TRANSPOSE_ROWS = 64  # source rows per block: 192 bytes = 3 whole cache lines per output row
TRANSPOSE_COLS = 256  # source columns per block: source and output blocks (48 KiB each) stay in L2


@njit(nogil=True, cache=True, boundscheck=False)
def transpose_pixels(src, out, y0, y1, oy):  # pragma: no cover - compiled
    """Transpose RGB pixels: ``src`` ``[N, M * 3]`` -> ``out`` ``[M, (N + oy) * 3]``, for source rows ``y0 .. y1``
    (source row ``y`` becomes output pixel column ``y + oy``).

    Blocked (64 rows x 256 columns) so that both sides stay in cache and every output row receives whole
    cache lines; threads that split the rows on multiples of 64 never write to the same line."""
    m = src.shape[1] // 3
    for xb in range(0, m, TRANSPOSE_COLS):
        xe = min(xb + TRANSPOSE_COLS, m)
        for yb in range(y0, y1, TRANSPOSE_ROWS):
            ye = min(yb + TRANSPOSE_ROWS, y1)
            for x in range(xb, xe):
                o = out[x]
                for y in range(yb, ye):
                    s = src[y]
                    k = 3 * (y + oy)
                    o[k] = s[3 * x]
                    o[k + 1] = s[3 * x + 1]
                    o[k + 2] = s[3 * x + 2]


@njit(nogil=True, cache=True, boundscheck=False)
def normalise_tiles(tiles, lut, out, t0, t1):  # pragma: no cover - compiled
    """``out[t, c, y, x] = lut[c, tiles[t, y, x, c]]`` for tiles ``t0 .. t1``: uint8 HWC tiles ``[T, S, S, 3]``
    -> float32 CHW ``[T, 3, S, S]`` through a per-channel table of the 256 normalised values (computed with
    the official float32 operations, so the result is the same bit for bit, in one pass)."""
    s = tiles.shape[1]
    for t in range(t0, t1):
        for y in range(s):
            row = tiles[t, y]
            o0 = out[t, 0, y]
            o1 = out[t, 1, y]
            o2 = out[t, 2, y]
            for x in range(row.shape[0]):
                o0[x] = lut[0, row[x, 0]]
                o1[x] = lut[1, row[x, 1]]
                o2[x] = lut[2, row[x, 2]]
