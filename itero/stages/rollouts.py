"""The generate and score stages: iteration k's prompts sampled by the policy, then graded. Each returns
a ``StageOutput``; the resume layer (``tracking/resume.py``) writes it."""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from pathlib import Path

import torch

from itero import distributed
from itero.batch import RolloutBatch
from itero.core.advantages import zero_variance_group_fraction
from itero.rewards.math import RewardFn
from itero.runtime import Runtime
from itero.samplers import sources
from itero.stages import dynamic_sampling
from itero.tracking import progress
from itero.tracking.resume import StageOutput


def prompts_for(rt: Runtime, k: int) -> list:
    """Iteration k's prompts: consecutive slices of one seeded shuffle of the training problems."""
    pool = list(rt.task.train)
    random.Random(rt.cfg.loop.seed).shuffle(pool)
    n = rt.cfg.loop.prompts_per_iteration
    offset = 0 if rt.cfg.loop.same_prompts_every_iteration else ((k - 1) * n) % max(len(pool), 1)
    return (pool + pool)[offset : offset + n]


def generate(rt: Runtime, k: int, start: Path | None, previous: dict | None) -> StageOutput:
    """Iteration k's samples by the policy ``start`` holds; ``previous``: the last iteration's metrics
    (where its prompts stopped in the pool)."""
    rt.models.ensure_policy(start)
    spec = rt.algo.schedule(rt.cfg.algorithm).dynamic_sampling
    t0, n = time.perf_counter(), rt.cfg.loop.prompts_per_iteration
    with progress.stage(f"[iter {k}] generate", n, rt.cfg.logging.progress) as advance:
        if spec is None:
            batch, stats = sample(rt, k, prompts_for(rt, k), advance), {}
        else:  # DAPO: rounds of further prompts until n groups of mixed correctness are kept
            sampler = functools.partial(sample, rt, k, advance=advance)
            batch, stats = dynamic_sampling.refill(rt, k, spec, sampler, dynamic_sampling.pool_offset(previous))
    seconds = time.perf_counter() - t0
    tokens = int(batch.response_lengths.sum())
    metrics = {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "response_length": float(batch.response_lengths.float().mean()),
        "truncation_rate": float(batch.truncated.float().mean()),
        **stats,
    }
    return StageOutput(metrics, result=batch)


def sample(rt: Runtime, k: int, problems: list, advance, round_: int = 0, first_group: int = 0) -> RolloutBatch:
    """Samples of ``problems`` on every rank; group ids count from ``first_group``. Round 0 is iteration
    k's plain generation; a refill round r has its own seeds (iteration k, round r, prompt offset)."""
    params = rt.sampling_params(seed=rt.cfg.loop.seed * 100_003 + k + round_ * 1_000_003)
    g = rt.cfg.generation
    plan = sources.plan(
        g.sampler if k >= g.sampler_from_iteration else "online", g.n_samples_per_prompt, g.mixp_on_policy_samples
    )
    parts, chunk, dist = [], g.prompts_per_call, distributed.current()
    for s in range(0, len(problems), chunk):
        if not dist.mine(s // chunk):  # data parallel: chunk i on rank i mod W, seeded by its offset
            continue
        ps = problems[s : s + chunk]
        texts = [rt.task.render(p) for p in ps]
        b = sources.generate(
            rt.generator,
            rt.models.initial_policy,
            [rt.encode(t) for t in texts],
            dataclasses.replace(params, seed=params.seed + s),
            plan,
            prompt_texts=texts,
            answers=[p.answer for p in ps],
        )
        parts.append((s, b.to("cpu").replace(group_ids=b.group_ids.cpu() + first_group + s)))
        advance(len(ps) * dist.world_size)
    parts = sorted((p for rank_parts in dist.gather_objects(parts) for p in rank_parts), key=lambda p: p[0])
    return RolloutBatch.concat([b for _, b in parts], rt.tokenizer.pad_token_id)


def score(reward: RewardFn, norm_state: dict | None, batch: RolloutBatch) -> StageOutput:
    """Scores of the samples in ``batch``. A reward model's running normaliser continues from
    ``norm_state`` (the state the last iteration left, whatever ran since) and its new state is saved."""
    reward.load_state_dict(norm_state)
    rewards, correct = reward.grade(batch.response_texts, batch.answers, prompts=batch.prompt_texts)
    scores = torch.tensor(rewards, dtype=torch.float32)
    rows = [
        {"prompt": p, "response": r, "answer": a, "reward": s, "correct": c, "truncated": bool(t)}
        for p, r, a, s, c, t in zip(
            batch.prompt_texts, batch.response_texts, batch.answers, rewards, correct, batch.truncated
        )
    ]
    metrics = {
        "reward_mean": float(scores.mean()),
        "sample_accuracy": sum(correct) / len(correct),
        "frac_zero_variance_groups": zero_variance_group_fraction(scores, batch.group_ids),
        **reward.last_metrics,  # reward.functions: each function's mean, <name>_mean
    }
    state = reward.state_dict()
    return StageOutput(
        metrics,
        result=batch.replace(scores=scores),  # per-token rewards are the algorithm's (prepare: KL shaping, penalties)
        rows={"rollouts": rows},
        state={"reward_norm": state} if state else {},
    )
