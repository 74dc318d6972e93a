"""RAFT / RestEM: keep the samples whose reward reaches a threshold and fine-tune on them with NLL.

Departures: the NLL is a token-mean over the kept responses of the iteration (as HF SFT, RestEM);
the samplers repo's "raft" loss sums per sequence instead. ``restart_from_base`` gives RestEM
(every iteration fine-tunes the base model again) instead of continuing from the current policy.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from itero.algorithms import sft
from itero.algorithms.base import Context, LossFn, Schedule, TrainContext, no_models, plain_loss
from itero.batch import RolloutBatch
from itero.schema import Section


class Config(Section):
    name: Literal["raft"] = "raft"
    threshold: float = 1.0  # keep responses whose score is at least this
    max_per_prompt: int = Field(8, ge=1)
    unique: bool = True  # drop exact duplicate responses of a prompt before the cap
    restart_from_base: bool = False

    min_samples_per_prompt: ClassVar[int] = 1
    needs_reference: ClassVar[bool] = False


rows_per_unit = 1
loss = sft.loss
models_needed = no_models


def schedule(cfg: Config) -> Schedule:
    return Schedule(restart_from_base=cfg.restart_from_base)


def learner_loss(cfg: Config, ctx: TrainContext) -> LossFn:
    return plain_loss(loss, cfg)


def select(batch: RolloutBatch, cfg: Config, rng: torch.Generator | None = None) -> tuple[RolloutBatch, dict]:
    keep: list[int] = []
    per_group: dict[int, list[int]] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for i in range(batch.batch_size):
        if float(batch.scores[i]) < cfg.threshold:
            continue
        g = int(batch.group_ids[i])
        if cfg.unique:
            key = (g, tuple(batch.response_ids[i][batch.response_mask[i]].tolist()))
            if key in seen:
                continue
            seen.add(key)
        rows = per_group.setdefault(g, [])
        if len(rows) < cfg.max_per_prompt:
            rows.append(i)
            keep.append(i)
    num_groups = len(set(batch.group_ids.tolist()))
    stats = {
        "kept": len(keep),
        "prompts_with_kept": len(per_group),
        "frac_prompts_no_kept": 1 - len(per_group) / max(num_groups, 1),
    }
    return batch.select(keep), stats


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    return sft.prepare(batch)


def max_units(cfg: Config, prompts: int, n: int) -> tuple[int, str]:
    """At most this many training units an iteration (the dry run's plan): the samples that reach the
    threshold, at most ``max_per_prompt`` a prompt."""
    return prompts * min(n, cfg.max_per_prompt), "kept samples"
