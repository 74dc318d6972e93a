"""The generate and score stages: iteration k's prompts sampled by the policy, then graded.

Each writes its metrics (``<stage>.json``) and then its output, whose appearing marks it done.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import time
from pathlib import Path

import torch

from itero import distributed
from itero.batch import RolloutBatch
from itero.core.advantages import zero_variance_group_fraction
from itero.runtime import Runtime
from itero.samplers import sources
from itero.stages import dynamic_sampling
from itero.tracking import progress
from itero.tracking.rundir import atomic_torch_save, atomic_write_json, atomic_write_jsonl, load_stage


def prompts_for(rt: Runtime, k: int) -> list:
    """Iteration k's prompts: consecutive slices of one seeded shuffle of the training problems."""
    pool = list(rt.task.train)
    random.Random(rt.cfg.loop.seed).shuffle(pool)
    n = rt.cfg.loop.prompts_per_iteration
    offset = 0 if rt.cfg.loop.same_prompts_every_iteration else ((k - 1) * n) % max(len(pool), 1)
    return (pool + pool)[offset : offset + n]


def generate(rt: Runtime, d: Path, k: int, start: Path | None) -> None:
    rt.models.ensure_policy(start)
    spec = rt.algo.schedule(rt.cfg.algorithm).dynamic_sampling
    t0, n = time.perf_counter(), rt.cfg.loop.prompts_per_iteration
    with progress.stage(f"[iter {k}] generate", n, rt.cfg.logging.progress) as advance:
        if spec is None:
            batch, stats = sample(rt, k, prompts_for(rt, k), advance), {}
        else:  # DAPO: rounds of further prompts until n groups of mixed correctness are kept
            batch, stats = dynamic_sampling.refill(rt, k, spec, functools.partial(sample, rt, k, advance=advance))
    seconds = time.perf_counter() - t0
    tokens = int(batch.response_lengths.sum())
    atomic_write_json(
        d / "generate.json",
        {
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_second": tokens / seconds,
            "response_length": float(batch.response_lengths.float().mean()),
            "truncation_rate": float(batch.truncated.float().mean()),
            **stats,
        },
    )
    atomic_torch_save(d / "rollouts.pt", batch)


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


def score(rt: Runtime, d: Path, k: int, start: Path | None = None) -> None:
    batch = load_stage(d / "rollouts.pt")
    # a reward model's running normaliser continues from the state iteration k-1 left, whatever ran since
    previous = rt.run / f"iter_{k - 1}" / "reward_norm.json"
    rt.reward.load_state_dict(json.loads(previous.read_text()) if previous.exists() else None)
    rewards, correct = rt.reward.grade(batch.response_texts, batch.answers, prompts=batch.prompt_texts)
    if state := rt.reward.state_dict():
        atomic_write_json(d / "reward_norm.json", state)
    scores = torch.tensor(rewards, dtype=torch.float32)
    batch = batch.replace(scores=scores)  # per-token rewards are the algorithm's (prepare: KL shaping, penalties)
    atomic_write_jsonl(
        d / "rollouts.jsonl",
        [
            {"prompt": p, "response": r, "answer": a, "reward": s, "correct": c, "truncated": bool(t)}
            for p, r, a, s, c, t in zip(
                batch.prompt_texts, batch.response_texts, batch.answers, rewards, correct, batch.truncated
            )
        ],
    )
    atomic_write_json(
        d / "score.json",
        {
            "reward_mean": float(scores.mean()),
            "sample_accuracy": sum(correct) / len(correct),
            "frac_zero_variance_groups": zero_variance_group_fraction(scores, batch.group_ids),
            **rt.reward.last_metrics,  # reward.functions: each function's mean, <name>_mean
        },
    )
    atomic_torch_save(d / "scored.pt", batch)
