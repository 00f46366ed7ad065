"""Sharding inputs across processes started by ``torchrun`` or ``accelerate launch``.

Both launchers describe a process by the environment variables RANK, WORLD_SIZE,
LOCAL_RANK and LOCAL_WORLD_SIZE. Input ``i`` goes to the process with ``i % world_size ==
rank``; each process transcribes its share (and writes its own output files), then rank 0
gathers every result over gloo and reports them in input order, so the output is the same
as one process's. gloo works for CPU-only ranks and for GPU ranks alike: only Python
objects travel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .errors import W2VError

logger = logging.getLogger("w2v")

T = TypeVar("T")

# A rank that finishes its share early waits in the gather for the slowest one; gloo's
# default 30-minute timeout would kill long, unevenly sharded jobs.
GATHER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Shard:
    """Which part of the inputs this process handles."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # index among the processes on this machine (picks the GPU)
    local_world_size: int = 1  # processes on this machine (share its CPU cores)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def indices(self, total: int) -> list[int]:
        """The input indices this process handles: i % world_size == rank."""
        return list(range(self.rank, total, self.world_size))

    def device(self, device: str) -> str:
        """'auto' or 'cuda' on a machine with GPUs: one GPU per local rank. Others as given."""
        if self.distributed and device in ("auto", "cuda"):
            import torch

            if torch.cuda.is_available():
                return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise W2VError(f"environment variable {name}={value!r} is not an integer; "
                       f"it is set by torchrun / accelerate launch") from None


def current_shard() -> Shard:
    """This process's shard, from the launcher's environment (one process when unset)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise W2VError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process; "
                       f"expected 0 <= RANK < WORLD_SIZE")
    if world > 1 and not os.environ.get("MASTER_ADDR"):
        raise W2VError(f"WORLD_SIZE={world} but MASTER_ADDR is not set; start several processes with "
                       f"`torchrun --nproc_per_node N -m w2v_cli.cli ...` or `accelerate launch`")
    local_rank = _env_int("LOCAL_RANK", rank if world > 1 else 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    return Shard(rank, world, local_rank, max(1, local_world))


def gather_to_main(shard: Shard, items: Sequence[T]) -> list[list[T]] | None:
    """Every rank's `items` on rank 0, as one list per rank; None on the other ranks.

    Sets up a gloo process group from the launcher's MASTER_ADDR/MASTER_PORT when none is
    set up yet, and tears down the one it set up.
    """
    if not shard.distributed:
        return [list(items)]
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size,
                                timeout=GATHER_TIMEOUT)
    try:
        gathered: list[Any] | None = [None] * shard.world_size if shard.is_main else None
        dist.gather_object(list(items), gathered, dst=0)
    finally:
        if created:
            dist.destroy_process_group()
    return gathered


def in_input_order(shard: Shard, results: Iterable[T], total: int) -> Iterator[T]:
    """All `total` results in input order on rank 0, from each rank's own results (one per
    input of ``shard.indices(total)``, in order); nothing on the other ranks, once their
    share is done. One process streams its results through as they come."""
    if not shard.distributed:
        yield from results
        return
    parts = gather_to_main(shard, list(results))
    if parts is None:
        return
    for i in range(total):
        yield parts[i % shard.world_size][i // shard.world_size]
