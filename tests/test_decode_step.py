"""The decode step's two fast-path properties: grouped-query attention reads the cache in place, and a
step makes no tensor from host data (on a GPU such a copy waits for the device at every token)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tessera.config import ChatConfig
from tessera.generation import Batch, decode_step, prefill
from tessera.models import layers
from tessera.models.internvl import InternVLChatModel
from tessera.models.layers import attend, fold_gqa


def _reference(q, k, v, mask):
    """Plain GQA: every query head against its kv head's repeated copy."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    b, h, s, d = out.shape
    return out.transpose(1, 2).reshape(b, s, h * d)


@pytest.mark.parametrize("heads,kv", [(4, 2), (6, 1), (4, 4)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("fold", [True, False])
def test_single_token_gqa_equals_repeated_kv(heads, kv, masked, fold, monkeypatch):
    monkeypatch.setattr(layers, "fold_gqa", lambda *args: fold)
    g = torch.Generator().manual_seed(heads * 10 + kv)
    b, k_len, d = 3, 11, 8
    q = torch.randn(b, heads, 1, d, generator=g)
    k, v = torch.randn(2, b, kv, k_len, d, generator=g)
    mask = torch.rand(b, 1, 1, k_len, generator=g) > 0.3 if masked else None
    if mask is not None:
        mask[..., 0] = True
    torch.testing.assert_close(attend(q, k, v, mask, causal=False), _reference(q, k, v, mask))


def test_fold_only_where_it_pays():
    """The CPU always folds; CUDA folds from FOLD_MIN_CUDA_HEADS blocks (batch x kv heads) up, where the
    cache copies cost more than the kernel's lost parallelism (the H200 runs in the docstring)."""
    assert fold_gqa("cpu", 1, 8)
    assert not fold_gqa("cuda", 1, 8)
    assert fold_gqa("cuda", 32, 8)
    assert fold_gqa("cuda", layers.FOLD_MIN_CUDA_HEADS, 1)
    assert not fold_gqa("cuda", layers.FOLD_MIN_CUDA_HEADS - 1, 1)


def test_decode_step_makes_no_tensor_from_host_data(monkeypatch):
    cfg = ChatConfig.from_name("tiny-internlm2")
    torch.manual_seed(0)
    model = InternVLChatModel(cfg).eval()
    model.img_context_token_id = cfg.llm_config.vocab_size - 1
    batch = Batch.from_ids([[5, 6, 7], [8, 9]], 0)
    logits, state = prefill(model, batch, max_len=8)
    tokens = logits.argmax(-1)
    reference = [decode_step(model, tokens, prefill(model, batch, max_len=8)[1]).clone()]

    def refuse(*args, **kwargs):
        raise AssertionError("torch.tensor called inside the decode step")

    monkeypatch.setattr(torch, "tensor", refuse)
    steps = [decode_step(model, tokens, state) for _ in range(3)]
    assert state.slot == 6 and state.cache_pos.tolist() == [6]
    torch.testing.assert_close(steps[0], reference[0])
