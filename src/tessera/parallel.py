"""Splitting a model across several GPUs by layers, for checkpoints larger than one GPU.

The official ``device_map="auto"`` path crashes ("Expected all tensors to be on the same device") because
the ViT, the embeddings and the head land on different GPUs. tessera places modules explicitly, as the
official docs' ``split_model`` does: the vision encoder, ``mlp1``, the token embeddings, the final norm,
the head and the last decoder layer on the first device (counted as half a GPU), the other decoder layers
spread evenly over the rest. The decoder moves activations to each layer's device as they pass
(``CausalLM.forward``), and each layer's KV cache lives on its own device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch

from .config import ChatConfig

_LAYER = re.compile(r"^language_model\.model\.layers\.(\d+)\.")


def parse_devices(device: str | torch.device | Sequence) -> list[torch.device]:
    """"cuda:0,cuda:1" / a list / one device -> list of devices."""
    if isinstance(device, (list, tuple)):
        return [torch.device(d) for d in device]
    return [torch.device(d.strip()) for d in str(device).split(",") if d.strip()]


def layer_devices(num_layers: int, devices: Sequence[torch.device]) -> list[torch.device]:
    """Device of each decoder layer: the first device takes half a share and always the last layer."""
    if len(devices) == 1:
        return [devices[0]] * num_layers
    shares = [0.5] + [1.0] * (len(devices) - 1)
    per_share = (num_layers - 1) / sum(shares)
    counts = [math.floor(s * per_share) for s in shares]
    for i in range(num_layers - 1 - sum(counts)):  # hand out the remainder from the last device backwards
        counts[-1 - (i % (len(devices) - 1))] += 1
    out = [d for d, n in zip(devices, counts) for _ in range(n)]
    return out + [devices[0]]


def device_fn(config: ChatConfig, devices: Sequence[torch.device]) -> Callable[[str], torch.device]:
    """Maps a state-dict key to the device its tensor belongs on."""
    per_layer = layer_devices(config.llm_config.num_hidden_layers, devices)

    def where(key: str) -> torch.device:
        match = _LAYER.match(key)
        return per_layer[int(match.group(1))] if match else devices[0]

    return where
