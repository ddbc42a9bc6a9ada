"""``tessera.load(..., compile=True)``: chat goes through the compiled decode over a fixed-length KV cache (one
graph per batch size), gives the official answers, and falls back to eager decoding for calls that do not fit.

The compilation itself (inductor, CUDA graphs) is checked on a GPU by tests/test_gpu.py; here the compiled step
is swapped for the eager one, so what is tested is the routing and the fixed cache length."""

from __future__ import annotations

import warnings

import pytest
import torch

import tessera.generation as generation
import tessera.vlm
from tessera.generation import Batch, SamplingParams, generate

from conftest import MODEL_NAMES, load_fixture_model


def _chat_kwargs(ref, T, case):
    """The official chat()/batch_chat() arguments of a fixture generation case (its tiles, system message)."""
    return dict(pixel_values=T[case["pixel_values"]].float(), num_patches_list=case["num_patches_list"],
                system_message=ref["system_message"], max_new_tokens=case["max_new_tokens"])


def _first_chat(ref, T):
    """(case, chat kwargs) of the fixture's first single-prompt chat case."""
    case = next(c for c in ref["generation"] if c["api"] == "chat")
    return case, _chat_kwargs(ref, T, case)


def _answers(vlm, ref, T):
    out = []
    for case in ref["generation"]:
        kw = _chat_kwargs(ref, T, case)
        out.append([vlm.chat(case["question"], **kw)] if case["api"] == "chat" else vlm.batch_chat(case["questions"], **kw))
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compiled_chat_uses_a_fixed_cache_and_gives_the_official_answers(name, monkeypatch):
    vlm, ref, T = load_fixture_model(name)
    calls = []

    def spy(*args, **kwargs):
        calls.append((kwargs.get("compile"), kwargs.get("cache_len")))
        return generate(*args, **kwargs)

    monkeypatch.setattr(tessera.vlm, "generate", spy)
    monkeypatch.setattr(generation, "compiled_step", lambda lm: generation._step)
    expected = [case["responses"] for case in ref["generation"]]
    vlm.compile, vlm.compile_len = True, 2048
    assert _answers(vlm, ref, T) == expected
    assert calls and set(calls) == {(True, 2048)}
    calls.clear()
    vlm.compile_len = 8  # no call fits: eager, with the cache sized to the call
    assert _answers(vlm, ref, T) == expected
    assert set(calls) == {(False, None)}


def test_generate_with_a_longer_cache_gives_the_same_tokens():
    vlm, ref, T = load_fixture_model("internvl-chat-v1-5-tiny")
    case = ref["generation"][0]
    rows = [[t for t, a in zip(r, m) if a] for r, m in zip(case["input_ids"], case["attention_mask"])]
    batch = Batch.from_ids(rows, ref["pad_token_id"], T[case["pixel_values"]].float())
    params = [SamplingParams(case["max_new_tokens"], stop_token_ids=(case["eos_token_id"],))] * len(rows)
    plain = torch.stack(list(generate(vlm.model, batch, params, ref["pad_token_id"])), 1)
    longer = torch.stack(list(generate(vlm.model, batch, params, ref["pad_token_id"], cache_len=1000)), 1)
    assert plain.tolist() == longer.tolist() == [row[1:] for row in case["generated_ids"]]
    with pytest.raises(ValueError, match="cannot hold the prompt"):
        next(generate(vlm.model, batch, params, ref["pad_token_id"], cache_len=4))


def test_real_compilation_on_cpu_matches_eager_and_compiles_once():
    """The real ``torch.compile`` (inductor on CPU; CUDA graphs are tests/test_gpu.py's): a second prompt of
    another length reuses the first call's graph and both answers equal the eager ones."""
    from torch._dynamo.utils import counters

    vlm, ref, T = load_fixture_model("internvl-chat-v1-5-tiny")
    case, kw = _first_chat(ref, T)
    questions = [case["question"], case["question"] + " Answer in a few words, please."]
    expected = [vlm.chat(q, **kw) for q in questions]
    assert expected[0] == case["responses"][0]
    vlm.compile, vlm.compile_len = True, 1024
    answers, graphs = [], [counters["stats"]["unique_graphs"]]
    for q in questions:
        answers.append(vlm.chat(q, **kw))
        graphs.append(counters["stats"]["unique_graphs"])
    assert answers == expected
    assert graphs[1] > graphs[0] and graphs[2] == graphs[1], graphs  # compiled on the first call only


def test_a_failing_compilation_falls_back_to_eager_with_one_warning(monkeypatch):
    """No C++ compiler, an op inductor cannot handle...: the chat still answers (eagerly), warning once."""
    vlm, ref, T = load_fixture_model("internvl-chat-v1-5-tiny")

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("inductor: no working C++ compiler found")
        return call

    monkeypatch.setattr(generation.torch, "compile", broken)
    monkeypatch.setattr(generation, "_COMPILED", {})
    case, kw = _first_chat(ref, T)
    vlm.compile = True
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*decoding eagerly"):
        assert vlm.chat(case["question"], **kw) == case["responses"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vlm.chat(case["question"], **kw) == case["responses"][0]  # eager from now on, no new warning
