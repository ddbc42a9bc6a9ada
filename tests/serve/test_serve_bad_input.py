"""Bad input never crashes the server and never yields a 500: every case gets a 4xx with an OpenAI-style
error body naming the problem, and the server answers normally afterwards. Includes the SSRF guard.

No test here sends traffic to a non-loopback address: ``no_outside_traffic`` makes any such connection
(and any DNS lookup of a name other than localhost) fail the test instead of happening.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading

import httpx
import pytest
from serve_helpers import data_url, image_part, noise_image, png_bytes, png_header_only, running_server

from tessera.serve.prepare import DEFAULT_MAX_MODEL_LEN  # context per request (continuous batching)

PNG = png_bytes(noise_image(32, 24))
FAKE_DNS = {"metadata.internal.test": "169.254.169.254", "intranet.internal.test": "10.1.2.3"}


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def guard():
    """Refuse connections to non-loopback addresses and real DNS lookups, for the whole module."""
    mp = pytest.MonkeyPatch()
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo
    attempts: list = []

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else ""
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not (host.startswith("127.") or host == "::1"):
            attempts.append(address)
            raise ConnectionRefusedError(f"test guard: refused a connection to non-loopback {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, port, *args, **kwargs):
        if host in FAKE_DNS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (FAKE_DNS[host], port or 80))]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in str(host) else socket.AF_INET, str(host))
        except OSError:
            if host != "localhost":
                raise socket.gaierror(f"test guard: no DNS lookups ({host!r})") from None
        return real_getaddrinfo(host, port, *args, **kwargs)

    mp.setattr(socket.socket, "connect", connect)
    mp.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    mp.undo()
    assert not attempts, f"the server tried to connect outside loopback: {attempts}"


class _ImageHandler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}
    redirect_to = ""

    def do_GET(self):
        key = f"{self.server.server_address[0]}{self.path}"
        self.hits[key] = self.hits.get(key, 0) + 1
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def image_hosts():
    """Two local HTTP servers: the 'internal' one on 127.0.0.1 and a redirector on 127.0.0.2."""
    servers = [http.server.ThreadingHTTPServer((host, 0), _ImageHandler) for host in ("127.0.0.1", "127.0.0.2")]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    internal, redirector = (f"http://{s.server_address[0]}:{s.server_address[1]}" for s in servers)
    _ImageHandler.redirect_to = internal + "/secret.png"
    yield internal, redirector, _ImageHandler.hits
    for s in servers:
        s.shutdown()


@pytest.fixture(scope="module")
def server(guard):
    with running_server(max_body_bytes=2_000_000, max_images=16) as s:
        yield s


def post(server, body, raw: bytes | None = None, **kwargs):
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(server.url + "/v1/chat/completions", content=content, timeout=30,
                      headers={"Content-Type": "application/json"}, **kwargs)


def user(*content, **extra):
    return {"messages": [{"role": "user", "content": list(content) if len(content) != 1 or isinstance(
        content[0], dict) else content[0]}], "max_tokens": 4, **extra}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def check_error(r, status: int, code: str | None, words: tuple[str, ...] = (), param: str | None = None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"], body
    assert err["type"] and err["type"] != "server_error", body
    if code is not None:
        assert err["code"] == code, body
    for w in words:
        assert w.lower() in err["message"].lower(), body
    if param is not None:
        assert err["param"] == param, body


# ---------------------------------------------------------------------------------------------- the table
TRUNCATED = PNG[: len(PNG) // 2]
ONE = data_url(PNG)
CASES = [
    # (name, body or raw bytes, status, code, words in the message, param)
    ("malformed JSON", b'{"messages": [', 400, "invalid_json", ("json",), None),
    ("not UTF-8", b"\xff\xfe\x00", 400, "invalid_json", ("json",), None),
    ("empty body", b"", 400, "invalid_json", ("json",), None),
    ("body is a list", b"[]", 400, None, ("object",), None),
    ("messages missing", {"model": None}, 400, None, ("required",), "messages"),
    ("messages empty", {"messages": []}, 400, None, ("at least 1",), "messages"),
    ("messages not a list", {"messages": "hi"}, 400, None, ("array",), "messages"),
    ("content wrong type", {"messages": [{"role": "user", "content": 5}]}, 400, None, ("string",),
     "messages.0.content"),
    ("unknown role", {"messages": [{"role": "tool", "content": "x"}]}, 400, None, ("role",), "messages.0.role"),
    ("unknown part type", user({"type": "audio", "audio": "x"}), 400, None, ("audio",), "messages.0.content.0"),
    ("text part not a string", user({"type": "text", "text": 3}), 400, None, ("string",),
     "messages.0.content.0.text"),
    ("max_tokens a string", user("hi", max_tokens="5"), 400, None, ("integer",), "max_tokens"),
    ("max_tokens zero", user("hi", max_tokens=0), 400, "invalid_value", ("max_tokens",), "max_tokens"),
    ("max_tokens negative", user("hi", max_tokens=-3), 400, "invalid_value", ("max_tokens",), "max_tokens"),
    ("max_tokens huge", user("hi", max_tokens=10**9), 400, "invalid_value", ("max_tokens",), "max_tokens"),
    ("max_completion_tokens zero", user("hi", max_completion_tokens=0), 400, "invalid_value", (),
     "max_completion_tokens"),
    ("max_tokens past the context", user("hi", max_tokens=DEFAULT_MAX_MODEL_LEN), 400, "context_length_exceeded",
     ("context length",), "max_tokens"),
    ("temperature negative", user("hi", temperature=-1), 400, None, ("temperature",), "temperature"),
    ("temperature too high", user("hi", temperature=7), 400, None, ("temperature",), "temperature"),
    ("top_p zero", user("hi", top_p=0), 400, None, ("top_p",), "top_p"),
    ("temperature NaN", b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400, None,
     ("finite",), "temperature"),
    ("repetition_penalty infinite", b'{"messages": [{"role": "user", "content": "hi"}], "repetition_penalty": '
     b'Infinity}', 400, None, ("finite",), "repetition_penalty"),
    ("stream not a bool", user("hi", stream="yes"), 400, None, ("boolean",), "stream"),
    ("stop not strings", user("hi", stop=[1]), 400, None, ("string",), "stop.0"),
    ("too many stops", user("hi", stop=[f"s{i}" for i in range(17)]), 400, "invalid_value", ("stop",), "stop"),
    ("n above 1", user("hi", n=2), 400, "unsupported_value", ("n=2",), "n"),
    ("seed out of range", user("hi", seed=2**70), 400, None, ("seed",), "seed"),
    ("max_tiles zero", user("hi", max_tiles=0), 400, None, ("max_tiles",), "max_tiles"),
    ("max_tiles above the server's", user("hi", max_tiles=13), 400, "invalid_value", ("max_tiles",), "max_tiles"),
    ("unknown model", user("hi", model="gpt-4o"), 404, "model_not_found", ("gpt-4o",), "model"),
    ("last message from the assistant", {"messages": [{"role": "user", "content": "a"},
                                                      {"role": "assistant", "content": "b"}]}, 400, None,
     ("last message",), "messages"),
    ("starts with the assistant", {"messages": [{"role": "assistant", "content": "b"},
                                                {"role": "user", "content": "a"}]}, 400, None, ("start",), None),
    ("image in a system message", {"messages": [{"role": "system", "content": [image_part(ONE)]},
                                                {"role": "user", "content": "a"}]}, 400, None, ("only user",), None),
    ("<image> without an image", user("what is <image>?"), 400, None, ("placeholder",), "messages.0.content"),
    ("image special token as text", user("hi <IMG_CONTEXT> there"), 400, None, ("IMG_CONTEXT",), None),
    ("bad base64", user(image_part("data:image/png;base64,@@@not base64@@@"), text("hi")), 400, "invalid_image",
     ("base64",), "messages.0.content.0.image_url"),
    ("not an image", user(image_part(data_url(b"just some text, not a picture" * 4)), text("hi")), 400,
     "invalid_image", ("not a recognised image",), "messages.0.content.0.image_url"),
    ("data URL of another type", user(image_part("data:text/plain;base64,aGVsbG8="), text("hi")), 400,
     "invalid_image", ("image/",), "messages.0.content.0.image_url"),
    ("truncated image", user(text("hi"), image_part(data_url(TRUNCATED))), 400, "invalid_image", ("truncated",),
     "messages.0.content.1.image_url"),
    ("decompression bomb", user(image_part(data_url(png_header_only(100_000, 100_000))), text("hi")), 413,
     "image_too_large", ("pixels",), "messages.0.content.0.image_url"),
    ("empty image", user(image_part("data:image/png;base64,"), text("hi")), 400, None, (),
     "messages.0.content.0.image_url"),
    ("too many images", user(*[image_part(ONE)] * 17, text("hi")), 400, "too_many_images", ("17 images",),
     "messages"),
    ("prompt longer than the context", user("hello world " * 17000), 400, "context_length_exceeded",
     ("context length",), "messages"),
    ("body over the size limit", user("x" * 2_100_000), 413, "request_too_large", ("limit",), None),
    ("local file path refused", user(image_part("/etc/hostname"), text("hi")), 403, "source_not_allowed",
     ("local files",), "messages.0.content.0.image_url"),
    ("file:// URL refused", user(image_part("file:///etc/hostname"), text("hi")), 403, "source_not_allowed",
     ("local files",), None),
    ("unsupported URL scheme", user(image_part("ftp://example.com/a.png"), text("hi")), 403, "url_not_allowed",
     ("scheme",), None),
    ("function calling", user("hi", tools=[{"type": "function"}]), 400, "unsupported_value", ("tools",), "tools"),
]


@pytest.mark.parametrize("name,body,status,code,words,param", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_4xx(server, name, body, status, code, words, param):
    raw = body if isinstance(body, bytes) else None
    check_error(post(server, body, raw=raw), status, code, words, param)


def test_wrong_method_and_route(server):
    check_error(httpx.get(server.url + "/v1/chat/completions"), 405, None, ("not allowed",))
    check_error(httpx.get(server.url + "/v1/nothing-here"), 404, None, ("no route",))
    check_error(httpx.get(server.url + "/v1/tile_grid", params={"width": 0, "height": 5}), 400, None, (), "width")
    check_error(httpx.get(server.url + "/v1/tile_grid", params={"width": "x", "height": 5}), 400, None, (), "width")
    check_error(httpx.get(server.url + "/v1/models/gpt-4o"), 404, "model_not_found", ("gpt-4o",))


# ---------------------------------------------------------------------------------------------- SSRF
def ssrf_cases(internal: str) -> list[tuple[str, str]]:
    port = internal.rsplit(":", 1)[1]
    return [
        ("loopback IPv4", f"http://127.0.0.1:{port}/secret.png"),
        ("loopback IPv6", f"http://[::1]:{port}/secret.png"),
        ("IPv4-mapped loopback", f"http://[::ffff:127.0.0.1]:{port}/secret.png"),
        ("localhost by name", f"http://localhost:{port}/secret.png"),
        ("unspecified address", f"http://0.0.0.0:{port}/secret.png"),
        ("cloud metadata", "http://169.254.169.254/latest/meta-data/"),
        ("private 10/8", "http://10.0.0.1/image.png"),
        ("private 192.168/16", "https://192.168.1.1/image.png"),
        ("name resolving to metadata", "http://metadata.internal.test/latest/meta-data/"),
        ("name resolving to 10/8", "http://intranet.internal.test/image.png"),
    ]


def test_ssrf_refused_before_connecting(server, image_hosts, guard):
    internal, _, hits = image_hosts
    for name, url in ssrf_cases(internal):
        r = post(server, user(image_part(url), text("hi")))
        assert r.status_code == 403, (name, r.text)
        check_error(r, 403, "url_not_allowed", ("non-public",), "messages.0.content.0.image_url")
    assert hits == {}, f"the guard let a request through: {hits}"
    assert guard == []


def test_ssrf_redirect_to_loopback_refused(server, image_hosts, monkeypatch):
    """The first hop (127.0.0.2, declared public for this test only) redirects to 127.0.0.1: refused."""
    from tessera import images

    internal, redirector, hits = image_hosts
    real = images.is_public_address
    monkeypatch.setattr(images, "is_public_address", lambda ip: str(ip) == "127.0.0.2" or real(ip))
    r = post(server, user(image_part(redirector + "/redirect"), text("hi")))
    check_error(r, 403, "url_not_allowed", ("127.0.0.1",), "messages.0.content.0.image_url")
    assert hits.get("127.0.0.2/redirect") == 1, "the redirect was not followed at all"
    assert not any(k.startswith("127.0.0.1") for k in hits), f"the redirect target was fetched: {hits}"
    hits.clear()


def test_private_urls_and_local_files_when_allowed(guard, image_hosts, tmp_path):
    internal, _, hits = image_hosts
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    with running_server(allow_private_urls=True, allow_local_files=True) as s:
        for url in (internal + "/ok.png", str(path), path.as_uri()):
            r = post(s, user(image_part(url), text("hi")))
            assert r.status_code == 200, (url, r.text)
        r = post(s, user(image_part(internal.rsplit(":", 1)[0] + ":1/x.png"), text("hi")))  # nothing listens
        check_error(r, 400, "image_fetch_failed", (), "messages.0.content.0.image_url")
        r = post(s, user(image_part(str(tmp_path / "missing.png")), text("hi")))
        check_error(r, 404, "image_not_found", ("not found",))
    assert hits.get("127.0.0.1/ok.png") == 1
    hits.clear()


# ---------------------------------------------------------------------------------------------- auth
def test_api_key_required(guard):
    with running_server(api_key="s3cret") as s:
        url = s.url + "/v1/chat/completions"
        ok = user("hi")
        check_error(httpx.post(url, json=ok), 401, "invalid_api_key", ("api key",))
        check_error(httpx.post(url, json=ok, headers={"Authorization": "Bearer wrong"}), 401, "invalid_api_key")
        check_error(httpx.post(url, json=ok, headers={"Authorization": "s3cret"}), 401, "invalid_api_key")
        check_error(httpx.get(s.url + "/v1/models"), 401, "invalid_api_key")
        assert httpx.post(url, json=ok, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(s.url + "/health").status_code == 200  # health and the page stay open
        assert httpx.get(s.url + "/").status_code == 200


# ---------------------------------------------------------------------------------------------- still alive
def test_server_still_healthy_after_bad_input(server):
    """Runs last in this module: after every bad input above, the server still answers normally."""
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["running"] == 0 and health["waiting"] == 0
    r = post(server, user(image_part(data_url(PNG)), text("hi")))
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert server.engine.alive
