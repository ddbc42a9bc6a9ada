"""Training checkpoints: official-layout weights plus everything needed to resume exactly.

``output_dir/checkpoint-N/`` holds config.json, model.safetensors (``run.save_dtype``, LoRA merged, no
peft keys), the tokenizer files and the source checkpoint's aux files, so ``tessera.load`` and the
official code read it as is. ``checkpoint-N/training_state/`` adds the float32 trainable parameters
(adapter weights included), the optimizer, the scheduler, each rank's RNG states and ``state.json``
(step, data position, counters). The directory is written as ``checkpoint-N.partial`` and renamed when
complete, so a run killed mid-save leaves no half checkpoint behind; :func:`find_latest` only sees
complete ones. ``output_dir`` must be visible to every rank (a shared filesystem on several nodes).
"""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checkpoint import save_model
from ..config import ChatConfig
from ..tokenizer import Tokenizer
from .config import RecipeError
from .distributed import DistEnv, barrier
from .lora import merged_state_dict

STATE_DIR = "training_state"
_PREFIX = "model."


class _StateView:
    """What :func:`tessera.checkpoint.save_model` needs from a model: ``config`` and ``state_dict()``."""

    def __init__(self, config: ChatConfig, state: dict[str, torch.Tensor]):
        self.config, self._state = config, state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state


def full_state(train_module: nn.Module, env: DistEnv) -> dict[str, torch.Tensor]:
    """Full float state of the chat model on CPU (rank 0 only under FSDP; names without ``model.``)."""
    if env.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(train_module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = {k: v.detach().cpu() for k, v in train_module.state_dict().items()}
    return {k.removeprefix(_PREFIX): v for k, v in state.items()}


def _optim_state(train_module: nn.Module, optimizer: torch.optim.Optimizer, env: DistEnv) -> dict:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        train_module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=env.world > 1)
    )


def export_weights(
    out_dir: Path,
    model: nn.Module,
    state: dict[str, torch.Tensor],
    tokenizer: Tokenizer,
    *,
    source_dir: Path | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """Write an official-layout checkpoint from a (possibly LoRA-wrapped) model's full state."""
    config = copy.deepcopy(model.config)
    config.use_llm_lora = 0
    config.use_backbone_lora = 0
    out = save_model(_StateView(config, merged_state_dict(model, state)), out_dir, source_dir=source_dir, dtype=dtype)
    tokenizer.save(out)
    return out


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    output_dir: Path,
    step: int,
    *,
    env: DistEnv,
    train_module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    tokenizer: Tokenizer,
    source_dir: Path | None,
    trainer_state: dict[str, Any],
    save_dtype: torch.dtype,
    keep: int = 0,
) -> Path:
    """Write ``checkpoint-{step}`` atomically (all ranks must call it). Returns its path."""
    model = train_module.model
    final = output_dir / f"checkpoint-{step}"
    partial = output_dir / f"checkpoint-{step}.partial"
    state = full_state(train_module, env)
    optim_state = _optim_state(train_module, optimizer, env)
    if env.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        export_weights(partial, model, state, tokenizer, source_dir=source_dir, dtype=save_dtype)
        sdir = partial / STATE_DIR
        sdir.mkdir()
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        save_file({n: state[n].float().contiguous() for n in names}, str(sdir / "trainable.safetensors"))
        torch.save(optim_state, sdir / "optimizer.pt")
        torch.save(scheduler.state_dict(), sdir / "scheduler.pt")
    barrier(env)
    torch.save(rng_state(), partial / STATE_DIR / f"rng_rank{env.rank}.pt")
    barrier(env)
    if env.is_main:
        (partial / STATE_DIR / "state.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        _rotate(output_dir, keep)
    barrier(env)
    return final


def _checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(output_dir).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if m and (path / STATE_DIR / "state.json").is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def _rotate(output_dir: Path, keep: int) -> None:
    if keep > 0:
        for _, path in _checkpoints(output_dir)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)


def find_latest(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in ``output_dir``, or None."""
    found = _checkpoints(Path(output_dir))
    return found[-1][1] if found else None


def load_checkpoint(
    ckpt: Path, *, env: DistEnv, train_module: nn.Module, optimizer: torch.optim.Optimizer, scheduler
) -> dict[str, Any]:
    """Restore parameters, optimizer, scheduler and this rank's RNG; returns the saved trainer state."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    sdir = Path(ckpt) / STATE_DIR
    if not (sdir / "state.json").is_file():
        raise RecipeError(f"{ckpt} is not a complete training checkpoint (no {STATE_DIR}/state.json)")
    model = train_module.model
    saved = load_file(str(sdir / "trainable.safetensors"))
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(saved) != wanted:
        diff = sorted(set(saved) ^ wanted)[:4]
        raise RecipeError(
            f"{ckpt}: the trainable parameters differ from this recipe's ({', '.join(diff)} ...); resume with "
            "the same freezing and LoRA settings"
        )
    if env.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(
            train_module, {_PREFIX + k: v for k, v in saved.items()},
            options=StateDictOptions(full_state_dict=True, strict=False),
        )
    else:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
    optim_state = torch.load(sdir / "optimizer.pt", map_location="cpu", weights_only=False)
    set_optimizer_state_dict(train_module, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(torch.load(sdir / "scheduler.pt", weights_only=False))
    rng_file = sdir / f"rng_rank{env.rank}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return json.loads((sdir / "state.json").read_text())
