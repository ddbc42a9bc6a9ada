"""InternViT: the vision encoder of InternVL 1.5 (both the 6B-V1-5 and the 300M variant).

Shape legend: t = tiles, p = patches per tile (h' * w'), n = 1 + p tokens (class token first),
c = hidden size, S = tile size in pixels.

Module names mirror the official state-dict keys under ``vision_model.`` (fact sheet section 2.3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import VisionConfig
from .layers import RMSNorm


def _norm(cfg: VisionConfig, dim: int) -> nn.Module:
    if cfg.norm_type == "rms_norm":
        return RMSNorm(dim, eps=cfg.layer_norm_eps)
    return nn.LayerNorm(dim, eps=cfg.layer_norm_eps)


class VisionEmbeddings(nn.Module):
    """Patch embedding + class token + (bicubically resized) position embedding."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        c = cfg.hidden_size
        self.grid = cfg.image_size // cfg.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, c))
        self.patch_embedding = nn.Conv2d(cfg.num_channels, c, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, 1 + self.grid**2, c))

    def _patch_positions(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """Position embeddings of the patch slots resized to an h x w grid: [1, h*w, c].

        The official code always runs a float32 bicubic resize (align_corners=False); at the native grid
        that resize is an exact identity, so it is skipped there.
        """
        pos = self.position_embedding[:, 1:]
        if (h, w) == (self.grid, self.grid):
            return pos.to(dtype)
        grid = pos.float().reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)  # [1, c, g, g]
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.reshape(1, -1, h * w).permute(0, 2, 1).to(dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[t, 3, S, S] -> [t, 1 + p, c]."""
        dtype = self.patch_embedding.weight.dtype
        x = self.patch_embedding(pixel_values.to(dtype))  # [t, c, h', w']
        _, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # [t, p, c], row-major patches
        cls = self.class_embedding.expand(x.shape[0], 1, -1).to(dtype)
        x = torch.cat([cls, x], dim=1)
        pos = torch.cat([self.position_embedding[:, :1].to(dtype), self._patch_positions(h, w, dtype)], dim=1)
        return x + pos


class VisionAttention(nn.Module):
    """Non-causal multi-head attention with packed qkv [3, heads, d] and optional QK-norm over all heads."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        c = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.qkv = nn.Linear(c, 3 * c, bias=cfg.qkv_bias)
        self.qk_normalization = cfg.qk_normalization
        if cfg.qk_normalization:
            self.q_norm = RMSNorm(c, eps=cfg.layer_norm_eps)
            self.k_norm = RMSNorm(c, eps=cfg.layer_norm_eps)
        self.proj = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[t, n, c] -> [t, n, c]."""
        t, n, c = x.shape
        q, k, v = self.qkv(x).view(t, n, 3, c).unbind(2)  # each [t, n, c], head-major inside c
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)  # RMS over the full c (all heads together)
        q, k, v = (y.view(t, n, self.num_heads, -1).transpose(1, 2) for y in (q, k, v))  # [t, heads, n, d]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(t, n, c))


class VisionMLP(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (timm DropPath): drop the residual branch with probability p."""
    if p == 0.0 or not training:
        return x
    keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)


class VisionEncoderLayer(nn.Module):
    """Pre-norm block with LayerScale: x + ls1 * attn(norm1(x)); x + ls2 * mlp(norm2(x))."""

    def __init__(self, cfg: VisionConfig, drop_path_rate: float = 0.0):
        super().__init__()
        c = cfg.hidden_size
        self.norm1 = _norm(cfg, c)
        self.attn = VisionAttention(cfg)
        self.ls1 = nn.Parameter(torch.full((c,), float(cfg.initializer_factor)))
        self.norm2 = _norm(cfg, c)
        self.mlp = VisionMLP(cfg)
        self.ls2 = nn.Parameter(torch.full((c,), float(cfg.initializer_factor)))
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x).to(x.dtype)) * self.ls1, self.drop_path_rate, self.training)
        x = x + drop_path(self.mlp(self.norm2(x).to(x.dtype)) * self.ls2, self.drop_path_rate, self.training)
        return x


class VisionEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        n = cfg.num_hidden_layers
        rates = [cfg.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linspace(0, rate, n)
        self.layers = nn.ModuleList(VisionEncoderLayer(cfg, r) for r in rates)
        self.gradient_checkpointing = False


class InternVisionModel(nn.Module):
    """InternViT. ``forward(pixel_values)`` returns the last hidden state [t, 1 + p, c] (no final norm)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = VisionEmbeddings(cfg)
        self.encoder = VisionEncoder(cfg)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.gradient_checkpointing = enable

    def forward_intermediates(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """All hidden states: [embeddings, layer 1, ..., layer L], each [t, 1 + p, c]."""
        x = self.embeddings(pixel_values)
        states = [x]
        for layer in self.encoder.layers:
            if self.encoder.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
            states.append(x)
        return states

    def forward(self, pixel_values: torch.Tensor, select_layer: int = -1) -> torch.Tensor:
        """[t, 3, S, S] -> hidden state ``select_layer`` (-1: the last) [t, 1 + p, c]."""
        if select_layer == -1:
            x = self.embeddings(pixel_values)
            for layer in self.encoder.layers:
                if self.encoder.gradient_checkpointing and self.training:
                    x = checkpoint(layer, x, use_reentrant=False)
                else:
                    x = layer(x)
            return x
        return self.forward_intermediates(pixel_values)[select_layer]
