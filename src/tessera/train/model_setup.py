"""Build the model a recipe trains: init mode, config overrides, vocabulary, freezing, LoRA, checkpointing.

Init modes (fact sheet 7.1): an existing InternVL checkpoint (``model_name_or_path``); a separate vision
encoder + LLM (+ optional ``mlp1``) from safetensors dirs (``vision_path``/``llm_path``/``mlp_path``; keys
with or without the ``vision_model.``/``language_model.``/``mlp1.`` prefixes); or random init from a
config (``config``: a ChatConfig preset name or a config.json path) with ``tokenizer_path``.
Weights are kept in float32 (the master copy); mixed precision is applied by the engine.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import iter_tensors, load_model, resolve, shard_files
from ..config import ChatConfig, ConfigError, LLMConfig, VisionConfig
from ..models.internvl import InternVLChatModel
from ..models.layers import RMSNorm
from ..tokenizer import Tokenizer, check_vocab
from .config import RecipeError, TrainConfig
from .lora import apply_lora
from .tokens import resize_vocab, with_internvl_tokens

log = logging.getLogger("tessera.train")


@dataclass
class BuiltModel:
    model: InternVLChatModel
    tokenizer: Tokenizer
    source_dir: Path | None  # checkpoint whose aux files (remote code, generation config) are copied on save


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Random init for training from scratch: normal(0, std) linears/embeddings/conv, zero biases, unit
    norms; the ViT's class and position embeddings normal(0, std); LayerScale keeps its config value."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    for name, p in module.named_parameters():
        if name.endswith(("class_embedding", "position_embedding")):
            nn.init.normal_(p, 0.0, std)


def chat_config(spec: str) -> ChatConfig:
    """A ChatConfig from a preset name, a config.json path or a checkpoint directory."""
    path = Path(spec).expanduser()
    if path.exists():
        return ChatConfig.from_file(path)
    try:
        return ChatConfig.from_name(spec)
    except ConfigError as exc:
        raise RecipeError(f"model.config: {exc} (or give a config.json path)") from None


def separate_parts_config(spec: str | None, vision_path: str, llm_path: str) -> ChatConfig:
    """Chat config for a separate ViT + LLM: the vision and LLM sub-configs come from the dirs'
    config.json files (as the official code reads them), the chat-level fields from ``spec`` (a preset or
    config.json; also the fallback for a dir without config.json)."""
    config = chat_config(spec) if spec else ChatConfig(ps_version="v2")
    parts = ((vision_path, "vision_config", VisionConfig), (llm_path, "llm_config", LLMConfig))
    for directory, attr, cls in parts:
        path = resolve(directory) / "config.json"
        if path.is_file():
            setattr(config, attr, cls.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        elif not spec:
            raise RecipeError(f"{path} not found; set model.config (a preset or config.json) for the architecture")
    return config


def _apply_overrides(config: ChatConfig, m) -> None:
    for name in ("template", "system_message", "force_image_size", "max_dynamic_patch", "min_dynamic_patch",
                 "use_thumbnail", "dynamic_image_size", "ps_version"):
        value = getattr(m, name)
        if value is not None:
            setattr(config, name, value)
    if m.drop_path_rate is not None:
        config.vision_config.drop_path_rate = m.drop_path_rate


def _set_drop_path(model: InternVLChatModel, rate: float) -> None:
    layers = model.vision_model.encoder.layers
    n = len(layers)
    for i, layer in enumerate(layers):
        layer.drop_path_rate = rate * i / max(n - 1, 1)


def _load_part(model: InternVLChatModel, directory: str, prefix: str, what: str) -> int:
    """Copy the tensors of a safetensors dir into ``model`` under ``prefix``; returns the LLM vocab rows
    found (for the embedding resize) or 0."""
    expected = model.state_dict()
    ckpt = resolve(directory)
    seen, vocab, unexpected = set(), 0, []
    for key, file, tensor in iter_tensors(shard_files(ckpt)):
        name = key if key.startswith(prefix) else prefix + key
        if name not in expected:
            unexpected.append(key)
            continue
        target = expected[name]
        if name.endswith(("tok_embeddings.weight", "embed_tokens.weight", "output.weight", "lm_head.weight")):
            vocab = tensor.shape[0]
            rows = min(vocab, target.shape[0])
            with torch.no_grad():
                target[:rows].copy_(tensor[:rows])
            seen.add(name)
            continue
        if tuple(tensor.shape) != tuple(target.shape):
            raise RecipeError(f"{file}: {key!r} has shape {tuple(tensor.shape)}, the config implies {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(tensor)
        seen.add(name)
    if unexpected:
        log.warning("%s: ignored %d tensors that the %s does not use (%s ...)", ckpt, len(unexpected), what,
                    ", ".join(unexpected[:3]))
    missing = [k for k in expected if k.startswith(prefix) and k not in seen]
    if missing:
        raise RecipeError(f"{ckpt}: the {what} weights lack {', '.join(missing[:4])} ({len(missing)} missing)")
    return vocab


def load_mlp(model: InternVLChatModel, path: str) -> None:
    """``mlp1`` weights from a torch file (the official ``--mlp_path``, keys ``0.weight`` ...) or a
    safetensors file/dir (keys with or without ``mlp1.``)."""
    file = Path(path).expanduser()
    if file.is_file() and file.suffix != ".safetensors":
        state = torch.load(file, map_location="cpu", weights_only=True)
    elif file.is_file():
        from safetensors.torch import load_file

        state = load_file(str(file))
    else:
        _load_part(model, path, "mlp1.", "projector (mlp1)")
        return
    state = {k.removeprefix("mlp1."): v for k, v in state.items()}
    try:
        model.mlp1.load_state_dict(state)
    except RuntimeError as exc:
        raise RecipeError(f"model.mlp_path {path}: does not fit this model's mlp1 ({exc})") from None


def build_model(cfg: TrainConfig, device: torch.device | str = "cpu") -> BuiltModel:
    """The model (float32, on ``device``, train mode) with everything the recipe asks for applied."""
    m = cfg.model
    modes = [bool(m.model_name_or_path), bool(m.vision_path or m.llm_path)]
    if sum(modes) > 1:
        raise RecipeError("give either model.model_name_or_path or model.vision_path + model.llm_path, not both")
    source_dir = None
    torch.manual_seed(cfg.run.seed)
    if m.model_name_or_path:
        model, source_dir = load_model(m.model_name_or_path, device=device, dtype=torch.float32)
        tok_dir = m.tokenizer_path or source_dir
        _apply_overrides(model.config, m)
    elif m.vision_path or m.llm_path:
        if not (m.vision_path and m.llm_path):
            raise RecipeError("model.vision_path and model.llm_path go together (plus an optional mlp_path)")
        config = separate_parts_config(m.config, m.vision_path, m.llm_path)
        _apply_overrides(config, m)
        tok_dir = m.tokenizer_path or m.llm_path
        tokenizer = with_internvl_tokens(Tokenizer.from_dir(resolve(tok_dir)))
        with torch.device(device):
            model = InternVLChatModel(config)
        model.float()
        init_weights(model.mlp1, m.init_std)
        _load_part(model, m.vision_path, "vision_model.", "vision encoder")
        old_vocab = _load_part(model, m.llm_path, "language_model.", "LLM")
        if old_vocab and old_vocab < config.llm_config.vocab_size:  # rows past the LLM's own: new tokens
            with torch.no_grad():
                lm = model.language_model
                lm.embed_tokens.weight[old_vocab:].normal_(0.0, m.init_std)
                lm.head.weight[old_vocab:] = lm.head.weight[:old_vocab].mean(dim=0, keepdim=True)
        if m.mlp_path:
            load_mlp(model, m.mlp_path)
    else:
        if not m.config:
            raise RecipeError("set model.model_name_or_path, model.vision_path + model.llm_path, or model.config")
        if not m.tokenizer_path:
            raise RecipeError("training from a config (random init) needs model.tokenizer_path")
        config = chat_config(m.config)
        _apply_overrides(config, m)
        tok_dir = m.tokenizer_path
        tokenizer = with_internvl_tokens(Tokenizer.from_dir(resolve(tok_dir)))
        config.llm_config.vocab_size = len(tokenizer)
        with torch.device(device):
            model = InternVLChatModel(config)
        model.float()
        init_weights(model, m.init_std)
    if m.model_name_or_path:
        tokenizer = with_internvl_tokens(Tokenizer.from_dir(resolve(tok_dir)))
    if len(tokenizer) != model.config.llm_config.vocab_size:
        resize_vocab(model.language_model, len(tokenizer), m.init_std)
    check_vocab(tokenizer, model.config.llm_config.vocab_size)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    _set_drop_path(model, model.config.vision_config.drop_path_rate)
    configure_training(model, cfg)
    return BuiltModel(model, tokenizer, source_dir)


def configure_training(model: InternVLChatModel, cfg: TrainConfig) -> None:
    """Freeze, add LoRA, unfreeze the head / last ViT layers, switch on activation checkpointing."""
    m = cfg.model
    model.train()
    for part, frozen in ((model.vision_model, m.freeze_backbone), (model.language_model, m.freeze_llm),
                         (model.mlp1, m.freeze_mlp)):
        for p in part.parameters():
            p.requires_grad_(not frozen)
    if cfg.lora.llm_rank > 0 or cfg.lora.vit_rank > 0:
        apply_lora(model, cfg.lora)
    if m.freeze_llm:
        model.language_model.eval()
    if m.unfreeze_lm_head:
        model.language_model.head.weight.requires_grad_(True)
    if m.unfreeze_vit_layers:
        for layer in model.vision_model.encoder.layers[m.unfreeze_vit_layers:]:
            for name, p in layer.named_parameters():
                if "lora_" not in name:
                    p.requires_grad_(True)
    model.vision_model.set_grad_checkpointing(m.grad_checkpoint)
    model.language_model.gradient_checkpointing = m.grad_checkpoint
    if not any(p.requires_grad for p in model.parameters()):
        raise RecipeError("the recipe freezes every parameter: nothing to train")


def trainable_summary(model: nn.Module) -> dict[str, int]:
    """Trainable / total parameter counts per top-level module."""
    out = {}
    for name, child in model.named_children():
        params = list(child.parameters())
        out[name] = sum(p.numel() for p in params if p.requires_grad)
        out[name + "_total"] = sum(p.numel() for p in params)
    return out
