"""Shared helpers of the server tests: the tiny model, a server in a thread, small images, a slow model."""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import struct
import time
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image

from conftest import conformance_path

TINY = "mini-internvl-chat-2b-v1-5-tiny"


@functools.lru_cache(maxsize=1)
def tiny_vlm():
    """The tiny fixture checkpoint, loaded once per test session (random weights, deterministic).

    float32, not the checkpoint's bfloat16: in bf16 the random model's logits are coarse and often tie,
    so batching (padding changes the rounding) flips greedy choices; in fp32 batched == alone."""
    import tessera

    return tessera.load(conformance_path("models", TINY), dtype="float32")


@contextlib.contextmanager
def running_server(vlm=None, **settings) -> Iterator:
    """uvicorn on a free loopback port serving ``vlm`` (default: the tiny model) with ``settings``."""
    from tessera.serve import ServerThread, ServeSettings, create_app

    app = create_app(vlm if vlm is not None else tiny_vlm(), ServeSettings(**settings))
    with ServerThread(app) as server:
        server.engine = app.state.engine
        yield server


def openai_client(server, api_key: str = "unused"):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=30)


def noise_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """A small noisy RGB image (noise so that different images give different answers)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels, with almost no data: a decompression bomb as
    far as the size check is concerned (it must be refused from the header, before decoding)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


class SlowVLM:
    """Wraps a VLM so every decode step takes at least ``delay`` seconds (for queue / timeout / disconnect
    tests); everything else is the wrapped model."""

    def __init__(self, vlm, delay: float):
        self._vlm = vlm
        self.delay = delay

    def __getattr__(self, name):
        return getattr(self._vlm, name)

    def run(self, requests, cancelled=None):
        for outputs in self._vlm.run(requests, cancelled):
            time.sleep(self.delay)
            yield outputs

    def continuous(self, rows, max_len):
        return _SlowRunner(self._vlm.continuous(rows, max_len), self.delay)


class _SlowRunner:
    """A ContinuousRunner whose decode steps take at least ``delay`` seconds."""

    def __init__(self, runner, delay: float):
        self._runner, self.delay = runner, delay

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def step(self):
        time.sleep(self.delay)
        return self._runner.step()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
