"""Image sources, mode conversion, error types, and URL fetching with the SSRF guard (local servers only)."""

from __future__ import annotations

import base64
import io
import socket
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

import tessera.images as images
from tessera.images import (
    EmptyImage,
    ImageError,
    ImageFetchError,
    ImageNotFound,
    ImageTooLarge,
    InvalidImage,
    SourceNotAllowed,
    TooManyImages,
    URLNotAllowed,
    check_image_count,
    fetch_url,
    is_public_address,
    load_image,
)


def _noise(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- sources


def test_all_inline_and_local_sources_give_the_same_rgb_image(tmp_path):
    img = _noise()
    data = _encode(img)
    path = tmp_path / "an image é.png"  # file:// URLs percent-encode this name
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    sources = [
        str(path),
        path,
        path.as_uri(),
        data,
        bytearray(data),
        b64,
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        "data:image/png;base64," + b64,
        " data:image/png;base64," + b64[:40] + "\n" + b64[40:],
        img,
        np.asarray(img),
    ]
    for src in sources:
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (64, 48), type(src)
        assert np.array_equal(np.asarray(out), np.asarray(img)), type(src)


def test_numpy_shapes():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(np.asarray(load_image(gray)), np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(np.asarray(load_image(gray[:, :, None])), np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.random.default_rng(1).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    assert np.array_equal(np.asarray(load_image(rgba)), rgba[:, :, :3])  # alpha dropped, not composited


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "L", "1", "CMYK", "I", "F", "I;16", "YCbCr", "PA"])
def test_modes_convert_like_official(mode):
    """The official loader does Image.convert("RGB"); so do we, for every mode."""
    base = _noise(20, 10, seed=3)
    if mode == "I;16":
        src = Image.fromarray(np.random.default_rng(0).integers(0, 65536, (10, 20), dtype=np.uint16)).convert(mode)
    elif mode in ("I", "F"):
        src = base.convert("L").convert(mode)
    else:
        src = base.convert(mode)
    out = load_image(src)
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(src.convert("RGB")))
    # through an encoded file too where the format keeps the mode
    if mode in ("P", "RGBA", "LA", "L", "1", "I;16"):
        assert np.array_equal(np.asarray(load_image(_encode(src))), np.asarray(src.convert("RGB")))


def test_16bit_images_are_clipped_not_rescaled():
    """PIL's I;16 -> RGB conversion clips at 255 (documented behaviour we keep)."""
    arr = np.array([[0, 100, 255, 256, 65535]], dtype=np.uint16)
    out = np.asarray(load_image(_encode(Image.fromarray(arr))))
    assert out[0, :, 0].tolist() == [0, 100, 255, 255, 255]


# -------------------------------------------------------------------------------------------- errors


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a tiny (truncated) IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_refused_from_header_before_decoding():
    bomb = _png_header_only(12000, 12000)  # 144 MP claimed, a few bytes of data
    with pytest.raises(ImageTooLarge, match=r"12000x12000 = 144000000 pixels, more than the limit of 100000000"):
        load_image(bomb, max_pixels=100_000_000)
    with pytest.raises(ImageTooLarge, match="too large to decode safely"):  # PIL's own guard, default cap
        load_image(_png_header_only(30000, 30000))
    with pytest.raises(ImageTooLarge, match="more than the limit of 1000"):
        load_image(_encode(_noise()), max_pixels=1000)
    with pytest.raises(ImageTooLarge, match="more than the limit of 1000"):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=1000)
    # with a cap high enough the same header only fails as truncated data
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        load_image(_png_header_only(300, 300))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF"])
def test_truncated_files_are_errors(fmt, tmp_path):
    data = _encode(_noise(200, 150, seed=2), fmt)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(InvalidImage, match="truncated"):
        load_image(cut)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(cut)
    with pytest.raises(InvalidImage, match="truncated"):
        load_image(path)


