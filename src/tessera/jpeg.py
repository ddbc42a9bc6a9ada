"""JPEG files decoded straight to an RGB numpy array, with the same pixels as PIL.

PIL decodes a JPEG with libjpeg-turbo (accurate integer IDCT, "fancy" chroma upsampling) into its own
4-byte-per-pixel storage, from which ``np.asarray`` then packs 3-byte pixels. simplejpeg calls the same
libjpeg-turbo routines with the same settings and writes 3-byte RGB directly: about 30 % faster to decode
and no second pass. Being the same library with the same settings, the pixels are the same; that is checked
against PIL on probe images the first time (all chroma subsamplings, progressive, grayscale, odd sizes), and
the fast path stays off if anything differs or simplejpeg is not installed.

Only YCbCr and grayscale JPEGs take this path; CMYK/YCCK files, anything libjpeg warns about (PIL is more
lenient) and every other format are left to PIL, which also produces the error messages.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"
_COLORSPACES = ("YCbCr", "Gray")


def _decode(data: bytes) -> np.ndarray:
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False, strict=True)


@functools.lru_cache(maxsize=1)
def fast_jpeg_available() -> bool:
    """Whether JPEGs are decoded by simplejpeg (installed, and pixel-identical to PIL on the probes)."""
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return False
    rng = np.random.default_rng(7)
    for w, h in ((37, 23), (64, 48), (129, 67)):
        y, x = np.mgrid[0:h, 0:w]
        arr = np.stack([x * 255 // w, y * 255 // h, (x * y) % 256], -1) + rng.integers(0, 12, (h, w, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        for mode in ("RGB", "L"):
            for subsampling in (0, 1, 2):
                for progressive in (False, True):
                    buf = io.BytesIO()
                    img.convert(mode).save(buf, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
                    data = buf.getvalue()
                    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                    try:
                        got = _decode(data)
                    except ValueError:
                        return False
                    if not np.array_equal(got, want):
                        return False
    return True


def decode_rgb(data: bytes, check_size: Callable[[int, int], None]) -> np.ndarray | None:
    """Decode JPEG ``data`` to RGB uint8 ``[H, W, 3]``, or return ``None`` when PIL should do it (not a JPEG,
    not YCbCr/grayscale, a warning or error from libjpeg, or the fast path is off).

    ``check_size(width, height)`` runs on the header before any pixel is decoded and may raise (the
    decompression-bomb guard)."""
    if not data.startswith(JPEG_MAGIC) or not fast_jpeg_available():
        return None
    import simplejpeg

    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data, strict=True)
    except ValueError:
        return None
    if colorspace not in _COLORSPACES or width == 0 or height == 0:
        return None
    check_size(width, height)
    try:
        return _decode(data)
    except ValueError:
        return None
