"""Image inputs: load any supported source into an RGB ``PIL.Image``, safely.

Sources accepted by :func:`load_image`:

* a file path (``str`` or ``pathlib.Path``; ``file://`` URLs too),
* an ``http://`` / ``https://`` URL (fetched by :func:`fetch_url`: size cap, timeout, SSRF guard),
* raw encoded bytes (``bytes`` / ``bytearray`` / ``memoryview``),
* a base64 string, or a ``data:image/...;base64,...`` URL,
* a ``PIL.Image.Image`` (any mode),
* a numpy array: ``[H, W]`` grayscale, ``[H, W, 1]``, ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA, uint8.

Every image ends up in RGB through ``Image.convert("RGB")``, exactly like the official ``load_image``:
alpha is dropped (not composited), palettes are expanded, CMYK is converted by PIL's formula, and 16/32-bit
integer and float images are **clipped** to 0..255 (PIL does not rescale them: a 16-bit PNG with values
above 255 turns white). EXIF orientation is not applied (the official code does not either).

All errors derive from :class:`ImageError` (a ``ValueError``) and carry an ``http_status`` hint for servers.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import numpy as np
from PIL import Image, UnidentifiedImageError

from tessera import jpeg

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MAX_IMAGES",
    "MAX_REDIRECTS",
    "ImageError",
    "ImageNotFound",
    "InvalidImage",
    "ImageTooLarge",
    "EmptyImage",
    "TooManyImages",
    "SourceNotAllowed",
    "URLNotAllowed",
    "ImageFetchError",
    "load_image",
    "load_pixels",
    "unloaded_jpeg_pixels",
    "fetch_url",
    "check_image_count",
    "is_public_address",
]

# PIL's own decompression-bomb error threshold (2 * PIL.Image.MAX_IMAGE_PIXELS), about 13,400 x 13,400.
DEFAULT_MAX_PIXELS = 178_956_970
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # encoded size cap for URLs, bytes and base64 input
DEFAULT_TIMEOUT = 10.0  # seconds, whole download
MAX_IMAGES = 16  # default cap on images per request
MAX_REDIRECTS = 5


class ImageError(ValueError):
    """Base class of all image input errors. ``http_status`` is the status a server should answer."""

    http_status = 400


class ImageNotFound(ImageError):
    """The file does not exist, or the URL answered 404/410."""

    http_status = 404


class InvalidImage(ImageError):
    """Not a decodable image: unknown format, truncated or corrupt data, bad base64, bad array."""


class ImageTooLarge(ImageError):
    """More pixels than ``max_pixels`` (checked from the header, before decoding) or more bytes than
    ``max_bytes``."""

    http_status = 413


class EmptyImage(ImageError):
    """Zero width or height, or zero bytes."""


class TooManyImages(ImageError):
    """More images in one request than the configured limit."""


class SourceNotAllowed(ImageError):
    """The kind of source is disabled (local files or URLs)."""

    http_status = 403


class URLNotAllowed(SourceNotAllowed):
    """The URL's scheme or address is refused (SSRF guard: private, loopback, link-local, ... addresses)."""


class ImageFetchError(ImageError):
    """Downloading the URL failed (network error, timeout, HTTP error status)."""

    http_status = 502


def check_image_count(n: int, limit: int | None = MAX_IMAGES) -> None:
    """Raise :class:`TooManyImages` when ``n`` images exceed ``limit`` (``None`` = no limit)."""
    if limit is not None and n > limit:
        raise TooManyImages(
            f"{n} images given but at most {limit} are allowed per request; send fewer images "
            "or raise the limit (max_images)"
        )


