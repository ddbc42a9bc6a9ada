"""Typed configs for InternVL 1.5 chat models, read from and written to the official ``config.json``.

Three dataclasses mirror the three levels of the official config: :class:`VisionConfig` (``vision_config``,
InternViT), :class:`LLMConfig` (``llm_config``, InternLM2 or Phi-3) and :class:`ChatConfig` (the top level,
``InternVLChatConfig``). Every key of the source file that a dataclass does not model is kept in ``extra``
and written back unchanged, so a load/save round trip keeps every field the official loader reads.

Named presets (:data:`PRESETS`) describe the released checkpoints at their real sizes (for parameter
counts and random-weight benchmarks) and tiny sizes for tests.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INTERNLM2 = "InternLM2ForCausalLM"
PHI3 = "Phi3ForCausalLM"
SUPPORTED_LLMS = (INTERNLM2, PHI3)


class ConfigError(ValueError):
    """A config.json that tessera cannot build a model from."""


def _split(cls, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    return known, extra


def _to_dict(obj) -> dict[str, Any]:
    out = copy.deepcopy(obj.extra)
    for f in dataclasses.fields(obj):
        if f.name == "extra":
            continue
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = value.to_dict()
        out[f.name] = copy.deepcopy(value)
    return dict(sorted(out.items()))


@dataclass
class VisionConfig:
    """InternViT (``vision_config``). Defaults are InternViT-6B-448px-V1-5."""

    hidden_size: int = 3200
    intermediate_size: int = 12800
    num_hidden_layers: int = 45
    num_attention_heads: int = 25
    num_channels: int = 3
    patch_size: int = 14
    image_size: int = 448
    qkv_bias: bool = False
    qk_normalization: bool = True
    norm_type: str = "rms_norm"  # "rms_norm" (6B) or "layer_norm" (300M)
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    drop_path_rate: float = 0.0
    dropout: float = 0.0
    attention_dropout: float = 0.0
    initializer_range: float = 1e-10
    initializer_factor: float = 0.1
    use_flash_attn: bool = True
    architectures: list[str] = field(default_factory=lambda: ["InternVisionModel"])
    model_type: str = "intern_vit_6b"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionConfig:
        known, extra = _split(cls, data)
        cfg = cls(**known, extra=extra)
        if cfg.norm_type not in ("rms_norm", "layer_norm"):
            raise ConfigError(f"vision_config.norm_type {cfg.norm_type!r} is not 'rms_norm' or 'layer_norm'")
        if cfg.hidden_size % cfg.num_attention_heads:
            raise ConfigError("vision_config.hidden_size must be divisible by num_attention_heads")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass
class LLMConfig:
    """The language model (``llm_config``): InternLM2 or Phi-3. Defaults are internlm2-chat-20b."""

    architectures: list[str] = field(default_factory=lambda: [INTERNLM2])
    model_type: str = "internlm2"
    hidden_size: int = 6144
    intermediate_size: int = 16384
    num_hidden_layers: int = 48
    num_attention_heads: int = 48
    num_key_value_heads: int = 8
    vocab_size: int = 92553
    max_position_embeddings: int = 32768
    original_max_position_embeddings: int | None = None  # Phi-3 LongRoPE only
    rope_theta: float = 1_000_000.0
    rope_scaling: dict[str, Any] | None = None
    rms_norm_eps: float = 1e-5
    bias: bool = False  # InternLM2 only (the official class default is True; the checkpoints store False)
    hidden_act: str = "silu"
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 2
    tie_word_embeddings: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return self.architectures[0]

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMConfig:
        known, extra = _split(cls, data)
        cfg = cls(**known, extra=extra)
        if not cfg.architectures or cfg.architecture not in SUPPORTED_LLMS:
            raise ConfigError(
                f"llm_config.architectures={cfg.architectures!r}: tessera supports {', '.join(SUPPORTED_LLMS)} "
                "(the InternVL 1.5 family)"
            )
        if cfg.num_attention_heads % cfg.num_key_value_heads:
            raise ConfigError("llm_config.num_attention_heads must be a multiple of num_key_value_heads")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        if self.original_max_position_embeddings is None:
            out.pop("original_max_position_embeddings")
        if self.architecture == PHI3:
            out.pop("bias")  # Phi-3 has no such field
        return out


@dataclass
class ChatConfig:
    """The chat model (``InternVLChatConfig``, top level of config.json)."""

    vision_config: VisionConfig = field(default_factory=VisionConfig)
    llm_config: LLMConfig = field(default_factory=LLMConfig)
    force_image_size: int = 448
    downsample_ratio: float = 0.5
    select_layer: int = -1
    template: str = "internlm2-chat"
    ps_version: str = "v1"  # the official class default when the field is missing; checkpoints store "v2"
    dynamic_image_size: bool = True
    use_thumbnail: bool = True
    min_dynamic_patch: int = 1
    max_dynamic_patch: int = 12
    pad2square: bool = False
    use_backbone_lora: int = 0
    use_llm_lora: int = 0
    system_message: str | None = None
    architectures: list[str] = field(default_factory=lambda: ["InternVLChatModel"])
    model_type: str = "internvl_chat"
    torch_dtype: str = "bfloat16"
    tie_word_embeddings: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        """Tile size in pixels (``force_image_size``, falling back to the ViT's ``image_size``)."""
        return self.force_image_size or self.vision_config.image_size

    @property
    def num_image_token(self) -> int:
        """Tokens per tile after pixel shuffle: (image_size / patch)^2 * downsample_ratio^2 (256 at 448 px)."""
        patches = self.image_size // self.vision_config.patch_size
        return int(patches**2 * self.downsample_ratio**2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatConfig:
        data = dict(data)
        if "vision_config" not in data or "llm_config" not in data:
            raise ConfigError(
                "config.json has no vision_config/llm_config: this is not an InternVL chat checkpoint "
                "(architectures InternVLChatModel)"
            )
        vision = VisionConfig.from_dict(data.pop("vision_config"))
        llm = LLMConfig.from_dict(data.pop("llm_config"))
        known, extra = _split(cls, data)
        cfg = cls(vision_config=vision, llm_config=llm, **known, extra=extra)
        if cfg.ps_version not in ("v1", "v2"):
            raise ConfigError(f"ps_version {cfg.ps_version!r} is not 'v1' or 'v2'")
        arch = cfg.architectures[0] if cfg.architectures else None
        if arch not in (None, "InternVLChatModel"):
            raise ConfigError(f"architectures={cfg.architectures!r}: expected ['InternVLChatModel']")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        if self.system_message is None:
            out.pop("system_message")
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> ChatConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no config.json (is this a checkpoint directory?)") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_name(cls, name: str) -> ChatConfig:
        """A named preset (see :data:`PRESETS`)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
        return cls.from_dict(copy.deepcopy(PRESETS[name]))


# ---------------------------------------------------------------------------------------------------------
# Presets. Real sizes follow the fact sheet (shared/docs/internvl-1.5.md sections 1, 2.1, 4) and the official
# config.json files of OpenGVLab/InternVL-Chat-V1-5, Mini-InternVL-Chat-2B-V1-5 and Mini-InternVL-Chat-4B-V1-5.

_VIT_6B = dict(
    hidden_size=3200, intermediate_size=12800, num_hidden_layers=45, num_attention_heads=25, image_size=448,
    patch_size=14, qkv_bias=False, qk_normalization=True, norm_type="rms_norm", initializer_factor=0.1,
    initializer_range=1e-10,
)
_VIT_300M = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=448,
    patch_size=14, qkv_bias=True, qk_normalization=False, norm_type="layer_norm", initializer_factor=1.0,
    initializer_range=0.02,
)
_INTERNLM2_20B = dict(
    architectures=[INTERNLM2], model_type="internlm2", hidden_size=6144, intermediate_size=16384,
    num_hidden_layers=48, num_attention_heads=48, num_key_value_heads=8, vocab_size=92553,
    max_position_embeddings=32768, rope_theta=1_000_000.0, rope_scaling={"type": "dynamic", "factor": 3.0},
    bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=2, attn_implementation="eager",
)
_INTERNLM2_1_8B = dict(
    _INTERNLM2_20B, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=16,
    num_key_value_heads=8, rope_scaling={"type": "dynamic", "factor": 2.0},
)
# Phi-3-mini-128k-instruct. The real LongRoPE factor lists come from the checkpoint's own config.json; the
# preset uses neutral factors (1.0), which give the same FLOPs and bytes for benchmarks.
_PHI3_MINI = dict(
    architectures=[PHI3], model_type="phi3", hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=32, vocab_size=32020, max_position_embeddings=131072,
    original_max_position_embeddings=4096, rope_theta=10000.0,
    rope_scaling={"type": "su", "short_factor": [1.0] * 48, "long_factor": [1.0] * 48},
    bos_token_id=1, eos_token_id=32000, pad_token_id=32000,
)
_CHAT = dict(
    force_image_size=448, downsample_ratio=0.5, select_layer=-1, ps_version="v2", dynamic_image_size=True,
    use_thumbnail=True, min_dynamic_patch=1, max_dynamic_patch=12,
)


def _tiny_vit(**kw) -> dict[str, Any]:
    base = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, image_size=56)
    return {**base, **kw}


PRESETS: dict[str, dict[str, Any]] = {
    "internvl-chat-v1-5": dict(
        _CHAT, template="internlm2-chat", vision_config=_VIT_6B, llm_config=_INTERNLM2_20B
    ),
    "mini-internvl-chat-2b-v1-5": dict(
        _CHAT, template="internlm2-chat", vision_config=_VIT_300M, llm_config=_INTERNLM2_1_8B
    ),
    "mini-internvl-chat-4b-v1-5": dict(
        _CHAT, template="phi3-chat", vision_config=_VIT_300M, llm_config=_PHI3_MINI
    ),
    # Tiny versions with the shapes of shared/conformance/models/* (56 px tiles, 4 tokens per tile).
    "tiny-internlm2": dict(
        _CHAT, force_image_size=56, template="internlm2-chat",
        vision_config=_tiny_vit(**{k: _VIT_6B[k] for k in ("qkv_bias", "qk_normalization", "norm_type")}),
        llm_config=dict(_INTERNLM2_20B, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=1009),
    ),
    "tiny-phi3": dict(
        _CHAT, force_image_size=56, template="phi3-chat",
        vision_config=_tiny_vit(**{k: _VIT_300M[k] for k in ("qkv_bias", "qk_normalization", "norm_type")}),
        llm_config=dict(_PHI3_MINI, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=4, vocab_size=1020,
                        max_position_embeddings=2048, original_max_position_embeddings=64,
                        rope_scaling={"type": "su", "short_factor": [1.0] * 8, "long_factor": [1.0] * 8}),
    ),
    # tessera's own bundled model (trained from scratch on tessera.synth data): 112 px tiles, 16 tokens per
    # tile, a 4-layer InternViT-300M-style encoder and a 4-layer InternLM2; about 5.6 M parameters.
    "tessera-tiny": dict(
        _CHAT, force_image_size=112, template="internlm2-chat", torch_dtype="float32",
        vision_config=dict(_VIT_300M, hidden_size=192, intermediate_size=768, num_hidden_layers=4,
                           num_attention_heads=4, image_size=112),
        llm_config=dict(_INTERNLM2_20B, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, vocab_size=1009),
    ),
}

# Published parameter totals of the released checkpoints (blog / model cards; performance.md gives 4 digits).
PUBLISHED_PARAMS = {
    "internvl-chat-v1-5": 25.51e9,
    "mini-internvl-chat-2b-v1-5": 2.2e9,
    "mini-internvl-chat-4b-v1-5": 4.2e9,
}
