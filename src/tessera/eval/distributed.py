"""Data-parallel evaluation under ``torchrun``: rank/world from the environment, a gloo group for barriers.

Each rank generates the items ``todo[rank::world]`` into its own JSONL file; rank 0 merges after a barrier.
Gloo works for CPU-only runs and next to CUDA models alike (only barriers go through it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

BARRIER_TIMEOUT = timedelta(hours=12)  # a rank may wait at a barrier while others finish long shards


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Dist:
        """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun); join a gloo group when world > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
        owns = False
        if world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("gloo", rank=rank, world_size=world, timeout=BARRIER_TIMEOUT)
                owns = True
        return cls(rank, world, local_rank, owns)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = False
