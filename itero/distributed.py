"""Data parallelism over processes started by ``torchrun`` or ``accelerate launch`` (gloo on CPU, nccl on GPUs).

The loop stays one program: every rank runs every stage. Generation is sharded by prompt chunk
(chunk i on rank i mod W, each chunk with its own seed, so the gathered batch equals the one-process
batch row for row); everything after it sees the whole batch, so group statistics and advantage
whitening are global by construction and a group is never split. Training shards each optimizer
mini-batch's units across ranks and sums the gradients with one all-reduce per step, which with the
learner's whole-batch loss weights gives the one-process gradient (2 processes = 1 process, tested).
Rank 0 alone writes the run directory; the others wait at a barrier after each stage and read it.

Frozen passes (old / ref / DPO-model log-probs, critic values) are split over the ranks by row and
gathered; VinePPO's Monte-Carlo rollouts by seeded state chunk, as generation. Not here:
the sharding itself: ``distributed.strategy: zero2 / zero3 / fsdp`` shard the learner's models with
FSDP2 (itero/training/sharding.py); ``ddp`` keeps a replica per rank and sums gradients here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def mine(self, index: int) -> bool:
        """Whether item ``index`` of a round-robin split belongs to this rank."""
        return index % self.world_size == self.rank

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (small Python objects and CPU tensors)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def map_rows(self, fn, batch, balanced: bool = False):
        """``fn(batch) -> (B, R)`` tensor computed on this rank's rows only (round-robin) and gathered, so a
        frozen forward pass over the whole batch costs each of W ranks 1/W of it. ``balanced``: every
        rank passes the same number of rows (repeats of a row, dropped after), as a sharded model's
        forward, a collective, requires."""
        if not self.enabled:
            return fn(batch)
        rows = list(range(self.rank, batch.batch_size, self.world_size))
        todo = rows
        if balanced:
            todo = rows + [rows[-1] if rows else 0] * (-(-batch.batch_size // self.world_size) - len(rows))
        computed = fn(batch.select(todo))[: len(rows)] if todo else None
        mine = computed if rows else None
        out = None
        for rank, part in enumerate(self.gather_objects(mine)):
            if part is None:
                continue
            if out is None:
                out = torch.zeros((batch.batch_size, *part.shape[1:]), dtype=part.dtype)
            out[rank :: self.world_size] = part
        return out

    def all_reduce_gradients(self, parameters) -> None:
        """Σ over ranks of every ``.grad`` (each rank's loss already carries its share of the mini-batch)."""
        if not self.enabled:
            return
        params = [p for p in parameters if p.requires_grad]
        for p in params:  # a rank without units this step still joins the collective, with zeros
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per step instead of one per tensor
        tdist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Sum over ranks (each rank's metrics are already weighted by its share of the mini-batch);
        the maximum for ``*_max`` metrics."""
        if not self.enabled:
            return metrics
        keys = sorted(set().union(*self.gather_objects(sorted(metrics))))  # a rank without units has fewer keys
        out = {}
        for op, missing, group in (
            (tdist.ReduceOp.SUM, 0.0, [k for k in keys if not is_max_metric(k)]),
            (tdist.ReduceOp.MAX, -math.inf, [k for k in keys if is_max_metric(k)]),
        ):
            if not group:
                continue
            values = torch.tensor([float(metrics.get(k, missing)) for k in group], dtype=torch.float64)
            tdist.all_reduce(values, op=op)
            out.update(zip(group, values.tolist()))
        return out


def is_max_metric(name: str) -> bool:
    """A metric named ``*_max`` (``ratio_max``) is a maximum over micro-batches, steps and ranks;
    every other one a (weighted) mean."""
    return name.endswith("_max")


def fold_metric(into: dict[str, float], name: str, value: float, weight: float = 1.0) -> None:
    """Accumulates one metric: the running maximum of a ``*_max`` one, else the weighted sum."""
    into[name] = max(into.get(name, value), value) if is_max_metric(name) else into.get(name, 0.0) + value * weight


_CURRENT = Dist()


def init() -> Dist:
    """Join the process group the launcher described in the environment (RANK, WORLD_SIZE, MASTER_*)."""
    global _CURRENT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.cuda.is_available():  # NCCL and FSDP's device mesh use the current device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        _CURRENT = Dist(rank=tdist.get_rank(), world_size=tdist.get_world_size())
    return _CURRENT


def current() -> Dist:
    return _CURRENT
