"""DAPO's dynamic sampling inside the generate stage: keep the groups whose correctness is mixed and
sample further prompts until the batch holds ``loop.prompts_per_iteration`` of them.

Semantics of verl's ``recipe/dapo/dapo_ray_trainer.py`` (``algorithm.filter_groups``): each round
samples ``prompts_per_round`` new prompts (verl's ``gen_batch_size``), drops the groups whose metric
has zero spread, and appends the rest; once enough groups are kept, the surplus is cut from the end
(the first groups in sampling order train, verl's ``batch[:train_batch_size * n]``). With the cap
reached and too few groups, verl stops with an error; ``train_when_capped`` trains on what was kept.
The metric is the grader's correct flags (verl's ``acc``), not the shaped reward.

Prompts are consumed like verl's data loader: iteration k starts in the seeded pool where iteration
k−1 stopped (its ``generate.json`` holds ``pool_offset`` and ``prompts_sampled``), and an iteration
never samples more prompts than the pool holds, so it never repeats its own prompts. Every round is
seeded by the iteration and the round, so a generate stage restarted after a crash yields the same batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import Tensor

from itero import distributed
from itero.algorithms.base import DynamicSampling
from itero.batch import RolloutBatch
from itero.core.advantages import in_varied_group
from itero.errors import IteroError
from itero.rewards.math import RewardFn
from itero.runtime import Runtime


class DynamicSamplingError(IteroError):
    """Too few groups of mixed correctness within the round cap (the prompts are too easy or too hard)."""


def kept_rows(correct: Tensor, group_ids: Tensor) -> Tensor:
    """(B,) bool: rows of groups whose correct flags are not all equal; (B,) bool, (B,) long → (B,) bool.

    verl also keeps a group of one sample (its std is 0); an algorithm with dynamic sampling samples at
    least two per prompt, so none occurs here and such a group is dropped."""
    return in_varied_group(correct.float(), group_ids)


def first_groups(group_ids: Tensor, n: int) -> Tensor:
    """(B,) bool: rows of the ``n`` smallest group ids, i.e. the first n groups in sampling order."""
    groups = torch.unique(group_ids)  # sorted
    return torch.isin(group_ids, groups[:n])


def pool_offset(previous: dict | None) -> int:
    """Where an iteration's prompts start in the seeded pool: where the previous iteration's sampling
    stopped (``previous``: its ``generate.json``; None for the first iteration)."""
    return 0 if previous is None else previous["pool_offset"] + previous["prompts_sampled"]


def correct_flags(reward: RewardFn, batch: RolloutBatch) -> Tensor:
    """(B,) bool, graded on rank 0 and sent to every rank (a grader time-out then cannot split the ranks).
    ``RewardFn.correct`` grades without calling a reward model, so its running norm stays put."""
    dist = distributed.current()
    flags = reward.correct(batch.response_texts, batch.answers) if dist.is_main else None
    return torch.tensor(dist.broadcast_object(flags), dtype=torch.bool)


def refill(
    rt: Runtime, k: int, spec: DynamicSampling, sample: Callable[..., RolloutBatch], offset: int = 0
) -> tuple[RolloutBatch, dict]:
    """Iteration k's batch of ``loop.prompts_per_iteration`` kept groups, and what ``generate.json`` logs;
    sampling starts at ``offset`` in the pool (``pool_offset``).

    ``sample(problems, round_=r, first_group=g)`` generates the samples of one round on every rank."""
    target = rt.cfg.loop.prompts_per_iteration
    per_round = spec.prompts_per_round or target
    pool = list(rt.task.train)
    random.Random(rt.cfg.loop.seed).shuffle(pool)  # the same pool and order as the plain generate stage
    offset = 0 if rt.cfg.loop.same_prompts_every_iteration else offset
    kept, n_kept, rounds = [], 0, 0
    while n_kept < target:
        if (spec.max_rounds and rounds >= spec.max_rounds) or (rounds + 1) * per_round > len(pool):
            if not (spec.train_when_capped and n_kept):
                raise DynamicSamplingError(
                    f"iteration {k}: {n_kept} of {target} groups had mixed correctness after {rounds} generation "
                    f"rounds of {per_round} prompts (cap {spec.max_rounds or 'none'}, pool {len(pool)}); the "
                    "prompts are too easy or too hard for the policy: raise the algorithm's round cap, let it "
                    "train on the groups kept, or turn dynamic sampling off"
                )
            break
        start = (offset + rounds * per_round) % len(pool)
        problems = (pool + pool)[start : start + per_round]
        batch = sample(problems, round_=rounds, first_group=rounds * per_round)
        keep = kept_rows(correct_flags(rt.reward, batch), batch.group_ids)
        kept.append(batch.select(keep.nonzero().flatten()))
        n_kept += int(torch.unique(batch.group_ids[keep]).numel())
        rounds += 1
    batch = RolloutBatch.concat(kept, rt.tokenizer.pad_token_id)
    batch = batch.select(first_groups(batch.group_ids, target).nonzero().flatten())
    stats = {
        "generation_rounds": rounds,
        "prompts_sampled": rounds * per_round,
        "pool_offset": offset,
        "kept_group_fraction": n_kept / (rounds * per_round),
        "groups": int(torch.unique(batch.group_ids).numel()),
    }
    return batch, stats
