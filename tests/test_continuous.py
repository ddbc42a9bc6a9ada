"""Continuous batching (generation.ContinuousBatch, VLM.continuous): requests that join a running batch at
different steps get the official greedy answers, and seeded sampling does not depend on the neighbours."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tessera
from tessera.generation import SamplingParams

from conftest import conformance_path


def _requests(vlm, ref, T):
    """Every single-prompt generation case of the fixtures, with its official response."""
    out = []
    for case in ref["generation"]:
        if case["api"] != "chat":
            continue
        params = SamplingParams(max_new_tokens=case["max_new_tokens"], stop_token_ids=(vlm.stop_token_id,))
        req = vlm.prepare(case["question"], pixel_values=T[case["pixel_values"]].float(),
                          num_patches_list=case["num_patches_list"], system_message=ref["system_message"],
                          params=params)
        out.append((req, case["responses"][0]))
    return out


def _drive(runner, requests, join_every: int):
    """Add a request every ``join_every`` steps while rows are free; returns the texts in request order."""
    texts = [""] * len(requests)
    owner: dict[int, int] = {}
    pending = list(range(len(requests)))
    steps = 0
    while pending or owner:
        if pending and runner.free and steps % join_every == 0:
            i = pending.pop(0)
            row, out = runner.add(requests[i])
            texts[i] += out.text
            if not out.finished:
                owner[row] = i
        for out in runner.step():
            i = owner[out.index]
            texts[i] += out.text
            if out.finished:
                del owner[out.index]
        steps += 1
    return texts


@pytest.mark.parametrize("rows, join_every", [(1, 1), (2, 3), (3, 1)])
def test_joining_requests_get_the_official_answers(fixture, rows, join_every):
    vlm, ref, T = fixture
    cases = _requests(vlm, ref, T)
    assert cases, "the fixtures have single-prompt generation cases"
    requests = [r for r, _ in cases] * 2  # each case twice, so rows are reused
    runner = vlm.continuous(rows=rows, max_len=1024)
    try:
        texts = _drive(runner, requests, join_every)
    finally:
        runner.close()
    assert texts == [want for _, want in cases] * 2


def test_seeded_sampling_independent_of_neighbours(fixture):
    vlm, ref, T = fixture
    req, _ = _requests(vlm, ref, T)[0]
    sampled = vlm.prepare(req.question, pixel_values=req.pixel_values, num_patches_list=req.num_patches_list,
                          system_message=ref["system_message"],
                          params=SamplingParams(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=123,
                                                stop_token_ids=(vlm.stop_token_id,)))
    alone = vlm.continuous(rows=1, max_len=1024)
    want = _drive(alone, [sampled], 1)
    alone.close()
    crowd = vlm.continuous(rows=3, max_len=1024)
    got = _drive(crowd, [req, sampled, req], 2)
    crowd.close()
    assert got[1] == want[0]


def test_limits_and_cancel(fixture):
    vlm, ref, T = fixture
    req, _ = _requests(vlm, ref, T)[0]
    runner = vlm.continuous(rows=1, max_len=len(req.input_ids) + 4)
    with pytest.raises(ValueError, match="must fit in max_len"):
        runner.add(vlm.prepare(req.question, pixel_values=req.pixel_values, num_patches_list=req.num_patches_list,
                               params=SamplingParams(max_new_tokens=50)))
    short = vlm.prepare(req.question, pixel_values=req.pixel_values, num_patches_list=req.num_patches_list,
                        system_message=ref["system_message"], params=SamplingParams(max_new_tokens=4))
    row, first = runner.add(short)
    assert runner.free == 0 and not first.finished
    out = runner.cancel(row)
    assert out.finished and out.finish_reason == "cancelled" and runner.free == 1
    row, _ = runner.add(short)  # the row is usable again
    outs = [runner.step() for _ in range(3)]
    assert outs[-1][0].finished and outs[-1][0].finish_reason == "length" and runner.free == 1
    runner.close()


def test_rows_follow_their_own_rope_length(fixture):
    """The Phi-3 fixture crosses original_max_position_embeddings (64) while generating: LongRoPE must switch
    per row, so a short request next to a long one still gets the batch-of-one answer."""
    vlm, ref, T = fixture
    cases = _requests(vlm, ref, T)
    text_only = vlm.prepare("Hi", system_message=ref["system_message"],
                            params=SamplingParams(max_new_tokens=8, stop_token_ids=(vlm.stop_token_id,)))
    want = [vlm.chat("Hi", system_message=ref["system_message"], max_new_tokens=8)] + [w for _, w in cases]
    runner = vlm.continuous(rows=4, max_len=1024)
    got = _drive(runner, [text_only] + [r for r, _ in cases], 1)
    runner.close()
    assert got == want
    assert torch.is_tensor(runner.batch.valid)


def test_one_bad_request_fails_alone(fixture):
    vlm, ref, T = fixture
    (good, want), *_ = _requests(vlm, ref, T)
    bad = dataclasses.replace(good, pixel_values=torch.cat([good.pixel_values, good.pixel_values]))  # 2x the tiles
    runner = vlm.continuous(rows=3, max_len=1024)
    results = runner.add_many([good, bad, good])
    assert isinstance(results[1], Exception) and runner.free == 1
    texts = {row: out.text for row, out in (results[0], results[2])}
    while runner.rows:
        for out in runner.step():
            texts[out.index] += out.text
    runner.close()
    assert list(texts.values()) == [want, want]


def test_dynamic_ntk_per_row():
    """InternLM2's dynamic NTK past max_position_embeddings: rows of different lengths next to each other
    each get the base a batch of one would use (shrunk context so that the prompts cross it)."""
    vlm = tessera.load(conformance_path("models", "mini-internvl-chat-2b-v1-5-tiny"), dtype="float32")
    cfg = vlm.model.language_model.config
    assert vlm.model.language_model.rotary.kind == "dynamic"
    questions = ["Hi", "Tell me a story about a cat " * 3, "Why?"]
    reqs = [vlm.prepare(q, params=SamplingParams(max_new_tokens=10, stop_token_ids=(vlm.stop_token_id,)))
            for q in questions]
    shortest = min(len(r.input_ids) for r in reqs)
    cfg.max_position_embeddings = shortest + 3  # the short prompts cross it while generating, the long one starts past it
    assert max(len(r.input_ids) for r in reqs) > shortest + 3
    want = [vlm.chat(q, max_new_tokens=10) for q in questions]
    runner = vlm.continuous(rows=3, max_len=256)
    got = _drive(runner, reqs, 1)
    runner.close()
    assert got == want


def test_compiled_steps_use_power_of_two_windows_and_give_the_official_answers(fixture, monkeypatch):
    """``compile=True`` (``tessera serve --compile``): the step goes through ``compiled_row_step`` with an
    attention window rounded up to a power of two (>= 512, at most max_len), so few graphs serve all lengths.
    The compiled function is the eager one here; the real compilation is the next test's."""
    import tessera.generation as generation

    vlm, ref, T = fixture
    widths = []

    def spy(lm, tokens, slots, mask, rope):
        widths.append(mask.shape[-1])
        return generation._row_step(lm, tokens, slots, mask, rope)

    monkeypatch.setattr(generation, "compiled_row_step", lambda lm: spy)
    cases = _requests(vlm, ref, T)
    monkeypatch.setattr(vlm, "compile", True)
    for max_len, allowed in ((1024, {512}), (300, {300})):
        widths.clear()
        runner = vlm.continuous(rows=2, max_len=max_len)
        try:
            texts = _drive(runner, [r for r, _ in cases] * 2, 2)
        finally:
            runner.close()
        assert texts == [want for _, want in cases] * 2
        assert widths and set(widths) == allowed, (max_len, set(widths))


def test_compiled_steps_for_real_follow_each_rows_rope():
    """Real ``torch.compile`` (inductor on CPU) of the continuous step, on rows whose dynamic-NTK RoPE differ
    (the tables are made outside the graph): the answers of a batch of one."""
    from torch._dynamo.utils import counters

    vlm = tessera.load(conformance_path("models", "mini-internvl-chat-2b-v1-5-tiny"), dtype="float32")
    cfg = vlm.model.language_model.config
    questions = ["Hi", "Tell me a story about a cat " * 3, "Why?"]
    reqs = [vlm.prepare(q, params=SamplingParams(max_new_tokens=10, stop_token_ids=(vlm.stop_token_id,)))
            for q in questions]
    cfg.max_position_embeddings = min(len(r.input_ids) for r in reqs) + 3
    want = [vlm.chat(q, max_new_tokens=10) for q in questions]
    vlm.compile = True
    before = counters["stats"]["unique_graphs"]
    runner = vlm.continuous(rows=3, max_len=256)
    got = _drive(runner, reqs, 1)
    runner.close()
    assert got == want
    assert counters["stats"]["unique_graphs"] > before  # it did compile