@pytest.mark.parametrize(
    "source, error, match",
    [
        (b"not an image at all", InvalidImage, "not a recognised image file"),
        (b"", EmptyImage, "empty"),
        ("data:image/png;base64,%%%%", InvalidImage, "not valid base64"),
        ("data:text/plain;base64,aGVsbG8=", InvalidImage, "expected image/"),
        ("data:image/png,rawdata", InvalidImage, "malformed data URL"),
        ("A" * 65, InvalidImage, "not valid base64"),
        ("QUFBQUFB" * 10, InvalidImage, "not a recognised image file"),
        (np.zeros((0, 4, 3), np.uint8), EmptyImage, "empty"),
        (np.zeros((4, 4), np.float32), InvalidImage, "must be uint8"),
        (np.zeros((4, 4, 2), np.uint8), InvalidImage, r"\[H, W, 3\|4\]"),
        (Image.new("RGB", (0, 5)), EmptyImage, "empty"),
        (12345, InvalidImage, "unsupported image source of type int"),
        ("ftp://example.com/a.png", URLNotAllowed, "unsupported URL scheme"),
        ("gopher://example.com/", URLNotAllowed, "unsupported URL scheme"),
        ("no/such/file.png", ImageNotFound, "image file not found"),
    ],
)
def test_bad_inputs_raise_documented_errors(source, error, match):
    with pytest.raises(error, match=match) as info:
        load_image(source)
    assert isinstance(info.value, ImageError) and isinstance(info.value, ValueError)


def test_size_caps_on_inline_data():
    data = _encode(_noise())
    with pytest.raises(ImageTooLarge, match="byte limit"):
        load_image(data, max_bytes=100)
    with pytest.raises(ImageTooLarge, match="byte limit"):
        load_image(base64.b64encode(data).decode(), max_bytes=100)
    with pytest.raises(ImageTooLarge, match="byte limit"):
        load_image("data:image/png;base64," + base64.b64encode(data).decode(), max_bytes=100)


def test_disabled_sources(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_encode(_noise()))
    for src in (str(path), path, path.as_uri()):
        with pytest.raises(SourceNotAllowed, match="local files is disabled"):
            load_image(src, allow_local_files=False)
    with pytest.raises(SourceNotAllowed, match="URLs are disabled"):
        load_image("http://example.com/a.png", allow_urls=False)
    # base64 still works with files disabled
    assert load_image(base64.b64encode(path.read_bytes()).decode(), allow_local_files=False).size == (64, 48)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageNotFound, match="is not a file"):
        load_image(tmp_path)


def test_check_image_count():
    check_image_count(3, 3)
    check_image_count(100, None)
    with pytest.raises(TooManyImages, match="4 images given but at most 3"):
        check_image_count(4, 3)
    assert images.MAX_IMAGES >= 1
    check_image_count(images.MAX_IMAGES)


def test_http_status_hints():
    assert ImageTooLarge.http_status == 413 and ImageNotFound.http_status == 404
    assert URLNotAllowed.http_status == 403 and InvalidImage.http_status == 400


# ----------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "ip, public",
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:a00:1::", False),  # 6to4 wrapping 10.0.0.1
    ],
)
def test_is_public_address(ip, public):
    assert is_public_address(ip) is public


@pytest.fixture
def no_connections(monkeypatch):
    """Fail the test if anything tries to open a TCP connection."""
    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise AssertionError(f"unexpected connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/a.png",
        "http://192.168.1.10:8080/a.png",
        "http://[::1]/a.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, IPv4-mapped in hex
        "http://127.0.0.1:9/a.png",
        "http://localhost/a.png",
        "http://2130706433/a.png",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/a.png",
        "http://0.0.0.0/a.png",
        "https://[fe80::1]/a.png",
    ],
)
def test_private_urls_refused_without_traffic(url, no_connections):
    with pytest.raises(URLNotAllowed, match="non-public address"):
        load_image(url)
    with pytest.raises(URLNotAllowed):
        fetch_url(url, timeout=1)
    assert no_connections == []


def test_missing_httpx_is_a_clear_import_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match="image URLs need httpx"):
        fetch_url("http://127.0.0.1:9/a.png", allow_private=True)


def test_bad_urls_refused_without_traffic(no_connections):
    with pytest.raises(URLNotAllowed, match="credentials"):
        fetch_url("http://user:pw@10.0.0.1/")
    with pytest.raises(URLNotAllowed, match="scheme"):
        fetch_url("file:///etc/passwd")
    assert no_connections == []


class _Server:
    """A threaded HTTP server on a loopback address with scripted routes; counts requests."""

    def __init__(self, host: str, routes: dict):
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits.append(self.path)
                status, headers, body = routes.get(self.path, (404, {}, b"missing"))
                if callable(body):
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    body(self.wfile)
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v.format(port=server.port) if isinstance(v, str) else v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_bytes():
    return _encode(_noise(40, 30, seed=7))


