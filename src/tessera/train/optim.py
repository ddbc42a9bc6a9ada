"""AdamW with its parameter groups and the learning-rate schedule.

No weight decay on norms, biases, LayerScale vectors (``ls1``/``ls2``) and the ViT's position and class
embeddings: every parameter with fewer than 2 dims, plus names ending in ``position_embedding`` or
``class_embedding``. (The official HF Trainer only spares biases and ``nn.LayerNorm`` weights; fact sheet
7.6. tessera follows the common practice instead.)

``vision_lr_scale`` / ``mlp_lr_scale`` multiply the learning rate of ``vision_model.*`` / ``mlp1.*`` (their
own groups; the schedule scales every group alike). Useful when a randomly initialised vision path has to
catch up with an LLM that learns the answer priors first.

Schedule: linear warmup from 0 over ``warmup_steps`` (or ceil(total * warmup_ratio)), then cosine to 0,
linear to 0, or constant, as HF's ``get_*_schedule_with_warmup``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimArgs, RecipeError


def no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim < 2 or name.endswith(("position_embedding", "class_embedding"))


def lr_scale(name: str, scales: dict[str, float]) -> float:
    """The multiplier of parameter ``name`` (the first matching top-level prefix of ``scales``, else 1)."""
    for prefix, scale in scales.items():
        if name.startswith(prefix + ".") or f".{prefix}." in name:
            return scale
    return 1.0


def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                 scales: dict[str, float] | None = None) -> list[dict]:
    """Decay / no-decay groups, split further by learning-rate multiplier (``lr`` * scale per group)."""
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (not no_decay(name, p), lr_scale(name, scales or {}))
            groups.setdefault(key, []).append(p)
    out = []
    for (decay, scale), params in sorted(groups.items(), key=lambda kv: (kv[0][1] != 1.0, not kv[0][0], kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if lr is not None:
            group["lr"] = lr * scale
        out.append(group)
    return out


def build_optimizer(model: nn.Module, args: OptimArgs, *, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (``fused`` kernel on GPU when the parameters are plain tensors)."""
    kwargs = {"fused": True} if fused else {}
    scales = {"vision_model": args.vision_lr_scale, "mlp1": args.mlp_lr_scale}
    return torch.optim.AdamW(
        param_groups(model, args.weight_decay, args.learning_rate, {k: v for k, v in scales.items() if v != 1.0}),
        lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, **kwargs,
    )


def warmup_steps(args: OptimArgs, total: int) -> int:
    return args.warmup_steps if args.warmup_steps > 0 else math.ceil(total * args.warmup_ratio)


def lr_factor(step: int, *, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the peak learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "constant":
        return 1.0
    raise RecipeError(f"optim.lr_scheduler must be cosine, linear or constant, got {kind!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, args: OptimArgs, total: int):
    warmup = warmup_steps(args, total)
    lr_factor(0, warmup=warmup, total=total, kind=args.lr_scheduler)  # validates the kind early
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup=warmup, total=total, kind=args.lr_scheduler)
    )
