"""The server through the official ``openai`` client: answers must equal ``vlm.chat`` on the same input."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image
from serve_helpers import (
    TINY,
    data_url,
    image_part,
    noise_image,
    openai_client,
    png_bytes,
    running_server,
    tiny_vlm,
)

N = 24  # new tokens per answer: the random tiny model rarely stops by itself


@pytest.fixture(scope="module")
def server():
    with running_server(max_batch=4) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai_client(server)


@pytest.fixture(scope="module")
def vlm():
    return tiny_vlm()


def ask(client, messages, **kwargs):
    kwargs.setdefault("max_tokens", N)
    kwargs.setdefault("temperature", 0)
    return client.chat.completions.create(model=TINY, messages=messages, **kwargs)


def test_models_and_health(server, client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [TINY]
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == ids[0]


def test_plain_text_equals_vlm_chat(client, vlm):
    out = ask(client, [{"role": "user", "content": "Hello, who are you?"}])
    expected = vlm.chat("Hello, who are you?", max_new_tokens=N)
    assert out.choices[0].message.content == expected
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == N
    assert out.usage.prompt_tokens == len(vlm.prepare("Hello, who are you?").input_ids)
    assert out.usage.total_tokens == out.usage.prompt_tokens + N


def test_system_message_maps_to_template(client, vlm):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Describe a cat."}]
    out = ask(client, messages)
    assert out.choices[0].message.content == vlm.chat("Describe a cat.", system_message="You are terse.",
                                                      max_new_tokens=N)
    default = ask(client, messages[1:])
    assert default.usage.prompt_tokens != out.usage.prompt_tokens  # the system message reached the prompt


def test_stream_matches_non_stream(client):
    messages = [{"role": "user", "content": "Tell me a story."}]
    whole = ask(client, messages).choices[0].message.content
    chunks = list(ask(client, messages, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for p in pieces if p) >= 2, "the answer should arrive in several pieces"
    assert "".join(pieces) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == N
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"


def test_stream_ends_with_done(server):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_data_url_image_equals_vlm_chat(client, vlm):
    img = noise_image(64, 48, seed=1)
    content = [image_part(data_url(png_bytes(img))), {"type": "text", "text": "What is in the image?"}]
    out = ask(client, [{"role": "user", "content": content}])
    assert out.choices[0].message.content == vlm.chat("What is in the image?", img, max_new_tokens=N)
    # the image's tiles are part of the prompt: 4x3 grid + thumbnail for 64x48 with max 12 tiles
    text_only = len(vlm.prepare("What is in the image?").input_ids)
    assert out.usage.prompt_tokens > text_only + 13 * vlm.config.num_image_token - 1


def test_jpeg_data_url_equals_vlm_chat_on_the_decoded_image(client, vlm):
    """JPEGs take the array path on the server (tessera.jpeg): the answer is the one for PIL's decode."""
    buf = io.BytesIO()
    noise_image(96, 64, seed=5).save(buf, "JPEG", quality=85)
    content = [image_part(data_url(buf.getvalue(), "image/jpeg")), {"type": "text", "text": "What is in the image?"}]
    out = ask(client, [{"role": "user", "content": content}])
    pil = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    assert out.choices[0].message.content == vlm.chat("What is in the image?", pil, max_new_tokens=N)


def test_max_tiles_extension(client, vlm):
    img = noise_image(64, 48, seed=1)
    content = [image_part(data_url(png_bytes(img))), {"type": "text", "text": "What is in the image?"}]
    out = ask(client, [{"role": "user", "content": content}], extra_body={"max_tiles": 2})
    assert out.choices[0].message.content == vlm.chat("What is in the image?", img, max_tiles=2, max_new_tokens=N)
    full = ask(client, [{"role": "user", "content": content}])
    assert out.usage.prompt_tokens < full.usage.prompt_tokens


def test_two_images_in_one_turn(client, vlm):
    imgs = [noise_image(64, 48, seed=2), noise_image(40, 80, seed=3)]
    content = [*(image_part(data_url(png_bytes(i))) for i in imgs), {"type": "text", "text": "Compare them."}]
    out = ask(client, [{"role": "user", "content": content}])
    assert out.choices[0].message.content == vlm.chat("Compare them.", imgs, max_new_tokens=N)


def test_multi_turn_keeps_history_and_images(client, vlm):
    img1, img2 = noise_image(64, 48, seed=4), noise_image(48, 48, seed=5)
    turn1 = [image_part(data_url(png_bytes(img1))), {"type": "text", "text": "What is this?"}]
    a1 = ask(client, [{"role": "user", "content": turn1}]).choices[0].message.content
    ref1, history = vlm.chat("What is this?", img1, max_new_tokens=N, return_history=True)
    assert a1 == ref1
    assert history == [("<image>\nWhat is this?", ref1)]

    messages = [{"role": "user", "content": turn1}, {"role": "assistant", "content": a1},
                {"role": "user", "content": "And what colour is it?"}]
    a2 = ask(client, messages).choices[0].message.content
    assert a2 == vlm.chat("And what colour is it?", [img1], history=history, max_new_tokens=N)

    # a new image in the third turn: all images of the conversation, in order
    messages += [{"role": "assistant", "content": a2},
                 {"role": "user", "content": [image_part(data_url(png_bytes(img2))), {"type": "text", "text": "And this?"}]}]
    a3 = ask(client, messages).choices[0].message.content
    history2 = [*history, ("And what colour is it?", a2)]
    assert a3 == vlm.chat("<image>\nAnd this?", [img1, img2], history=history2, max_new_tokens=N)


def test_stop_strings(client):
    messages = [{"role": "user", "content": "Count for me."}]
    full = ask(client, messages, max_tokens=40).choices[0].message.content
    # a stop string taken from the middle of the greedy answer, at its first occurrence
    start = next(i for i in range(len(full) // 3, len(full) - 2) if full[i:i + 2].strip() == full[i:i + 2]
                 and full.find(full[i:i + 2]) == i)
    stop = full[start:start + 2]
    out = ask(client, messages, max_tokens=40, stop=[stop, "never-in-the-text"])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == full[:start].rstrip()
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, messages, max_tokens=40, stop=stop,
                                                                     stream=True))
    assert streamed == full[:start].rstrip()


def test_seed_reproducible_sampling(client):
    messages = [{"role": "user", "content": "Write a poem."}]
    greedy = ask(client, messages, temperature=0).choices[0].message.content
    a = ask(client, messages, temperature=1.0, top_p=0.95, seed=1234).choices[0].message.content
    b = ask(client, messages, temperature=1.0, top_p=0.95, seed=1234).choices[0].message.content
    c = ask(client, messages, temperature=1.0, top_p=0.95, seed=4321).choices[0].message.content
    assert a == b
    assert a != c and a != greedy  # it really samples, and the seed matters


def test_concurrent_requests_are_batched_and_exact(server, vlm):
    questions = [f"Question number {i}: " + "why " * i for i in range(8)]

    async def one(http, q):
        r = await http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": q}],
                                                          "max_tokens": N, "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"]

    async def main():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return await asyncio.gather(*(one(http, q) for q in questions))

    before = server.engine.stats.steps
    answers = asyncio.run(main())
    assert answers == [vlm.chat(q, max_new_tokens=N) for q in questions]
    assert server.engine.stats.largest_batch > 1
    assert server.engine.stats.largest_batch <= 4  # --max-batch
    assert server.engine.stats.steps - before < len(questions) * N  # rows shared decode steps