@pytest.fixture
def local_server(image_bytes):
    def stream_forever(wfile):
        try:
            for _ in range(10000):
                wfile.write(b"x" * 65536)
        except OSError:
            pass

    routes = {
        "/img.png": (200, {"Content-Type": "image/png"}, image_bytes),
        "/redirect": (302, {"Location": "/img.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/big": (200, {"Content-Length": str(50 * 1024 * 1024)}, b""),
        "/stream": (200, {}, stream_forever),
        "/error": (500, {}, b"oops"),
        "/gone": (410, {}, b""),
        "/text": (200, {"Content-Type": "text/html"}, b"<html>not an image</html>"),
    }
    server = _Server("127.0.0.1", routes)
    yield server
    server.close()


def test_local_server_allowed_only_with_allow_private(local_server, image_bytes):
    url = local_server.url("/img.png")
    img = load_image(url, allow_private_urls=True)
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB")))
    assert fetch_url(url, allow_private=True) == image_bytes
    assert local_server.hits == ["/img.png", "/img.png"]
    with pytest.raises(URLNotAllowed, match="127.0.0.1"):
        load_image(url)
    assert len(local_server.hits) == 2  # the refused request never reached the server


def test_local_server_errors(local_server):
    ok = dict(allow_private=True, timeout=5)
    assert fetch_url(local_server.url("/redirect"), **ok)[:4] == b"\x89PNG"
    with pytest.raises(ImageFetchError, match="redirected more than 5 times"):
        fetch_url(local_server.url("/loop"), **ok)
    with pytest.raises(ImageTooLarge, match="byte limit"):
        fetch_url(local_server.url("/big"), **ok)
    with pytest.raises(ImageTooLarge, match="byte limit"):
        fetch_url(local_server.url("/stream"), max_bytes=1 << 20, **ok)
    with pytest.raises(ImageFetchError, match="HTTP 500"):
        fetch_url(local_server.url("/error"), **ok)
    with pytest.raises(ImageNotFound, match="HTTP 404"):
        fetch_url(local_server.url("/nothing"), **ok)
    with pytest.raises(ImageNotFound, match="HTTP 410"):
        fetch_url(local_server.url("/gone"), **ok)
    with pytest.raises(InvalidImage, match="not a recognised image"):
        load_image(local_server.url("/text"), allow_private_urls=True)


def test_unreachable_port_is_a_fetch_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ImageFetchError, match="failed"):
        fetch_url(f"http://127.0.0.1:{port}/x.png", allow_private=True, timeout=2)


def test_slow_server_times_out(image_bytes):
    def slow(wfile):
        import time

        wfile.write(image_bytes[:10])
        wfile.flush()
        time.sleep(3)

    server = _Server("127.0.0.1", {"/slow": (200, {"Content-Length": str(len(image_bytes))}, slow)})
    try:
        with pytest.raises(ImageFetchError, match="timed out|took more than"):
            fetch_url(server.url("/slow"), allow_private=True, timeout=0.5)
    finally:
        server.close()


def test_redirect_to_loopback_is_refused(monkeypatch, image_bytes):
    """A "public" server (127.0.0.2, declared public for this test) redirects to 127.0.0.1: the second hop
    is checked on its own and refused before any request reaches 127.0.0.1."""
    real = is_public_address
    monkeypatch.setattr(images, "is_public_address", lambda ip: str(ip) == "127.0.0.2" or real(ip))
    target = _Server("127.0.0.1", {"/img.png": (200, {}, image_bytes)})
    front = _Server("127.0.0.2", {"/r": (302, {"Location": target.url("/img.png")}, b"")})
    try:
        assert fetch_url(target.url("/img.png"), allow_private=True) == image_bytes  # target works
        target.hits.clear()
        with pytest.raises(URLNotAllowed, match="127.0.0.1"):
            fetch_url(front.url("/r"))
        assert front.hits == ["/r"] and target.hits == []
        with pytest.raises(URLNotAllowed):
            load_image(front.url("/r"))
        assert target.hits == []
    finally:
        target.close()
        front.close()


def test_host_header_is_the_original_name(monkeypatch, image_bytes):
    """The request goes to the checked IP but carries the original Host header."""
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen["host"] = self.headers["Host"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(image_bytes)))
            self.end_headers()
            self.wfile.write(image_bytes)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        assert fetch_url(f"http://localhost:{port}/a.png", allow_private=True) == image_bytes
        assert seen["host"] == f"localhost:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
