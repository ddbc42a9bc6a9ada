"""The model is the same function as the official InternVL 1.5 code, on the three tiny fixture checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tessera.checkpoint import load_model
from tessera.generation import Batch, SamplingParams, generate

from conftest import MODEL_NAMES, conformance_path


def close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    """The fixtures' float32 tolerance: max|ours - ref| <= 1e-4 * max(1, max|ref|)."""
    assert ours.shape == ref.shape
    tol = 1e-4 * max(1.0, ref.abs().max().item())
    err = (ours - ref).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module", params=MODEL_NAMES)
def fixture(request):
    root = conformance_path("models", request.param)
    model, _ = load_model(root, dtype=torch.float32)
    ref = json.loads((root / "reference.json").read_text())
    model.img_context_token_id = ref["img_context_token_id"]
    return model, ref, load_file(str(root / "reference.safetensors"))


@torch.no_grad()
def test_vision_hidden_states(fixture):
    model, _, T = fixture
    states = model.vision_model.forward_intermediates(T["vision.pixel_values"].float())
    n = len(model.vision_model.encoder.layers)
    assert len(states) == n + 1
    for i, state in enumerate(states):
        close(state, T[f"vision.hidden_states.{i}"])
    close(model.vision_model(T["vision.pixel_values"].float()), T["vision.last_hidden_state"])


@torch.no_grad()
def test_pixel_shuffle_and_extract_feature(fixture):
    model, _, T = fixture
    pv = T["vision.pixel_values"].float()
    close(model.pixel_shuffle_features(pv), T["vision.pixel_shuffle"])
    close(model.extract_feature(pv), T["vision.vit_embeds"])


@torch.no_grad()
def test_ps_version_v1_differs_and_matches(fixture):
    model, ref, T = fixture
    assert model.config.ps_version == ref["ps_version"] == "v2"
    pv = T["vision.pixel_values"].float()
    model.config.ps_version = "v1"
    try:
        close(model.pixel_shuffle_features(pv), T["vision.pixel_shuffle_v1"])
        close(model.extract_feature(pv), T["vision.vit_embeds_v1"])
    finally:
        model.config.ps_version = "v2"
    assert not torch.allclose(T["vision.pixel_shuffle"], T["vision.pixel_shuffle_v1"])


@torch.no_grad()
def test_forward_logits_and_hidden_states(fixture):
    model, ref, T = fixture
    ids = T["forward.input_ids"]
    assert ids.tolist() == ref["forward"]["input_ids"]
    pv = T[ref["forward"]["pixel_values"]].float()
    close(model(ids, pv), T["forward.logits"])
    embeds = model.embed(ids, pv)
    close(embeds, T["forward.hidden_states.0"])
    last = max(int(k.rsplit(".", 1)[1]) for k in T if k.startswith("forward.hidden_states."))
    close(model.hidden_states(ids, pv), T[f"forward.hidden_states.{last}"])


@torch.no_grad()
def test_forward_text_only(fixture):
    model, ref, T = fixture
    case = next(p for p in ref["prompts"] if p["name"] == "text_only")
    ids = torch.tensor(case["input_ids"])
    close(model(ids), T["forward_text.logits"])


@torch.no_grad()
def test_first_step_logits_of_every_prompt(fixture):
    """Left-padded batches, multi-image, history, video: last-position logits of each prompt case."""
    model, ref, T = fixture
    for case in ref["prompts"]:
        pv = T[case["pixel_values"]].float() if case.get("pixel_values") else None
        ids = torch.tensor(case["input_ids"])
        mask = torch.tensor(case["attention_mask"])
        logits = model(ids, pv, attention_mask=mask)[:, -1]
        close(logits, T[f"prompts.{case['name']}.first_step_logits"])


def _cases(ref):
    e2e = dict(ref["e2e"], name="e2e")
    e2e.setdefault("attention_mask", [[1] * len(e2e["input_ids"][0])])
    return [*ref["generation"], e2e]


def test_greedy_generation_token_ids(fixture):
    """Exact generated ids (official output drops its placeholder BOS column) and step logits."""
    model, ref, T = fixture
    for case in _cases(ref):
        pv = T[case["pixel_values"]].float() if case.get("pixel_values") else None
        rows = [[t for t, a in zip(r, m) if a] for r, m in zip(case["input_ids"], case["attention_mask"])]
        batch = Batch.from_ids(rows, ref["pad_token_id"], pv)
        params = [SamplingParams(case["max_new_tokens"], stop_token_ids=(case["eos_token_id"],))] * len(rows)
        out = torch.stack(list(generate(model, batch, params, ref["pad_token_id"])), dim=1)
        expected = torch.tensor(case["generated_ids"])
        assert (expected[:, 0] == ref["bos_token_id"]).all()
        assert out.tolist() == expected[:, 1:].tolist(), case["name"]
