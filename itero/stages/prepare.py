"""The prepare stage: the algorithm selects the rows that train, pulls the inputs it needs from a
context (``stages/context.py``) and assigns credit; diagnostics of the result go to ``prepare.json``
(written by the resume layer, ``tracking/resume.py``)."""

from __future__ import annotations

from pathlib import Path

import torch

from itero.algorithms.base import IterationState
from itero.batch import RolloutBatch
from itero.core.importance import tis_weights
from itero.core.masked import explained_variance
from itero.runtime import Runtime
from itero.stages.context import PrepareContext
from itero.tracking.resume import StageOutput


def logprob_temperature(rt: Runtime) -> float:
    """Temperature of every log-prob a policy-gradient ratio / KL uses: the sampling one (TRL, VinePPO),
    where the algorithm's schedule asks for it, else 1."""
    T = rt.cfg.generation.temperature
    return T if rt.algo.schedule(rt.cfg.algorithm).logprobs_at_sampling_temperature and T > 0 else 1.0


def prepare(rt: Runtime, k: int, start: Path | None, state: IterationState | None, batch: RolloutBatch) -> StageOutput:
    """Iteration k's scored ``batch`` made ready to train; ``state``: what the algorithm carries across
    iterations (None for most), returned updated so iteration k+1 starts from it."""
    algo = rt.algo
    cfg = rt.cfg.algorithm if state is None else state.config(rt.cfg.algorithm)
    selected, stats = algo.select(batch, cfg, torch.Generator().manual_seed(rt.cfg.loop.seed * 7919 + k))
    prepared = selected
    if selected.batch_size:
        ctx = PrepareContext(rt, selected, k, start, algo.models_needed(cfg), logprob_temperature(rt))
        prepared = algo.prepare(selected, cfg, ctx)
        stats.update(ctx.stats)
        if state is not None:
            stats.update(state.update(prepared))
    prepared, tis = importance_weighted(rt, prepared)
    stats.update(tis)
    stats.update(batch_diagnostics(prepared))
    rows = [
        {"group": int(g), "response": r, "reward": float(s)}
        for g, r, s in zip(prepared.group_ids, prepared.response_texts, prepared.scores)
    ]
    return StageOutput(
        stats,
        result=prepared,
        rows={"selected": rows},
        state={} if state is None else {state.name: state.state_dict()},
    )


def importance_weighted(rt: Runtime, prepared: RolloutBatch) -> tuple[RolloutBatch, dict]:
    """Truncated importance sampling: the engine sampled from π_sampler, the learner's π_old differs a
    little, so the token weights are multiplied by min(π_old / π_sampler, cap)."""
    cap = rt.algo.schedule(rt.cfg.algorithm).tis_cap
    if cap is None or prepared.token_weights is None or prepared.old_logprobs is None:
        return prepared, {}
    w = tis_weights(prepared.old_logprobs, prepared.sampler_logprobs, prepared.response_mask, cap)
    return prepared.replace(token_weights=prepared.token_weights * w), {
        "tis_weight_mean": float(w[prepared.response_mask].mean())
    }


def batch_diagnostics(prepared: RolloutBatch) -> dict:
    """Advantage mean / std over valid tokens (as verl logs them) and the critic's explained variance."""
    mask, stats = prepared.response_mask, {}
    if prepared.advantages is not None and int(mask.sum()) > 1:
        adv = prepared.advantages[mask]
        stats.update(advantage_mean=float(adv.mean()), advantage_std=float(adv.std()))
    if prepared.values is not None and prepared.returns is not None and int(mask.sum()) > 1:
        stats.update(explained_variance=explained_variance(prepared.values, prepared.returns, mask))
    return stats
