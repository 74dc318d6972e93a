"""VinePPO: PPO without a critic; step values are Monte-Carlo estimates from K continuations.

Per response: split the text into reasoning steps (``core/steps.py``; steps concatenate back to the
exact text), map every token to the step its first character lies in, and take the states
s_i = prompt + the response tokens before step i's first token (i = 0 … S−1; s_0 is the prompt,
shared by a prompt's n samples). Identical states across the batch are rolled out once: K
continuations with the policy's own sampling settings, within the response's token budget,
V̂(s_i) = mean reward of the full responses (prefix + continuation). Then with V̂(s_S) = 0 and the
outcome R as the last step's reward, A_i = r_i + V̂(s_{i+1}) − V̂(s_i), every token of step i gets
A_i, advantages are whitened over the batch and trained with the PPO actor loss + β·k3 KL loss.
Defaults: VinePPO's configs (K 9, β 1e-4 with the k3 estimate clamped to 10, ratio threshold 10);
``max_steps`` = N estimates the prompt state and the states after the first N steps, N + 1 in all,
as VinePPO's ``max_step_for_value_estimation`` (later states are back-filled, so their steps get A = 0).
Departure: a step that shares its first token with the previous step (no token starts in it) has no
state of its own; it is merged into that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from itero.algorithms.base import Context
from itero.algorithms.policy_gradient import (
    LossAgg,
    PolicyGradientConfig,
    apply_negative_weight,
    learner_loss_of,
    pull_logprobs,
    schedule,
    select_all,
    token_loss,
)
from itero.algorithms.policy_gradient import models_needed as pg_models_needed
from itero.batch import RolloutBatch
from itero.core.advantages import broadcast_step_advantages, step_advantages_from_mc_values
from itero.core.masked import aggregation_weights, masked_whiten
from itero.core.steps import dedup_states, split_steps, token_char_offsets, token_step_index


class Config(PolicyGradientConfig):
    name: Literal["vineppo"] = "vineppo"
    num_rollouts: int = Field(9, ge=1)  # K continuations per state
    # VinePPO's max_step_for_value_estimation: s_0 plus the states after steps 1 … N (None = all)
    max_steps: int | None = Field(None, ge=0)
    min_step_chars: int = Field(8, ge=1)  # shorter fragments merge into the previous step
    step_cut_after: str = ""  # extra step-ending characters, e.g. " " for the arithmetic task
    beta: float = Field(1e-4, ge=0.0)  # k3 KL loss coefficient
    kl_clamp: float | None = Field(10.0, gt=0.0)
    ratio_threshold: float | None = Field(10.0, gt=1.0)
    whiten_advantages: bool = True
    loss_agg: LossAgg = "token-mean"

    needs_mc_values: ClassVar[bool] = True
    min_samples_per_prompt: ClassVar[int] = 1  # the MC values are the baseline: no group needed


rows_per_unit = 1
select = select_all


def models_needed(cfg: Config) -> dict[str, str]:
    """The policy-gradient models; the Monte-Carlo continuations sample the policy as the iteration started."""
    return {**pg_models_needed(cfg), "rollout": "previous"}


# rollout(states) -> (N, K) rewards; a state is (row, prefix_len): the row's prompt + its first prefix_len response tokens
Rollout = Callable[[list[tuple[int, int]]], Tensor]


@dataclass
class StepPlan:
    token_steps: Tensor  # (B, R) long, step index of each response token
    state_lens: list[list[int]]  # per row, the prefix length (response tokens) of each estimated state


def plan_steps(batch: RolloutBatch, cfg: Config, tokenizer) -> StepPlan:
    """Steps of every response and the token prefix each state starts from."""
    token_steps = torch.zeros(batch.response_ids.shape, dtype=torch.long)
    state_lens: list[list[int]] = []
    for row in range(batch.batch_size):
        ids = batch.response_ids[row][batch.response_mask[row]].tolist()
        offsets = token_char_offsets(tokenizer, ids)
        text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        steps = split_steps(text, cfg.min_step_chars, cfg.step_cut_after) or [text]
        index = token_step_index(steps, offsets) if ids else []
        # renumber so that only steps where some token starts count; a state = the tokens before a step
        starts = [t for t in range(len(index)) if t == 0 or index[t] != index[t - 1]]
        dense = torch.zeros(len(index), dtype=torch.long)
        for s, t in enumerate(starts):
            dense[t:] = s
        positions = batch.response_mask[row].nonzero().flatten()
        token_steps[row, positions] = dense
        state_lens.append(starts if cfg.max_steps is None else starts[: cfg.max_steps + 1])
    return StepPlan(token_steps, state_lens)


def estimate_advantages(batch: RolloutBatch, cfg: Config, tokenizer, rollout: Rollout) -> tuple[RolloutBatch, dict]:
    """MC values of the de-duplicated states → step advantages → token ``advantages`` (unwhitened)."""
    plan = plan_steps(batch, cfg, tokenizer)
    keys = [
        (tuple(batch.prompt_ids[row][batch.prompt_mask[row]].tolist()), tuple(batch.response_ids[row, :n].tolist()))
        for row, lens in enumerate(plan.state_lens)
        for n in lens
    ]
    where = [(row, n) for row, lens in enumerate(plan.state_lens) for n in lens]
    unique, index_map = dedup_states(keys)
    first = {}
    for i, u in enumerate(index_map):
        first.setdefault(u, where[i])
    rewards = rollout([first[u] for u in range(len(unique))]) if unique else torch.zeros(0, cfg.num_rollouts)
    v_unique = rewards.float().mean(-1)  # (N,)
    n_steps = (plan.token_steps.max(-1).values + 1).tolist()  # an empty response has the one step 0
    values = torch.full((batch.batch_size, max(n_steps)), float("nan"))  # NaN = not estimated (capped): back-filled
    step_mask = torch.zeros(values.shape, dtype=torch.bool)
    step_rewards = torch.zeros(values.shape)
    i = 0
    for row in range(batch.batch_size):
        step_mask[row, : n_steps[row]] = True
        step_rewards[row, n_steps[row] - 1] = batch.scores[row]
        for s in range(len(plan.state_lens[row])):
            values[row, s] = v_unique[index_map[i]]
            i += 1
    step_adv = step_advantages_from_mc_values(step_rewards, values, step_mask)
    advantages = broadcast_step_advantages(step_adv, plan.token_steps, batch.response_mask)
    stats = {
        "mc_states": len(index_map),
        "mc_unique_states": len(unique),
        "mc_steps_per_response": float(step_mask.sum(-1).float().mean()),
        # variance of each V̂ estimate (sample variance of the K rewards / K), averaged over states
        "mc_value_variance": float((rewards.float().var(-1) / cfg.num_rollouts).mean())
        if cfg.num_rollouts > 1 and len(unique)
        else 0.0,
    }
    return batch.replace(advantages=advantages), stats


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    """Whitening and aggregation weights over the MC advantages (estimated here with a context; a
    batch without one carries them)."""
    if ctx is not None:
        batch = pull_logprobs(batch, cfg, ctx)
        batch, stats = estimate_advantages(
            batch, cfg, ctx.tokenizer, lambda states: ctx.rollout(states, cfg.num_rollouts)
        )
        ctx.stats.update(stats)
        return apply_negative_weight(prepare(batch, cfg), cfg)
    mask = batch.response_mask
    advantages = masked_whiten(batch.advantages, mask) if cfg.whiten_advantages else batch.advantages
    return batch.replace(
        advantages=advantages,
        token_weights=aggregation_weights(mask, cfg.loss_agg),
    )


# the shared clipped policy-gradient loss; its logits and temperature serve the entropy bonus only
loss = token_loss


learner_loss = learner_loss_of(loss)
__all__ = ["Config", "learner_loss", "loss", "models_needed", "prepare", "rows_per_unit", "schedule", "select"]
