"""AdamW parameter groups: weight decay split and the per-module learning-rate multipliers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tessera.train.config import OptimArgs
from tessera.train.optim import build_optimizer, build_scheduler, lr_scale


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision_model = nn.Linear(4, 4)
        self.mlp1 = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))
        self.language_model = nn.Linear(4, 4)


def _lr_of(opt: torch.optim.Optimizer) -> dict[int, tuple[float, float]]:
    return {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}


def test_default_is_two_groups_at_the_base_lr():
    model = Toy()
    opt = build_optimizer(model, OptimArgs(learning_rate=1e-3, weight_decay=0.1))
    assert len(opt.param_groups) == 2
    lrs = _lr_of(opt)
    assert all(lr == 1e-3 for lr, _ in lrs.values())
    assert lrs[id(model.language_model.weight)][1] == 0.1 and lrs[id(model.language_model.bias)][1] == 0.0


def test_vision_and_mlp_scales():
    model = Toy()
    args = OptimArgs(learning_rate=1e-3, weight_decay=0.1, vision_lr_scale=3.0, mlp_lr_scale=2.0)
    opt = build_optimizer(model, args)
    lrs = _lr_of(opt)
    assert lrs[id(model.vision_model.weight)] == (pytest.approx(3e-3), 0.1)
    assert lrs[id(model.vision_model.bias)] == (pytest.approx(3e-3), 0.0)
    assert lrs[id(model.mlp1[1].weight)] == (pytest.approx(2e-3), 0.1)
    assert lrs[id(model.mlp1[0].weight)] == (pytest.approx(2e-3), 0.0)
    assert lrs[id(model.language_model.weight)] == (pytest.approx(1e-3), 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the logged lr is the base group's
    # the schedule scales every group alike
    sched = build_scheduler(opt, OptimArgs(learning_rate=1e-3, warmup_steps=10), total=100)
    for _ in range(5):
        opt.step()
        sched.step()
    ratios = {round(g["lr"] / sched.get_last_lr()[0], 6) for g in opt.param_groups}
    assert ratios == {1.0, 2.0, 3.0}


def test_lr_scale_matches_wrapped_names():
    scales = {"vision_model": 3.0}
    assert lr_scale("vision_model.encoder.layers.0.ls1", scales) == 3.0
    assert lr_scale("model.vision_model.embeddings.patch_embedding.weight", scales) == 3.0
    assert lr_scale("language_model.vision_model_like", scales) == 1.0
    assert lr_scale("language_model.layers.0.weight", scales) == 1.0
