"""Process group, device and data-parallel wrapping (DDP or FSDP2 ``fully_shard``).

Started by ``torchrun`` (``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in the environment, multi-node through
its rendezvous) or as a single process. Backend: NCCL on GPU, gloo on CPU.
``parallel: auto`` picks FSDP2 on GPU and DDP on CPU when there is more than one process.
FSDP2 shards every ViT layer, every LLM decoder layer and the rest at the root, with bf16 compute and
float32 gradient reduction under bf16 precision; DDP and a single process use ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .config import RecipeError, RunArgs


@dataclass
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    strategy: str  # none | ddp | fsdp
    dtype: torch.dtype  # compute dtype (bf16 or fp32)
    owns_group: bool = False  # this run created the process group (and destroys it at the end)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int, cuda_available: bool) -> torch.device:
    """``run.device`` as a device with an index where it is a GPU: ``auto`` -> this process's GPU (or the CPU),
    a bare ``cuda`` -> ``cuda:LOCAL_RANK`` (``torch.cuda.set_device`` needs the index), anything else as given."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if cuda_available else "cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def setup(run: RunArgs) -> DistEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(run.device, local_rank, torch.cuda.is_available())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:  # a caller's own process group is used as it is and left alive
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    strategy = run.parallel
    if strategy == "auto":
        strategy = "none" if world == 1 else ("fsdp" if device.type == "cuda" else "ddp")
    if strategy not in ("none", "ddp", "fsdp"):
        raise RecipeError(f"run.parallel must be auto, none, ddp or fsdp, got {run.parallel!r}")
    if strategy == "none" and world > 1:
        raise RecipeError("run.parallel=none but several processes were started; use ddp or fsdp")
    precision = run.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp32"):
        raise RecipeError(f"run.precision must be auto, bf16 or fp32, got {run.precision!r}")
    if run.threads > 0:
        torch.set_num_threads(run.threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return DistEnv(rank, world, local_rank, device, strategy, dtype, owns_group)


def wrap(module: nn.Module, env: DistEnv) -> nn.Module:
    """DDP / FSDP2 around the :class:`TrainModule` (whose ``.model`` is the chat model)."""
    if env.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        return DDP(module, device_ids=ids)
    if env.strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=env.dtype, reduce_dtype=torch.float32)
        model = module.model
        for layer in list(model.vision_model.encoder.layers) + list(model.language_model.model.layers):
            fully_shard(layer, mp_policy=mp)
        fully_shard(module, mp_policy=mp)
        return module
    return module


def autocast(env: DistEnv):
    """bf16 autocast for DDP / single process (FSDP2 casts parameters itself)."""
    if env.dtype == torch.float32 or env.strategy == "fsdp":
        return contextlib.nullcontext()
    return torch.autocast(env.device.type, dtype=env.dtype)


def no_sync(wrapped: nn.Module, env: DistEnv, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step (DDP)."""
    if env.strategy == "ddp" and not last:
        return wrapped.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    if env.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.world > 1:
        dist.barrier()


def cleanup(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()
