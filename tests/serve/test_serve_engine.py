"""Queueing, timeouts and cancellation, with a model slowed down to a known time per decode step."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from serve_helpers import SlowVLM, openai_client, running_server, tiny_vlm, wait_until

STEP = 0.05  # seconds per decode step


def body(max_tokens: int, stream: bool = False, question: str = "hi") -> dict:
    return {"messages": [{"role": "user", "content": question}], "max_tokens": max_tokens, "stream": stream}


def test_queue_full_gets_429():
    with running_server(SlowVLM(tiny_vlm(), STEP), max_batch=1, max_queue=1) as s:

        async def main():
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as http:
                return await asyncio.gather(*(http.post("/v1/chat/completions", json=body(8)) for _ in range(5)))

        responses = asyncio.run(main())
    codes = sorted(r.status_code for r in responses)
    # one decoding + one waiting fit; the other three are refused (at least two whatever the arrival order)
    assert set(codes) <= {200, 429} and codes.count(200) >= 1 and codes.count(429) >= 2, codes
    refused = next(r.json() for r in responses if r.status_code == 429)
    assert refused["error"]["code"] == "queue_full" and refused["error"]["type"] == "rate_limit_error"


def test_request_timeout():
    with running_server(SlowVLM(tiny_vlm(), STEP), request_timeout=0.4) as s:
        t0 = time.monotonic()
        r = httpx.post(s.url + "/v1/chat/completions", json=body(200), timeout=30)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout", r.text
        assert time.monotonic() - t0 < 3.0
        # the row was freed: the batch ends long before its 200 steps (10 s)
        assert wait_until(lambda: s.engine.running == 0, timeout=2.0)

        client = openai_client(s)
        with pytest.raises(openai.APIError, match="timeout"):
            for _ in client.chat.completions.create(model=s.engine.vlm.path.name, **body(200, stream=True)):
                pass
        assert wait_until(lambda: s.engine.running == 0, timeout=2.0)
        # and the server still answers
        assert httpx.post(s.url + "/v1/chat/completions", json=body(2), timeout=30).status_code == 200


def test_stream_disconnect_cancels_the_row():
    with running_server(SlowVLM(tiny_vlm(), STEP)) as s:
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body(400, stream=True), timeout=30) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            assert wait_until(lambda: s.engine.running == 1, timeout=2.0)
        # the client closed the connection after one event; 400 steps would take 20 s
        assert wait_until(lambda: s.engine.running == 0, timeout=3.0)


def test_non_stream_disconnect_cancels_the_row():
    with running_server(SlowVLM(tiny_vlm(), STEP)) as s:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(s.url + "/v1/chat/completions", json=body(400), timeout=0.5)
        assert wait_until(lambda: s.engine.running == 0, timeout=3.0)
        assert httpx.get(s.url + "/health").json()["status"] == "ok"


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_requests_arriving_during_a_batch_are_batched(batching):
    """Continuous: they join the running batch; static: they form the next one."""
    with running_server(SlowVLM(tiny_vlm(), STEP / 5), max_batch=8, batching=batching) as s:

        async def main():
            async with httpx.AsyncClient(base_url=s.url, timeout=30) as http:
                first = asyncio.create_task(http.post("/v1/chat/completions", json=body(30)))
                await asyncio.sleep(0.1)  # the first batch (of one) is decoding now
                rest = [http.post("/v1/chat/completions", json=body(5, question=f"q{i}")) for i in range(6)]
                return await asyncio.gather(first, *rest)

        responses = asyncio.run(main())
    assert all(r.status_code == 200 for r in responses)
    assert s.engine.stats.requests == 7
    assert s.engine.stats.batches < 7 and s.engine.stats.largest_batch >= 2
    if batching == "continuous":  # the six joined the first one's batch while it was still decoding
        assert s.engine.stats.batches == 1 and s.engine.stats.largest_batch == 7
