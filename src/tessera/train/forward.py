"""The training forward: summed next-token cross-entropy of one micro-batch.

Same computation as the official training forward (fact sheet 3.4): ViT features of all tiles, the
dummy tiles (``image_flags`` 0) filtered out, written into the ``<IMG_CONTEXT>`` positions, LLM, shifted
cross-entropy over the labelled tokens. Two differences that do not change the result: logits are
computed only at the labelled positions (no [b, s, vocab] tensor), and the sum (not the mean) is returned
so that the engine can divide by the number of labelled tokens of the whole optimizer step across all
micro-batches and ranks (the token-level mean over the global batch). The dummy tiles enter the loss as
``0 * sum`` so that every trainable parameter takes part in every backward (DDP and FSDP need that).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..models.internvl import InternVLChatModel
from .conversation import IGNORE_INDEX


class TrainModule(nn.Module):
    """Wraps the chat model so that DDP / FSDP see one ``forward`` per micro-batch."""

    def __init__(self, model: InternVLChatModel):
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        image_flags: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids/labels/positions [b, s], pixel_values [T, 3, S, S], image_flags [T], mask [b, 1, s, s] or
        None (plain causal) -> summed loss over labelled tokens (a scalar)."""
        m = self.model
        vision_trains = any(p.requires_grad for p in m.vision_model.parameters()) or any(
            p.requires_grad for p in m.mlp1.parameters()
        )
        with contextlib.nullcontext() if vision_trains else torch.no_grad():
            vit = m.extract_feature(pixel_values)  # [T, n, H]
        keep = image_flags == 1
        extra = vit[~keep].sum() * 0.0 if vision_trains else 0.0
        embeds = m.embed(input_ids, vit_embeds=vit[keep])
        hidden = m.language_model(embeds, position_ids, mask=mask)  # [b, s, H]
        target = labels[:, 1:]
        selected = target != IGNORE_INDEX
        logits = m.language_model.logits(hidden[:, :-1][selected])  # [n_labels, v] float32
        return F.cross_entropy(logits, target[selected], reduction="sum") + extra
