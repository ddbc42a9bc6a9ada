"""The two InternVL 1.5 language models, InternLM2 and Phi-3, as one pre-norm decoder with two name sets.

Both are Llama-style decoders (RMSNorm, RoPE, GQA attention, SwiGLU MLP); they differ in how q/k/v and
gate/up are packed, in parameter names and in RoPE scaling. Each family is a small set of modules whose
attribute names mirror the official state-dict keys under ``language_model.``, so loading is a plain
mapping. Shape legend: b = batch, s = tokens in this call, c = hidden size, h = heads, g = kv heads,
d = head dim, v = vocab.

``forward(inputs_embeds, position_ids, cache_pos=None, mask=None)`` returns final-norm hidden states
[b, s, c]; ``logits(hidden)`` applies the head. ``cache_pos`` [s] (slots in the static KV caches set up by
``setup_caches``) switches to cached mode; ``mask`` [b, 1, s, k] is boolean (True = may attend).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import INTERNLM2, LLMConfig
from .layers import (
    KVCache,
    RMSNorm,
    apply_rotary,
    attend,
    default_inv_freq,
    longrope_scale,
    ntk_base,
    rope_cos_sin,
)


class Rotary:
    """RoPE tables for one forward call, following the family's scaling rule.

    * InternLM2 ``dynamic``: plain RoPE until the sequence passes ``max_position_embeddings``, then the NTK
      base for the current length (the official class keeps that base afterwards; tessera recomputes it
      per call, which is the same within one generation).
    * Phi-3 ``su``/``longrope``: ``long_factor`` when max(position_ids) + 1 > original_max_position_embeddings
      (decided over the whole batch, per call), else ``short_factor``; cos/sin times the attention factor.

    With ``per_row=True`` both length rules are applied to each row on its own (its length being its
    largest position + 1), as a batch of one would: continuous batching mixes rows of different lengths.
    """

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.head_dim = cfg.head_dim
        scaling = cfg.rope_scaling or {}
        self.kind = scaling.get("type") or scaling.get("rope_type")
        if self.kind in ("su", "longrope"):
            self.scale = longrope_scale(cfg.max_position_embeddings, cfg.original_max_position_embeddings)
        else:
            self.scale = 1.0

    def __call__(self, position_ids: torch.Tensor, kv_len: int, dtype, per_row: bool = False):
        """cos, sin [b, s, d] for positions [b, s]."""
        cfg, d, dev = self.cfg, self.head_dim, position_ids.device
        if per_row and self.kind == "dynamic":
            lengths = (position_ids.amax(-1) + 1).tolist()
            if max(lengths) > cfg.max_position_embeddings:  # some row needs its own NTK base
                rows = [self(position_ids[i : i + 1], n, dtype) for i, n in enumerate(lengths)]
                return torch.cat([c for c, _ in rows]), torch.cat([s for _, s in rows])
            kv_len = 0  # every row is within the native context: plain RoPE for all
        if self.kind in ("su", "longrope"):
            base = default_inv_freq(d, cfg.rope_theta, dev)
            short = torch.tensor(cfg.rope_scaling["short_factor"], dtype=torch.float32, device=dev)
            long = torch.tensor(cfg.rope_scaling["long_factor"], dtype=torch.float32, device=dev)
            if per_row:
                use_long = ((position_ids.amax(-1) + 1) > cfg.original_max_position_embeddings).view(-1, 1, 1)
            else:
                use_long = (position_ids.max() + 1) > cfg.original_max_position_embeddings
            inv_freq = base / torch.where(use_long, long, short)
        elif self.kind == "dynamic" and kv_len and kv_len > cfg.max_position_embeddings:
            theta = ntk_base(cfg.rope_theta, d, kv_len, cfg.max_position_embeddings, cfg.rope_scaling["factor"])
            inv_freq = default_inv_freq(d, theta, dev)
        elif self.kind == "linear":
            inv_freq = default_inv_freq(d, cfg.rope_theta, dev) / cfg.rope_scaling["factor"]
        else:
            inv_freq = default_inv_freq(d, cfg.rope_theta, dev)
        return rope_cos_sin(position_ids, inv_freq, self.scale, dtype)


class Attention(nn.Module):
    """GQA self-attention with a packed projection; subclasses say how to unpack q, k, v."""

    cache: KVCache | None

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.num_heads, self.num_kv, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.cache = None

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """[b, s, c] -> (q and k heads [b, s, ..., d] in the checkpoint's layout, v [b, g, s, d])."""
        raise NotImplementedError

    def split_qk(self, qk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """The rotated q and k heads of :meth:`project` -> q [b, h, s, d], k [b, g, s, d]."""
        raise NotImplementedError

    def out_proj(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x, cos, sin, cache_pos=None, mask=None, prefill=False) -> torch.Tensor:
        """``x`` [b, s, c] -> [b, s, c]. With ``cache_pos`` [s] this call's keys/values are written to the cache
        at those slots and attention runs over the whole cache (decode; only its first ``mask.shape[-1]`` slots
        when the mask is shorter), or with ``prefill`` over this call's own keys only (the prompt: the rest of
        the cache is empty, so the work stays [s, s])."""
        qk, v = self.project(x)
        b, s, d = cos.shape  # one rotation for the q and k heads together (fewer ops per decode step)
        shape = (b, s, *[1] * (qk.dim() - 3), d)
        q, k = self.split_qk(apply_rotary(qk, cos.view(shape), sin.view(shape)))  # [b, h|g, s, d]
        if cache_pos is not None:
            if prefill:
                self.cache.update(cache_pos, k, v)
            else:
                k, v = self.cache.update(cache_pos, k, v)
                if mask is not None and mask.shape[-1] < k.shape[2]:  # slots past the mask are unused
                    k, v = k[:, :, : mask.shape[-1]], v[:, :, : mask.shape[-1]]
        causal = mask is None and q.shape[2] > 1
        return self.out_proj(attend(q, k, v, mask, causal))


class InternLM2Attention(Attention):
    """``wqkv`` rows grouped per kv head as [q_0 .. q_{r-1}, k, v] (r = heads / kv heads); ``wo``."""

    def __init__(self, cfg: LLMConfig):
        super().__init__(cfg)
        out = (self.num_heads + 2 * self.num_kv) * self.head_dim
        self.wqkv = nn.Linear(cfg.hidden_size, out, bias=cfg.bias)
        self.wo = nn.Linear(self.num_heads * self.head_dim, cfg.hidden_size, bias=cfg.bias)

    def project(self, x):
        b, s, _ = x.shape
        r = self.num_heads // self.num_kv
        qkv = self.wqkv(x).view(b, s, self.num_kv, r + 2, self.head_dim)
        return qkv[:, :, :, : r + 1], qkv[:, :, :, r + 1].transpose(1, 2)

    def split_qk(self, qk):
        b, s, _, r1, d = qk.shape
        q = qk[:, :, :, : r1 - 1].reshape(b, s, self.num_heads, d).transpose(1, 2)
        return q, qk[:, :, :, r1 - 1].transpose(1, 2)

    def out_proj(self, x):
        return self.wo(x)


class Phi3Attention(Attention):
    """``qkv_proj`` rows [q (h*d) | k (g*d) | v (g*d)]; ``o_proj``."""

    def __init__(self, cfg: LLMConfig):
        super().__init__(cfg)
        out = (self.num_heads + 2 * self.num_kv) * self.head_dim
        self.qkv_proj = nn.Linear(cfg.hidden_size, out, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, cfg.hidden_size, bias=False)

    def project(self, x):
        b, s, _ = x.shape
        h = self.num_heads + self.num_kv
        qkv = self.qkv_proj(x).view(b, s, h + self.num_kv, self.head_dim)
        return qkv[:, :, :h], qkv[:, :, h:].transpose(1, 2)

    def split_qk(self, qk):
        return qk[:, :, : self.num_heads].transpose(1, 2), qk[:, :, self.num_heads :].transpose(1, 2)

    def out_proj(self, x):
        return self.o_proj(x)


class InternLM2MLP(nn.Module):
    """w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.w3 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.w2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Phi3MLP(nn.Module):
    """down(up * silu(gate)) with ``gate_up_proj`` rows [gate | up]."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(up * F.silu(gate))


class InternLM2DecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attention = InternLM2Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.feed_forward = InternLM2MLP(cfg)

    def forward(self, x, cos, sin, cache_pos=None, mask=None, prefill=False):
        x = x + self.attention(self.attention_norm(x), cos, sin, cache_pos, mask, prefill)
        return x + self.feed_forward(self.ffn_norm(x))


class Phi3DecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Phi3Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Phi3MLP(cfg)

    def forward(self, x, cos, sin, cache_pos=None, mask=None, prefill=False):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache_pos, mask, prefill)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Backbone(nn.Module):
    """``language_model.model``: embeddings, decoder layers, final norm (names set per family)."""

    def __init__(self, cfg: LLMConfig, embed_name: str, layer_cls):
        super().__init__()
        self.embed_name = embed_name
        setattr(self, embed_name, nn.Embedding(cfg.vocab_size, cfg.hidden_size))
        self.layers = nn.ModuleList(layer_cls(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """InternLM2ForCausalLM / Phi3ForCausalLM with a static-KV-cache forward.

    Parameter names: InternLM2 ``model.tok_embeddings``, ``model.layers.{i}.attention.wqkv`` ...,
    ``output``; Phi-3 ``model.embed_tokens``, ``model.layers.{i}.self_attn.qkv_proj`` ..., ``lm_head``.
    """

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.config = cfg
        self.is_internlm2 = cfg.architecture == INTERNLM2
        if self.is_internlm2:
            self.model = _Backbone(cfg, "tok_embeddings", InternLM2DecoderLayer)
            self.head_name = "output"
        else:
            self.model = _Backbone(cfg, "embed_tokens", Phi3DecoderLayer)
            self.head_name = "lm_head"
        setattr(self, self.head_name, nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))
        self.rotary = Rotary(cfg)
        self.gradient_checkpointing = False

    @property
    def embed_tokens(self) -> nn.Embedding:
        return getattr(self.model, self.model.embed_name)

    @property
    def head(self) -> nn.Linear:
        return getattr(self, self.head_name)

    def attention_modules(self) -> list[Attention]:
        return [layer.attention if self.is_internlm2 else layer.self_attn for layer in self.model.layers]

    def new_caches(self, batch: int, max_len: int) -> list[KVCache]:
        """Fresh static KV caches [batch, kv heads, max_len, head dim], one per layer, each on its layer's
        device (layers may span GPUs) in the model's dtype; not installed (see :meth:`setup_caches`)."""
        cfg = self.config
        return [KVCache(batch, cfg.num_key_value_heads, max_len, cfg.head_dim, self.head.weight.dtype,
                        next(attn.parameters()).device)
                for attn in self.attention_modules()]

    def setup_caches(self, batch: int, max_len: int) -> None:
        """Install static KV caches [batch, kv heads, max_len, head dim] in every layer, keeping a layer's
        cache when it already has that shape (stale slots are never attended to: the decode mask covers
        written slots only)."""
        cfg = self.config
        shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        modules = list(self.attention_modules())
        if all(a.cache is not None and tuple(a.cache.k.shape) == shape and a.cache.k.dtype == self.head.weight.dtype
               and a.cache.k.device == next(a.parameters()).device for a in modules):
            return
        for attn, cache in zip(modules, self.new_caches(batch, max_len)):
            attn.cache = cache

    def clear_caches(self) -> None:
        for attn in self.attention_modules():
            attn.cache = None

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        position_ids: torch.Tensor,
        cache_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kv_len: int | None = None,
        prefill: bool = False,
        rope_per_row: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """[b, s, c] embeddings, [b, s] RoPE positions -> final-norm hidden states [b, s, c].

        ``cache_pos`` [s]: write keys/values to the static caches at these slots (see ``setup_caches``);
        ``prefill``: the caches are empty beyond this call, so attention only looks at its own keys.
        ``rope_per_row``: length-dependent RoPE variants follow each row's own length (continuous batching).
        ``rope``: cos/sin tables [b, s, d] made beforehand by ``self.rotary`` (a compiled caller keeps the
        length-dependent choice of tables, a host decision, out of its graph); ``kv_len`` is then unused.

        ``kv_len`` (the total sequence length including cached tokens) only matters for InternLM2's
        dynamic NTK beyond max_position_embeddings; it defaults to max(position_ids) + 1.
        """
        x = inputs_embeds
        if rope is not None:
            cos, sin = rope
        else:
            if kv_len is None:
                kv_len = int(position_ids.max()) + 1 if self.rotary.kind == "dynamic" else 0
            cos, sin = self.rotary(position_ids, kv_len, x.dtype, per_row=rope_per_row)
        for layer in self.model.layers:
            dev = layer.ffn_norm.weight.device if self.is_internlm2 else layer.input_layernorm.weight.device
            if x.device != dev:  # a model split across GPUs by layers (tessera.parallel)
                x, cos, sin = x.to(dev), cos.to(dev), sin.to(dev)
                cache_pos = cache_pos.to(dev) if cache_pos is not None else None
                mask = mask.to(dev) if mask is not None else None
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, cos, sin, cache_pos, mask, prefill, use_reentrant=False)
            else:
                x = layer(x, cos, sin, cache_pos, mask, prefill)
        return self.model.norm(x.to(self.model.norm.weight.device))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., c] -> [..., v] in float32."""
        return self.head(hidden).float()
