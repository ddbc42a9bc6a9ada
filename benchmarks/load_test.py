"""Load test of ``tessera serve``: N concurrent clients send a bounded number of chat requests.

Starts its own server (``python -m tessera.serve``, on a free loopback port, with the tiny conformance
checkpoint by default), waits for ``/health``, runs ``--clients`` asyncio + httpx clients that share
``--requests`` requests, then stops the server and reports requests/s, p50/p99 latency, time to first token
(streamed requests), generated tokens/s, batching, and errors (exit status 1 if there were any).

    python benchmarks/load_test.py --clients 32 --requests 320
    python benchmarks/load_test.py --url http://127.0.0.1:8000 --clients 8 --requests 64   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
TINY = REPO.parent / "shared" / "conformance" / "models" / "mini-internvl-chat-2b-v1-5-tiny"


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_url(seed: int) -> str:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def make_body(i: int, args: argparse.Namespace, images: list[str]) -> dict:
    text = f"Request {i}: what is shown here, and why does it matter?"
    content: str | list = text
    if args.image_every and i % args.image_every == 0:
        content = [{"type": "image_url", "image_url": {"url": images[i % len(images)]}}, {"type": "text", "text": text}]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": args.max_tokens, "temperature": 0}
    if args.stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def one_request(http: httpx.AsyncClient, body: dict, res: Results) -> None:
    t0 = time.perf_counter()
    try:
        if body.get("stream"):
            usage, first = None, None
            async with http.stream("POST", "/v1/chat/completions", json=body) as r:
                if r.status_code != 200:
                    res.errors.append(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
                    return
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if "error" in event:
                        res.errors.append(f"stream error: {event['error']['message']}")
                        return
                    if first is None and event["choices"] and event["choices"][0]["delta"].get("content"):
                        first = time.perf_counter() - t0
                    usage = event.get("usage") or usage
            if first is not None:
                res.first_token.append(first)
        else:
            r = await http.post("/v1/chat/completions", json=body)
            if r.status_code != 200:
                res.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                return
            usage = r.json()["usage"]
    except httpx.HTTPError as e:
        res.errors.append(f"{type(e).__name__}: {e}")
        return
    res.latencies.append(time.perf_counter() - t0)
    if usage:
        res.completion_tokens += usage["completion_tokens"]
        res.prompt_tokens += usage["prompt_tokens"]


async def run_clients(url: str, args: argparse.Namespace) -> tuple[Results, float]:
    res = Results()
    images = [image_url(s) for s in range(8)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.requests):
        queue.put_nowait(i)
    bar = tqdm(total=args.requests, desc="requests", unit="req", disable=args.quiet)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits, headers=headers) as http:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await one_request(http, make_body(i, args, images), res)
                bar.update(1)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(args.clients)))
    wall = time.perf_counter() - t0
    bar.close()
    return res, wall


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "tessera.serve", "--model", str(args.model), "--host", "127.0.0.1",
           "--port", str(port), "--max-batch", str(args.max_batch), "--batching", args.batching,
           "--max-queue", str(max(64, args.clients * 2)),
           "--device", args.device, "--log-level", "warning"]
    if args.dtype:
        cmd += ["--dtype", args.dtype]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=None if args.verbose else subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"the server exited during startup (status {proc.returncode}):\n{err}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not answer /health within {args.startup_timeout} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(res: Results, wall: float, args: argparse.Namespace, health: dict) -> dict:
    ok = len(res.latencies)
    out = {
        "requests": args.requests,
        "clients": args.clients,
        "ok": ok,
        "errors": len(res.errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(ok / wall, 2),
        "latency_p50_s": round(pct(res.latencies, 50), 3),
        "latency_p99_s": round(pct(res.latencies, 99), 3),
        "latency_mean_s": round(statistics.fmean(res.latencies), 3) if res.latencies else None,
        "generated_tokens_per_s": round(res.completion_tokens / wall, 1),
        "completion_tokens": res.completion_tokens,
        "prompt_tokens": res.prompt_tokens,
        "batches": health.get("batches"),
        "largest_batch": health.get("largest_batch"),
    }
    if res.first_token:
        out["first_token_p50_s"] = round(pct(res.first_token, 50), 3)
        out["first_token_p99_s"] = round(pct(res.first_token, 99), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(TINY), help="checkpoint to serve (default: the tiny conformance model)")
    p.add_argument("--url", default=None, help="load an already running server instead of starting one")
    p.add_argument("--api-key", default=None, help="API key of the --url server")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default: 32)")
    p.add_argument("--requests", type=int, default=320, help="requests in all (default: 320)")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default: 32)")
    p.add_argument("--image-every", type=int, default=2, help="every k-th request carries an image (0: none)")
    p.add_argument("--stream", action="store_true", help="stream the answers (also measures time to first token)")
    p.add_argument("--max-batch", type=int, default=32, help="server --max-batch (default: 32)")
    p.add_argument("--batching", choices=("continuous", "static"), default="continuous",
                   help="server --batching (default: continuous)")
    p.add_argument("--device", default="cpu", help="server --device (default: cpu)")
    p.add_argument("--dtype", default="float32", help="server --dtype (default: float32)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request client timeout in seconds")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show the server's log")
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        p.error("--clients and --requests must be at least 1")

    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        if not Path(args.model).exists():
            p.error(f"model {args.model} not found (the default needs ../shared/conformance beside the repo)")
        proc, url = start_server(args)
    try:
        res, wall = asyncio.run(run_clients(url, args))
        health = httpx.get(url + "/health", timeout=10).json()
    finally:
        if proc is not None:
            stop_server(proc)
    figures = report(res, wall, args, health)
    if args.json:
        print(json.dumps(figures))
    else:
        machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
        print(f"\nload test: {args.clients} clients, {args.requests} requests, max_tokens={args.max_tokens}, "
              f"stream={args.stream}, image every {args.image_every or '-'} ({machine})")
        for key, value in figures.items():
            print(f"  {key:24s} {value}")
    for err in res.errors[:10]:
        print("error:", err, file=sys.stderr)
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
