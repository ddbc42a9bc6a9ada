"""Training recipes: YAML files mapped 1:1 onto dataclasses.

A recipe has five sections, each a dataclass below: ``model`` (where the weights come from, what is frozen,
image settings), ``lora``, ``data``, ``optim`` and ``run``. Every YAML key is a field name; unknown keys are
errors that list the valid ones. ``key=value`` overrides use the dotted form (``optim.learning_rate=1e-4``)
or the bare field name when it is unique across sections (``learning_rate=1e-4``); values are parsed as
YAML and coerced to the field's type (so ``1e-4`` is a float although YAML 1.1 reads it as a string).

Bundled recipes live in ``tessera/recipes/*.yaml``; :func:`find_recipe` resolves a name such as
``mini-internvl-chat-2b-v1-5-finetune`` or a path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be run as written; the message says which key and what to do."""


@dataclass
class ModelArgs:
    """Where the model comes from and what trains.

    Exactly one init mode: ``model_name_or_path`` (an InternVL checkpoint, official layout), or
    ``vision_path`` + ``llm_path`` (+ ``mlp_path``; separate ViT and LLM safetensors dirs, ``mlp1``
    random unless given), or ``config`` alone (random init from a ChatConfig preset name or config.json
    path; needs ``tokenizer_path``). ``config`` may also accompany ``vision_path``/``llm_path`` to give
    the architecture instead of the dirs' own config.json files.
    """

    model_name_or_path: str | None = None
    vision_path: str | None = None
    llm_path: str | None = None
    mlp_path: str | None = None
    config: str | None = None
    tokenizer_path: str | None = None
    # written into the model config (the official CLI overrides)
    template: str | None = None  # conv_style; None keeps the config's
    system_message: str | None = None  # None: the template default
    force_image_size: int | None = None
    max_dynamic_patch: int | None = None  # tiles per image at training time (None: the config's, 12)
    min_dynamic_patch: int | None = None
    use_thumbnail: bool | None = None
    dynamic_image_size: bool | None = None
    ps_version: str | None = None
    drop_path_rate: float | None = None  # ViT stochastic depth, linspace(0, rate) over layers
    # freezing (fact sheet 7.6)
    freeze_backbone: bool = False
    freeze_llm: bool = False
    freeze_mlp: bool = False
    unfreeze_lm_head: bool = False
    unfreeze_vit_layers: int = 0  # k: train encoder.layers[k:] even when the backbone is frozen
    grad_checkpoint: bool = True
    init_std: float = 0.02  # std of the normal init for random (from-scratch / new-token) weights


@dataclass
class LoraArgs:
    """peft LoRA on the LLM and/or the ViT; alpha defaults to 2 x rank, dropout 0.05 (fact sheet 7.6)."""

    llm_rank: int = 0  # the official --use_llm_lora
    vit_rank: int = 0  # the official --use_backbone_lora
    alpha: float | None = None
    dropout: float = 0.05
    llm_targets: list[str] | None = None  # None: the family's official list
    vit_targets: list[str] | None = None


@dataclass
class DataArgs:
    """The official meta JSON + JSONL data and how it becomes batches."""

    meta_path: str | None = None
    max_seq_length: int = 4096
    group_by_length: bool = False
    packing: bool = False  # pack a micro-batch's samples into fewer rows (block-diagonal attention)
    num_workers: int = 4
    video_frames: int = 8  # frames sampled per video sample (one tile each)
    max_images: int = 64  # samples with more images are skipped


@dataclass
class OptimArgs:
    """AdamW + schedule. Global batch = per_device_batch_size x world size x gradient_accumulation_steps."""

    learning_rate: float = 2e-5
    weight_decay: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler: str = "cosine"  # cosine | linear | constant (all after linear warmup)
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0: ceil(total_steps * ratio)
    max_grad_norm: float = 1.0
    vision_lr_scale: float = 1.0  # learning-rate multiplier of the ViT (vision_model.*)
    mlp_lr_scale: float = 1.0  # learning-rate multiplier of the projector (mlp1.*)
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1


