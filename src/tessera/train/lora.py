"""LoRA through peft on the LLM and/or the ViT, and merging it back for export (fact sheet 7.6).

Targets are the official module names: ViT ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``;
InternLM2 ``attention.wqkv``, ``attention.wo``, ``feed_forward.w1/w2/w3``; Phi-3 ``self_attn.qkv_proj``,
``self_attn.o_proj``, ``mlp.gate_up_proj``, ``mlp.down_proj``. Alpha defaults to 2 x rank, dropout 0.05.
peft wraps each target ``nn.Linear`` in place (``x.base_layer`` + ``x.lora_A/B.default``) and freezes the
rest of the wrapped module, as the official ``get_peft_model`` does.

Export never writes peft keys: :func:`merged_state_dict` folds ``W + scale * B @ A`` into plain weights
under the original names, so a LoRA run's checkpoints are ordinary official-layout checkpoints
(``use_llm_lora``/``use_backbone_lora`` 0). :func:`merge_lora_` does the same in place.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import INTERNLM2
from ..models.internvl import InternVLChatModel
from .config import LoraArgs

VIT_TARGETS = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
LLM_TARGETS = {
    "internlm2": ["attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"],
    "phi3": ["mlp.down_proj", "mlp.gate_up_proj", "self_attn.o_proj", "self_attn.qkv_proj"],
}


def _peft():
    try:
        import peft
        from peft.tuners.lora import LoraLayer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("LoRA needs peft: pip install 'tessera[train]' (or pip install peft)") from exc
    return peft, LoraLayer


def apply_lora(model: InternVLChatModel, args: LoraArgs) -> None:
    """Wrap the target linears of the ViT (``vit_rank``) and/or LLM (``llm_rank``) with LoRA adapters."""
    peft, _ = _peft()
    family = "internlm2" if model.config.llm_config.architecture == INTERNLM2 else "phi3"
    for rank, module, targets in (
        (args.vit_rank, model.vision_model, args.vit_targets or VIT_TARGETS),
        (args.llm_rank, model.language_model, args.llm_targets or LLM_TARGETS[family]),
    ):
        if rank <= 0:
            continue
        config = peft.LoraConfig(
            r=rank, lora_alpha=args.alpha if args.alpha is not None else 2 * rank,
            lora_dropout=args.dropout, target_modules=list(targets),
        )
        try:
            peft.inject_adapter_in_model(config, module)
        except ValueError as exc:
            raise ValueError(f"LoRA targets {list(targets)} match no module of {type(module).__name__}: {exc}") from None


def has_lora(model: nn.Module) -> bool:
    _, LoraLayer = _peft()
    return any(isinstance(m, LoraLayer) for m in model.modules())


@torch.no_grad()
def merged_state_dict(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Plain (official-name) state dict with every LoRA delta folded into its base weight.

    ``state`` is ``model.state_dict()`` or an equivalent full state (e.g. gathered from FSDP); the LoRA
    scales come from the modules of ``model``.
    """
    if state is None:
        state = model.state_dict()
    scales = {}
    try:
        _, LoraLayer = _peft()
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer):
                scales[name] = module.scaling["default"]
    except ImportError:
        pass
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            module_name, _, leaf = key.partition(".base_layer.")
            plain = f"{module_name}.{leaf}"
            if leaf == "weight" and module_name in scales:
                a = state[f"{module_name}.lora_A.default.weight"].float()
                b = state[f"{module_name}.lora_B.default.weight"].float()
                value = (value.float() + scales[module_name] * (b @ a)).to(value.dtype)
            out[plain] = value
        else:
            out[key] = value
    return out


def merge_lora_(model: nn.Module) -> nn.Module:
    """Merge every LoRA adapter into its base layer and put the plain ``nn.Linear`` back, in place."""
    _, LoraLayer = _peft()
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model