# --------------------------------------------------------------------------------------------------
# URL fetching with an SSRF guard
# --------------------------------------------------------------------------------------------------


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bool:
    """True for a globally routable unicast address; False for loopback, private (10/8, 172.16/12,
    192.168/16, fc00::/7, 100.64/10), link-local (169.254/16 incl. cloud metadata, fe80::/10), unspecified,
    multicast and reserved addresses. IPv4-mapped / IPv4-compatible / 6to4 / Teredo IPv6 addresses are judged
    by the IPv4 address they embed."""
    ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
            embedded = ipaddress.IPv4Address(int(ip))
        if embedded is not None and not is_public_address(embedded):
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _resolve(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (IP literals resolve to themselves without DNS traffic)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ImageFetchError(f"cannot resolve host {host!r}: {e}; check the URL") from e
    return list(dict.fromkeys(info[4][0] for info in infos))


def _checked_targets(url: str, allow_private: bool) -> tuple[list[str], str, str]:
    """Check ``url``; return ``(candidate URLs with the host replaced by each checked IP, Host header, host)``.

    Connecting to an address that was checked (instead of letting the HTTP client resolve the name again)
    closes the DNS-rebinding gap between the check and the connection.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise URLNotAllowed(f"URL scheme {parts.scheme!r} is not allowed; use http:// or https://")
    host = parts.hostname
    if not host:
        raise URLNotAllowed(f"URL {url!r} has no host name")
    if parts.username or parts.password:
        raise URLNotAllowed("URLs with credentials (user:password@) are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise URLNotAllowed(f"URL {url!r} has an invalid port") from e
    addresses = _resolve(host, port)
    if not allow_private:
        refused = [a for a in addresses if not is_public_address(a.split("%")[0])]
        if refused or not addresses:
            raise URLNotAllowed(
                f"refusing to fetch {url!r}: {host!r} resolves to a non-public address ({', '.join(refused)}); "
                "loopback, private, link-local and reserved addresses are blocked. Send the image inline "
                "(base64) instead, or allow private URLs (allow_private_urls=True) if this server is trusted"
            )
    targets = []
    for ip in addresses:
        ip_host = f"[{ip}]" if ":" in ip else ip
        targets.append(urlunsplit((parts.scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, "")))
    return targets, parts.netloc.rsplit("@", 1)[-1], host


def fetch_url(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_private: bool = False,
    max_redirects: int = MAX_REDIRECTS,
) -> bytes:
    """Download ``url`` (http/https) and return its body.

    Streamed with a ``max_bytes`` cap and a ``timeout`` (seconds) over the whole download. Redirects (at
    most ``max_redirects``) are followed by hand so that every hop goes through the same checks: unless
    ``allow_private``, the host name is resolved first and the request is refused, with no connection made,
    when any of its addresses is not public (see :func:`is_public_address`). The connection then goes to
    a checked address (the next one if connecting fails), with the original ``Host`` header and TLS server
    name. Environment proxies are ignored.
    """
    try:
        import httpx
    except ImportError as e:
        raise ImportError("image URLs need httpx: pip install httpx (or pip install 'tessera[serve]')") from e

    deadline = time.monotonic() + timeout
    current = url
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
        for _hop in range(max_redirects + 1):
            targets, host_header, host = _checked_targets(current, allow_private)
            extensions = {"sni_hostname": host} if urlsplit(current).scheme == "https" else {}
            headers = {"Host": host_header, "Accept": "image/*"}
            for i, target in enumerate(targets):
                try:
                    with client.stream("GET", target, headers=headers, extensions=extensions) as resp:
                        if not resp.is_redirect:
                            return _read_body(resp, current, max_bytes, timeout, deadline)
                        location = resp.headers.get("location")
                        if not location:
                            raise ImageFetchError(f"{current!r} redirected without a Location header")
                        current = urljoin(current, location)
                        break
                except httpx.ConnectError as e:
                    if i + 1 < len(targets):
                        continue
                    raise ImageFetchError(f"downloading {current!r} failed: cannot connect ({e})") from e
                except httpx.TimeoutException as e:
                    raise ImageFetchError(f"downloading {current!r} timed out after {timeout} s") from e
                except httpx.HTTPError as e:
                    raise ImageFetchError(f"downloading {current!r} failed: {e}") from e
        raise ImageFetchError(f"{url!r} redirected more than {max_redirects} times")


def _read_body(resp: Any, url: str, max_bytes: int, timeout: float, deadline: float) -> bytes:
    if resp.status_code in (404, 410):
        raise ImageNotFound(f"{url!r} answered HTTP {resp.status_code}; check the URL")
    if resp.status_code >= 400:
        raise ImageFetchError(f"{url!r} answered HTTP {resp.status_code}")
    too_large = f"{url!r} is more than the {max_bytes}-byte limit; send a smaller image"
    length = resp.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise ImageTooLarge(too_large)
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(too_large)
        if time.monotonic() > deadline:
            raise ImageFetchError(f"downloading {url!r} took more than {timeout} s")
        chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------

_BASE64_RE = re.compile(r"[A-Za-z0-9+/=_\-\s]+")
_DATA_URL_RE = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)", re.S)


def _b64decode(text: str, what: str) -> bytes:
    clean = "".join(text.split())
    clean = clean.replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
    clean += "=" * (-len(clean) % 4)
    try:
        return base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidImage(f"{what} is not valid base64 ({e}); send the encoded image file as base64") from e


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width == 0 or height == 0:
        raise EmptyImage(f"{what} is empty ({width}x{height} pixels); send an image with content")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"{what} is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}; "
            "downscale it before sending (or raise max_pixels)"
        )


def _check_jpeg_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """The checks PIL's path makes before decoding: ``max_pixels`` and PIL's own bomb limit."""
    _check_pixels(width, height, max_pixels, what)
    if Image.MAX_IMAGE_PIXELS and width * height > 2 * Image.MAX_IMAGE_PIXELS:
        raise ImageTooLarge(
            f"{what} is too large to decode safely ({width}x{height} pixels); downscale it before sending (PIL "
            "refuses more than 2 * PIL.Image.MAX_IMAGE_PIXELS pixels whatever max_pixels says)"
        )


def _starts_like_jpeg(data: bytes | Path) -> bool:
    if isinstance(data, Path):
        try:
            with open(data, "rb") as f:
                head = f.read(len(jpeg.JPEG_MAGIC))
        except OSError:  # PIL's path reports it
            return False
    else:
        head = bytes(data[: len(jpeg.JPEG_MAGIC)])
    return head == jpeg.JPEG_MAGIC


def _decode(data: bytes | Path, max_pixels: int | None, what: str, fast_jpeg: bool = False) -> Image.Image | np.ndarray:
    """Open, check the header size against ``max_pixels``, then decode fully (truncation is an error).
    With ``fast_jpeg``, a YCbCr/grayscale JPEG comes back as an RGB uint8 array (:mod:`tessera.jpeg`)."""
    if fast_jpeg and _starts_like_jpeg(data):  # other files are not read twice
        raw = data.read_bytes() if isinstance(data, Path) else bytes(data)
        arr = jpeg.decode_rgb(raw, lambda w, h: _check_jpeg_size(w, h, max_pixels, what))
        if arr is not None:
            return arr
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise EmptyImage(f"{what} is empty (0 bytes)")
        fp: Any = io.BytesIO(data)
    else:
        fp = data
    try:
        img = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(
            f"{what} is too large to decode safely ({e}); downscale it before sending (PIL refuses more than "
            "2 * PIL.Image.MAX_IMAGE_PIXELS pixels whatever max_pixels says)"
        ) from e
    except UnidentifiedImageError as e:
        raise InvalidImage(f"{what} is not a recognised image file; send a JPEG, PNG, WebP, GIF, BMP or TIFF") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidImage(
            f"{what} cannot be read as an image ({e}): it is truncated, corrupt or in an unsupported format; "
            "send a complete JPEG, PNG, WebP, GIF, BMP or TIFF file"
        ) from e
    try:
        _check_pixels(img.width, img.height, max_pixels, what)
        img.load()  # full decode now: truncated or corrupt data raises here instead of being padded
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        img.close()
        if isinstance(e, ImageError):
            raise
        raise InvalidImage(f"{what} is truncated or corrupt ({e}); send the complete file") from e
    return img


def _from_array(arr: np.ndarray, what: str) -> Image.Image:
    if arr.dtype != np.uint8:
        raise InvalidImage(
            f"{what}: numpy images must be uint8 (0..255), got {arr.dtype}; convert with "
            "(x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidImage(
            f"{what}: expected a [H, W] grayscale or [H, W, 3|4] RGB(A) array, got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise EmptyImage(f"{what} is empty (shape {arr.shape}); send an image with content")
    return Image.fromarray(np.ascontiguousarray(arr))


def _looks_like_base64(text: str) -> bool:
    return len(text) >= 64 and _BASE64_RE.fullmatch(text) is not None


def load_image(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_urls: bool = True,
    allow_local_files: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_private_urls: bool = False,
) -> Image.Image:
    """Load an image from any supported source (see the module docstring) as an RGB ``PIL.Image``.

    Args:
        max_pixels: refuse images with more pixels (width * height), checked from the file header before
            any pixel is decoded (decompression bombs). ``None`` disables the check. PIL's own guard still refuses
            more than ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (178,956,970 by default) and warns above half that;
            raise ``PIL.Image.MAX_IMAGE_PIXELS`` too to accept bigger images.
        allow_urls / allow_local_files: enable URL fetching / reading paths (servers usually disable files).
        timeout, max_bytes, allow_private_urls: passed to :func:`fetch_url`; ``max_bytes`` also caps inline
            bytes and base64 data (not local files).

    Raises:
        ImageError subclasses: ImageNotFound, InvalidImage, ImageTooLarge, EmptyImage, SourceNotAllowed,
        URLNotAllowed, ImageFetchError.
    """
    return _load(source, max_pixels, allow_urls, allow_local_files, timeout, max_bytes, allow_private_urls, False)


def load_pixels(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_urls: bool = True,
    allow_local_files: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_private_urls: bool = False,
) -> Image.Image | np.ndarray:
    """:func:`load_image`, except that a JPEG (file, URL, bytes, base64) comes back as an RGB uint8 array
    ``[H, W, 3]`` decoded straight from the file (:mod:`tessera.jpeg`: the same pixels, no PIL image in
    between); other sources give the same RGB ``PIL.Image`` as :func:`load_image`. The preprocessing uses it
    for sources it loads itself."""
    return _load(source, max_pixels, allow_urls, allow_local_files, timeout, max_bytes, allow_private_urls, True)


def unloaded_jpeg_pixels(image: Image.Image, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """RGB uint8 ``[H, W, 3]`` of a JPEG that ``Image.open`` opened but nothing has decoded yet, decoded by
    :mod:`tessera.jpeg` from the same open file (the pixels PIL would give after ``convert("RGB")``). ``None``
    when that does not apply (already loaded or changed, a ``draft`` scale, CMYK, not a JPEG...): use PIL."""
    if image.format != "JPEG" or image.mode not in ("RGB", "L") or len(getattr(image, "tile", ()) or ()) != 1:
        return None
    config = getattr(image, "decoderconfig", ())
    fp = getattr(image, "fp", None)
    if (config and config[0] not in (0, 1)) or fp is None or not hasattr(fp, "seek"):
        return None
    try:
        where = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(where)
    except (OSError, ValueError):
        return None
    arr = jpeg.decode_rgb(data, lambda w, h: _check_jpeg_size(w, h, max_pixels, "the image"))
    if arr is None or arr.shape[:2] != (image.height, image.width):
        return None
    return arr


def _load(source, max_pixels, allow_urls, allow_local_files, timeout, max_bytes, allow_private_urls, fast_jpeg):
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, max_pixels, "the image")
        try:
            source.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise InvalidImage(f"the image is truncated or corrupt ({e}); send the complete file") from e
        return source if source.mode == "RGB" else source.convert("RGB")
    if isinstance(source, np.ndarray):
        img = _from_array(source, "the array")
        _check_pixels(img.width, img.height, max_pixels, "the array")
        return img.convert("RGB")
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > max_bytes:
            raise ImageTooLarge(f"the image data is {len(source)} bytes, more than the {max_bytes}-byte limit")
        img = _decode(bytes(source), max_pixels, "the image data", fast_jpeg)
    elif isinstance(source, (str, Path)):
        img = _load_str_source(
            source, max_pixels, allow_urls, allow_local_files, timeout, max_bytes, allow_private_urls, fast_jpeg
        )
    else:
        raise InvalidImage(
            f"unsupported image source of type {type(source).__name__}; pass a path, URL, bytes, base64 "
            "string, PIL image or numpy array"
        )
    if isinstance(img, np.ndarray):
        return img
    return img if img.mode == "RGB" else img.convert("RGB")


def _load_str_source(source, max_pixels, allow_urls, allow_local_files, timeout, max_bytes, allow_private,
                     fast_jpeg=False):
    if isinstance(source, Path):
        return _load_path(source, max_pixels, allow_local_files, fast_jpeg)
    text = source.strip()
    lowered = text[:16].lower()
    if lowered.startswith("data:"):
        m = _DATA_URL_RE.fullmatch(text)
        if m is None:
            raise InvalidImage("malformed data URL; expected data:image/<type>;base64,<data>")
        if m.group("mime") and not m.group("mime").lower().startswith("image/"):
            raise InvalidImage(f"data URL has media type {m.group('mime')!r}; expected image/*")
        if len(m.group("data")) > max_bytes * 4 // 3 + 4:
            raise ImageTooLarge(f"the data URL is more than the {max_bytes}-byte limit")
        return _decode(_b64decode(m.group("data"), "the data URL"), max_pixels, "the data URL image", fast_jpeg)
    if lowered.startswith(("http://", "https://")):
        if not allow_urls:
            raise SourceNotAllowed("image URLs are disabled here; send the image inline as base64")
        data = fetch_url(text, timeout=timeout, max_bytes=max_bytes, allow_private=allow_private)
        return _decode(data, max_pixels, f"the image at {text!r}", fast_jpeg)
    if lowered.startswith("file://"):
        return _load_path(Path(url2pathname(urlsplit(text).path)), max_pixels, allow_local_files, fast_jpeg)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        raise URLNotAllowed(f"unsupported URL scheme in {text[:40]!r}; use http(s)://, data: or base64")
    if _looks_like_base64(text) and not (allow_local_files and _is_file(text)):
        if len(text) > max_bytes * 4 // 3 + 4:
            raise ImageTooLarge(f"the base64 image is more than the {max_bytes}-byte limit")
        return _decode(_b64decode(text, "the base64 string"), max_pixels, "the base64 image", fast_jpeg)
    return _load_path(Path(text), max_pixels, allow_local_files, fast_jpeg)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:
        return False


def _load_path(path: Path, max_pixels, allow_local_files, fast_jpeg=False) -> Image.Image | np.ndarray:
    if not allow_local_files:
        raise SourceNotAllowed(
            "reading local files is disabled here; send the image as base64, a data URL or an http(s) URL"
        )
    if not path.exists():
        raise ImageNotFound(
            f"image file not found: {str(path)!r}; check the path (a string is read as a file path unless it "
            "is an http(s):// or data: URL or base64 data of at least 64 characters)"
        )
    if not path.is_file():
        raise ImageNotFound(f"{str(path)!r} is not a file")
    return _decode(path, max_pixels, f"the file {str(path)!r}", fast_jpeg)
