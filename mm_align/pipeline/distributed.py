"""Data-parallel scoring across processes started by ``torchrun`` or ``accelerate launch``.

Both launchers export RANK, WORLD_SIZE and LOCAL_RANK (plus MASTER_ADDR / MASTER_PORT);
each process scores the samples whose index is congruent to its rank and writes its own
shard, and ``torch.distributed`` (gloo, which works with CPU and GPU tensors alike) only
provides the barriers around the main process's merge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class Workers:
    """This process's place among the data-parallel workers (1 of 1 without a launcher)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Workers:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> str | None:
        """This process's shard name, or None when it is the only process."""
        return None if self.world_size == 1 else f"rank-{self.rank:03d}"

    def owns(self, index: int) -> bool:
        return index % self.world_size == self.rank

    def device(self, device: str) -> str:
        """A bare ``cuda`` means this process's own GPU (cuda:LOCAL_RANK)."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world_size > 1 else device

    def barrier(self) -> None:
        """Wait for every worker (no-op for a single process)."""
        if self.world_size == 1:
            return
        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        dist.barrier()
