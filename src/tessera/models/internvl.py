"""InternVLChatModel: InternViT -> pixel shuffle -> ``mlp1`` -> features scattered into the LLM's embeddings.

Shape legend: t = tiles, p = ViT patches per tile, c = ViT hidden, n = image tokens per tile
(p * downsample_ratio^2, 256 at 448 px), H = LLM hidden, b = batch, s = sequence length, v = vocab.

Submodule names are the official top-level prefixes: ``vision_model``, ``mlp1``, ``language_model``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ChatConfig
from .decoder import CausalLM
from .vit import InternVisionModel


def pixel_shuffle(x: torch.Tensor, scale: float = 0.5, version: str = "v2") -> torch.Tensor:
    """Space-to-depth of the patch grid: [t, h, w, c] -> [t, h*scale, w*scale, c/scale^2] (v2).

    Channel blocks inside the output vector are [(y0,x0), (y0,x1), (y1,x0), (y1,x1)]. ``v1`` (the config
    class default when the field is missing) skips the final permute, so its token grid comes out
    transposed: [t, w*scale, h*scale, c/scale^2].
    """
    t, h, w, c = x.shape
    x = x.view(t, h, int(w * scale), int(c / scale))  # merge horizontal pairs into channels
    x = x.permute(0, 2, 1, 3).contiguous()  # [t, w/2, h, 2c]
    x = x.view(t, int(w * scale), int(h * scale), int(c / (scale * scale)))  # merge vertical pairs
    if version == "v2":
        x = x.permute(0, 2, 1, 3).contiguous()  # back to row-major [t, h/2, w/2, 4c]
    return x


def left_padding_inputs(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """RoPE positions [b, s] and boolean attention mask [b, 1, s, s] (None without padding) for a
    left-padded batch: positions ``cumsum(mask) - 1`` with padding at 1 (the official batched
    ``generate``); causal attention over real tokens, padding rows attend to themselves (no empty rows)."""
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    if bool(mask.all()):
        return positions, None
    s, dev = mask.shape[1], mask.device
    causal = torch.ones(s, s, dtype=torch.bool, device=dev).tril()
    attn = causal[None, None] & mask.bool()[:, None, None, :]
    return positions, attn | torch.eye(s, dtype=torch.bool, device=dev)[None, None]


class InternVLChatModel(nn.Module):
    """The full chat model. ``forward(input_ids, pixel_values)`` returns logits [b, s, v]."""

    def __init__(self, config: ChatConfig):
        super().__init__()
        self.config = config
        vit_hidden = config.vision_config.hidden_size
        llm_hidden = config.llm_config.hidden_size
        scale = int(1 / config.downsample_ratio) ** 2
        self.vision_model = InternVisionModel(config.vision_config)
        self.mlp1 = nn.Sequential(
            nn.LayerNorm(vit_hidden * scale),
            nn.Linear(vit_hidden * scale, llm_hidden),
            nn.GELU(),
            nn.Linear(llm_hidden, llm_hidden),
        )
        self.language_model = CausalLM(config.llm_config)
        self.num_image_token = config.num_image_token
        self.img_context_token_id: int | None = None  # set from the tokenizer (not stored in config.json)

    def pixel_shuffle_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[t, 3, S, S] -> pixel-shuffled ViT tokens before mlp1 [t, n, 4c]."""
        x = self.vision_model(pixel_values, select_layer=self.config.select_layer)[:, 1:]  # drop CLS: [t, p, c]
        t, p, c = x.shape
        side = int(p**0.5)
        x = pixel_shuffle(x.reshape(t, side, side, c), self.config.downsample_ratio, self.config.ps_version)
        return x.reshape(t, -1, x.shape[-1])

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[t, 3, S, S] -> image features in LLM space [t, n, H]."""
        return self.mlp1(self.pixel_shuffle_features(pixel_values))

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_flags: torch.Tensor | None = None,
        vit_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with image features written into the ``<IMG_CONTEXT>`` positions: [b, s, H].

        Features go in order: tiles in ``pixel_values`` order, then token order within a tile. Tiles whose
        ``image_flags`` is 0 (the dummy tile of a text-only training sample) are dropped first.
        """
        embeds = self.language_model.embed_tokens(input_ids)
        if pixel_values is None and vit_embeds is None:
            return embeds
        if vit_embeds is None:
            vit_embeds = self.extract_feature(pixel_values)
        if image_flags is not None:
            vit_embeds = vit_embeds[image_flags.view(-1) == 1]
        if self.img_context_token_id is None:
            raise RuntimeError("img_context_token_id is not set: assign the tokenizer's <IMG_CONTEXT> id first")
        selected = input_ids == self.img_context_token_id  # [b, s]
        features = vit_embeds.reshape(-1, embeds.shape[-1]).to(embeds.dtype)
        n_slots = int(selected.sum())
        if n_slots != features.shape[0]:
            raise ValueError(
                f"the prompt has {n_slots} <IMG_CONTEXT> tokens but the images give {features.shape[0]} "
                f"features ({vit_embeds.shape[0]} tiles x {self.num_image_token}); the prompt and the "
                "tiles disagree (check num_patches_list / max_tiles)"
            )
        # out-of-place scatter keeps the graph through the embedding (training) and works under no_grad
        return embeds.masked_scatter(selected.unsqueeze(-1), features)

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        image_flags: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full forward without cache: ids [b, s], tiles [t, 3, S, S] -> logits [b, s, v] (float32).

        ``attention_mask`` [b, s] (1 = token, 0 = padding) gives padded keys no weight; positions default
        to ``cumsum(mask) - 1`` (padding at 1) as in the official batched generation, or 0..s-1.
        """
        hidden = self.hidden_states(input_ids, pixel_values, attention_mask, position_ids, image_flags)
        return self.language_model.logits(hidden)

    def hidden_states(self, input_ids, pixel_values=None, attention_mask=None, position_ids=None, image_flags=None):
        """Final-norm LLM hidden states [b, s, H] (``forward`` without the head)."""
        embeds = self.embed(input_ids, pixel_values, image_flags)
        b, s = input_ids.shape
        mask = None
        if attention_mask is not None:
            padded_positions, mask = left_padding_inputs(attention_mask)
            position_ids = padded_positions if position_ids is None else position_ids
        elif position_ids is None:
            position_ids = torch.arange(s, device=input_ids.device).expand(b, s)
        return self.language_model(embeds, position_ids, mask=mask)
