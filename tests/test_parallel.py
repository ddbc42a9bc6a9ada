"""Layer split across devices: placement rule, and the same answers when 'split' across CPU devices."""

from __future__ import annotations

import torch

import tessera
from tessera.parallel import layer_devices

from conftest import conformance_path


def test_layer_placement_rule():
    devs = [torch.device(f"cuda:{i}") for i in range(4)]
    placed = layer_devices(48, devs)
    assert len(placed) == 48 and placed[-1] == devs[0]
    counts = [placed.count(d) for d in devs]
    assert sum(counts) == 48 and counts[0] < counts[1]  # the first GPU is counted as half a GPU
    assert placed[: counts[0] - 1] == [devs[0]] * (counts[0] - 1)  # plus the last layer
    assert layer_devices(5, devs[:1]) == [devs[0]] * 5


def test_split_model_answers_like_the_whole_one():
    path = conformance_path("models", "mini-internvl-chat-4b-v1-5-tiny")
    whole = tessera.load(path, dtype="float32")
    split = tessera.load(path, device="cpu,cpu", dtype="float32")
    q = "Hello, who are you?"
    assert split.chat(q, max_new_tokens=10) == whole.chat(q, max_new_tokens=10)
