"""Building blocks shared by the InternViT and the two decoders: RMSNorm, rotary embeddings, a static KV cache.

Shape legend: b = batch, s = new tokens in this call, k = key slots (cache length), h = heads,
g = key/value heads, d = head dim, c = hidden size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 and cast back before the weight multiply (InternRMSNorm, InternLM2, Phi-3)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * rsqrt(mean(x^2) + eps) in one op (four in plain torch: decode steps pay per op, not per byte)
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Non-interleaved RoPE: ``x * cos + rotate_half(x) * sin`` with rotate_half (x1, x2) = (-x2, x1).

    ``sin`` comes from :func:`rope_cos_sin` with its first half negated, so rotate_half(x) * sin is
    ``x.roll(d/2) * sin``: the same products bit for bit, in one op instead of four. ``x`` is [..., d] and
    ``cos``/``sin`` broadcast to it (already in x's dtype).
    """
    return x * cos + x.roll(x.shape[-1] // 2, -1) * sin


def rope_cos_sin(
    position_ids: torch.Tensor, inv_freq: torch.Tensor, scale: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [b, s, d] for integer positions [b, s]; the angle math runs in float32.

    ``inv_freq`` is [d/2] (or [b, 1, d/2] when the frequencies differ per row); ``scale`` multiplies both
    tables (Phi-3 LongRoPE's attention factor; 1.0 otherwise). The sin table's first half is negated (the
    sign of rotate_half, folded in once per call rather than once per layer: see :func:`apply_rotary`).
    """
    freqs = position_ids.float().unsqueeze(-1) * inv_freq.float()  # [b, s, d/2]
    cos = torch.cat((freqs, freqs), dim=-1).cos()
    sin = freqs.sin()
    sin = torch.cat((-sin, sin), dim=-1)
    if scale != 1.0:
        cos, sin = cos * scale, sin * scale
    return cos.to(dtype), sin.to(dtype)


def default_inv_freq(head_dim: int, base: float, device=None) -> torch.Tensor:
    """1 / base^(2i/d) for i in [0, d/2), in float32 (the official int64-arange form)."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))


def ntk_base(base: float, head_dim: int, seq_len: int, max_pos: int, factor: float) -> float:
    """InternLM2 dynamic-NTK base, used only when the sequence grows past ``max_position_embeddings``."""
    return base * ((factor * seq_len / max_pos) - (factor - 1)) ** (head_dim / (head_dim - 2))


def longrope_scale(max_pos: int, original_max_pos: int) -> float:
    """Phi-3 "su" attention factor sqrt(1 + ln(max/orig) / ln(orig)); applied in short and long mode alike."""
    ratio = max_pos / original_max_pos
    return 1.0 if ratio <= 1.0 else math.sqrt(1 + math.log(ratio) / math.log(original_max_pos))


class KVCache(nn.Module):
    """Static, preallocated key/value cache of one attention layer: [b, g, k, d] each.

    ``cache_pos`` [s] gives the slots written by a call; every row of the batch writes the same slots
    (prompts are left padded), while RoPE positions are per row. Static shapes make the decode step
    compilable and CUDA-graph friendly.
    """

    def __init__(self, batch: int, kv_heads: int, max_len: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (batch, kv_heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, cache_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v [b, g, s, d] at slots ``cache_pos`` and return the full caches.

        ``cache_pos`` is [s] (the same slots in every row) or, for one new token per row, [b, 1] (each
        row at its own slot: continuous batching, :class:`tessera.generation.ContinuousBatch`)."""
        if cache_pos.dim() == 2:
            rows = torch.arange(k.shape[0], device=k.device)
            self.k[rows, :, cache_pos[:, 0]] = k[:, :, 0]
            self.v[rows, :, cache_pos[:, 0]] = v[:, :, 0]
        else:
            self.k.index_copy_(2, cache_pos, k)
            self.v.index_copy_(2, cache_pos, v)
        return self.k, self.v


FOLD_MIN_CUDA_HEADS = 64


def fold_gqa(device_type: str, batch: int, kv_heads: int) -> bool:
    """Whether a single-token step folds the query heads of a kv head into rows of it (see :func:`attend`).

    Folding reads the cache once in place instead of copying it per query head, but the attention kernel then
    runs one block per (row, kv head) instead of per (row, query head). On an H200 that took the 2B's compiled
    batch-32 decode from 1,100 to 1,731 tokens/s and its batch-1 decode from 352 to 282 (8 blocks on 132
    SMs; benchmarks/results/h200-2026-11-27b): so on CUDA it folds only from ``FOLD_MIN_CUDA_HEADS`` (batch x
    kv heads) up; on the CPU, where there is no occupancy to lose, always."""
    return device_type != "cuda" or batch * kv_heads >= FOLD_MIN_CUDA_HEADS


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """Scaled dot-product attention with GQA: q [b, h, s, d], k/v [b, g, k, d] -> [b, s, h*d].

    ``mask`` is a boolean [b, 1, s, k] (True = may attend) or None; with no mask, ``causal`` picks the
    plain causal (prefill without cache or padding) or full (single-token decode) pattern.
    """
    b, h, s, d = q.shape
    g = k.shape[1]
    if s == 1 and h > g and fold_gqa(q.device.type, b, g):
        # one new token: the h/g query heads sharing a kv head become h/g query rows of that head, so the
        # cache is read once in place (a repeat_interleave would copy the whole cache at every step)
        out = F.scaled_dot_product_attention(q.reshape(b, g, h // g, d), k, v, attn_mask=mask)
        return out.reshape(b, 1, h * d)
    groups = h // g
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    return out.transpose(1, 2).reshape(b, s, h * d)
