"""GPU path checks (run on a lent GPU by benchmarks/gpu_check.sh; skipped on machines without CUDA).

* float32 on the GPU gives the same greedy tokens as the fixtures (= the CPU float32 path);
* bfloat16 logits stay within the usual bf16 tolerance of the float32 references;
* the compiled (CUDA-graph) decode step gives the same greedy tokens as the eager one.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tessera.checkpoint import load_model
from tessera.generation import Batch, SamplingParams, generate

from conftest import MODEL_NAMES, conformance_path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _load(name, dtype):
    root = conformance_path("models", name)
    model, _ = load_model(root, device="cuda", dtype=dtype)
    ref = json.loads((root / "reference.json").read_text())
    model.img_context_token_id = ref["img_context_token_id"]
    return model, ref, load_file(str(root / "reference.safetensors"))


def _greedy(model, ref, T, case, compile=False):
    pv = T[case["pixel_values"]].float().cuda()
    rows = [[t for t, a in zip(r, m) if a] for r, m in zip(case["input_ids"], case["attention_mask"])]
    batch = Batch.from_ids(rows, ref["pad_token_id"], pv, "cuda")
    params = [SamplingParams(case["max_new_tokens"], stop_token_ids=(case["eos_token_id"],))] * len(rows)
    return torch.stack(list(generate(model, batch, params, ref["pad_token_id"], compile=compile)), 1).tolist()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float32_gpu_greedy_tokens_match(name):
    model, ref, T = _load(name, torch.float32)
    for case in ref["generation"]:
        assert _greedy(model, ref, T, case) == [row[1:] for row in case["generated_ids"]], case["name"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compiled_decode_matches_eager(name):
    model, ref, T = _load(name, torch.float32)
    case = ref["generation"][0]
    assert _greedy(model, ref, T, case, compile=True) == _greedy(model, ref, T, case)


@pytest.mark.parametrize("name", MODEL_NAMES)
@torch.no_grad()
def test_bfloat16_logits_within_tolerance(name):
    model, ref, T = _load(name, torch.bfloat16)
    ids = T["forward.input_ids"].cuda()
    pv = T[ref["forward"]["pixel_values"]].cuda()
    logits = model(ids, pv).float().cpu()
    expected = T["forward.logits"]
    err = (logits - expected).abs().max().item()
    assert err <= 0.1 * max(1.0, expected.abs().max().item()), err  # ~bf16 epsilon x depth x magnitude


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compiled_vlm_chat_matches_eager_and_compiles_once(name):
    """``tessera.load(..., compile=True)`` on CUDA answers as the eager path does (the official answer for the
    fixture's question), and a prompt of another length reuses the graph (a fixed KV-cache length), so only
    the first call of a batch size compiles."""
    from torch._dynamo.utils import counters

    import tessera

    root = conformance_path("models", name)
    ref = json.loads((root / "reference.json").read_text())
    T = load_file(str(root / "reference.safetensors"))
    case = next(c for c in ref["generation"] if c["api"] == "chat")
    kw = dict(pixel_values=T[case["pixel_values"]].float(), num_patches_list=case["num_patches_list"],
              system_message=ref["system_message"], max_new_tokens=case["max_new_tokens"])
    questions = [case["question"], case["question"] + " Answer in a few words, please."]
    eager = tessera.load(root, device="cuda", dtype="float32")
    expected = [eager.chat(q, **kw) for q in questions]
    assert expected[0] == case["responses"][0]
    del eager
    vlm = tessera.load(root, device="cuda", dtype="float32", compile=True, compile_len=1024)
    answers, graphs = [], []
    for q in questions:
        answers.append(vlm.chat(q, **kw))
        graphs.append(counters["stats"]["unique_graphs"])
    assert answers == expected
    assert graphs[1] == graphs[0], graphs  # the second prompt length compiled nothing new