@dataclass
class RunArgs:
    """Output, checkpoints, hardware and feedback."""

    output_dir: str = "runs/train"
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    parallel: str = "auto"  # auto | none | ddp | fsdp (auto: fsdp on GPU, ddp on CPU, when world > 1)
    save_steps: int = 200  # 0: only at the end
    save_total_limit: int = 2  # keep this many checkpoint-N dirs (0: keep all)
    save_dtype: str = "bfloat16"  # dtype of the official-layout weights
    resume: bool | str = False  # true: latest checkpoint in output_dir; or a checkpoint path
    logging_steps: int = 1
    tensorboard: bool = False  # only if the tensorboard package is installed
    plot: bool = True  # loss-curve PNG at the end
    progress: bool = True  # tqdm bar on rank 0
    threads: int = 0  # torch CPU threads (0: leave torch's default)


@dataclass
class TrainConfig:
    """A whole recipe. Build with :meth:`from_yaml`, :meth:`from_dict` or in Python directly."""

    model: ModelArgs = field(default_factory=ModelArgs)
    lora: LoraArgs = field(default_factory=LoraArgs)
    data: DataArgs = field(default_factory=DataArgs)
    optim: OptimArgs = field(default_factory=OptimArgs)
    run: RunArgs = field(default_factory=RunArgs)
    description: str = ""

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise RecipeError(f"unknown recipe section(s) {sorted(unknown)}; sections are {list(SECTIONS)}")
        kwargs: dict[str, Any] = {"description": str(data.get("description", "") or "")}
        for name, section_cls in SECTIONS.items():
            values = data.get(name) or {}
            if not isinstance(values, dict):
                raise RecipeError(f"recipe section {name!r} must be a mapping, got {type(values).__name__}")
            kwargs[name] = _build_section(section_cls, name, values)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
        path = find_recipe(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a recipe must be a YAML mapping of sections")
        cfg = cls.from_dict(data)
        return cfg.with_overrides(overrides)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
        """A copy with ``key=value`` overrides applied (dotted or unique bare field names)."""
        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise RecipeError(f"override {item!r} is not key=value (e.g. optim.learning_rate=1e-4)")
            key, _, raw = item.partition("=")
            section, name = _resolve_key(key.strip())
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError:
                value = raw
            if section is None:
                data[name] = value
            else:
                data[section][name] = value
        return TrainConfig.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


SECTIONS: dict[str, type] = {
    "model": ModelArgs, "lora": LoraArgs, "data": DataArgs, "optim": OptimArgs, "run": RunArgs,
}


def _resolve_key(key: str) -> tuple[str | None, str]:
    if key == "description":
        return None, key
    if "." in key:
        section, _, name = key.partition(".")
        if section not in SECTIONS:
            raise RecipeError(f"override {key!r}: unknown section {section!r}; sections are {list(SECTIONS)}")
        if name not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
            raise RecipeError(f"override {key!r}: {section} has no field {name!r}; fields: {_field_names(section)}")
        return section, name
    owners = [s for s, c in SECTIONS.items() if key in {f.name for f in dataclasses.fields(c)}]
    if not owners:
        raise RecipeError(f"override {key!r}: no section has this field; use section.field (sections {list(SECTIONS)})")
    if len(owners) > 1:
        raise RecipeError(f"override {key!r} is ambiguous ({', '.join(owners)}); write it as section.{key}")
    return owners[0], key


def _field_names(section: str) -> str:
    return ", ".join(f.name for f in dataclasses.fields(SECTIONS[section]))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """YAML value -> the field's annotated type (None allowed for Optional fields)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except RecipeError as exc:
                errors.append(str(exc))
        raise RecipeError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if origin is list:
        if value is None:
            raise RecipeError(f"{where}: expected a list, got null")
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value] if args else list(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise RecipeError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise RecipeError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise RecipeError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise RecipeError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if value is None:
            raise RecipeError(f"{where}: expected a string, got null")
        return str(value)
    return value


def _build_section(cls: type, name: str, values: dict[str, Any]):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise RecipeError(f"unknown key(s) {sorted(unknown)} in section {name!r}; valid keys: {_field_names(name)}")
    kwargs = {k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``tessera/recipes``."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe path, or the bundled recipe of that name (with or without ``.yaml``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    bundled = RECIPE_DIR / f"{stem}.yaml"
    if str(name_or_path) == path.name and bundled.is_file():
        return bundled
    raise RecipeError(
        f"recipe {str(name_or_path)!r} not found: give a YAML path or one of the bundled recipes: "
        + ", ".join(list_recipes())
    )
