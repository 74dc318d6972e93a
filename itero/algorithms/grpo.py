"""GRPO and its variants DAPO (token-mean, clip-higher) and Dr.GRPO: group-normalized outcome advantages, PPO-clip.

A_i = (R_i − mean_group R) / (std + eps_std) on every token of response i; the loss is
``policy_gradient.token_loss`` (clipped ratio + β·k3 to the reference) aggregated by ``loss_agg``:
``token-mean`` (TRL's default "dapo"), ``seq-mean-token-mean`` (original GRPO) or
``dr-grpo`` (Σ / (B · L), TRL's dr_grpo, with ``scale_rewards: none``; ``seq-mean-token-sum-norm`` is
the same mode under an older name, which is not verl's mode of that name: verl's is B times larger). μ (TRL num_iterations) is
``training.epochs``. Defaults are TRL's grpo_config (ε 0.2, β 0, scale "group", ε_std 1e-4).
Departures: token-mean divides by the tokens of the whole iteration's batch, then the learner
rescales each optimizer step by the fraction of rows it holds (TRL: the tokens of one step);
Dr.GRPO's constant is ``max_response_length`` (None = the batch's response width).
``importance_level: sequence`` is GSPO's length-normalised sequence ratio (``gspo.py`` is the preset).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from itero.algorithms.policy_gradient import (
    LossAgg,
    PolicyGradientConfig,
    learner_loss_of,
    models_needed,
    schedule,
    token_loss,
    with_context,
)
from itero.batch import RolloutBatch
from itero.core.advantages import group_normalized_advantages, in_varied_group, zero_variance_group_fraction
from itero.core.losses import clipped_pg_loss_from_log_ratio, sequence_log_ratio
from itero.core.masked import aggregation_weights


class Config(PolicyGradientConfig):
    name: Literal["grpo"] = "grpo"
    loss_agg: LossAgg = "token-mean"
    max_response_length: int | None = Field(None, gt=0)  # Dr.GRPO's normaliser; set it to max_new_tokens
    scale_rewards: Literal["group", "batch", "none"] = "group"  # what the centred reward is divided by
    eps_std: float = Field(1e-4, gt=0.0)
    drop_zero_variance_groups: bool = False  # DAPO's dynamic-sampling filter (without resampling)
    # token: ρ_t per token (GRPO); sequence: GSPO's s_i = exp(mean_t log-ratio) on every token of response i
    # (TRL importance_sampling_level "sequence"); sequence-token: GSPO-token, the same value with
    # each token's own gradient, for per-token advantages
    importance_level: Literal["token", "sequence", "sequence-token"] = "token"

    def policy_terms(self, batch: RolloutBatch, logprobs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.importance_level == "token":
            return super().policy_terms(batch, logprobs)
        log_ratio = sequence_log_ratio(
            logprobs, batch.old_logprobs, batch.response_mask, self.importance_level == "sequence-token"
        )
        return clipped_pg_loss_from_log_ratio(log_ratio, batch.advantages, self.epsilon, self.clip_high, self.dual_clip)


rows_per_unit = 1


def select(batch: RolloutBatch, cfg: Config, rng: torch.Generator | None = None) -> tuple[RolloutBatch, dict]:
    """Every row, or (``drop_zero_variance_groups``) only groups whose scores differ: the others have A = 0."""
    stats = {"frac_zero_variance_groups": zero_variance_group_fraction(batch.scores, batch.group_ids)}
    if cfg.drop_zero_variance_groups:
        batch = batch.select(in_varied_group(batch.scores, batch.group_ids).nonzero().flatten())
    stats["rows"] = batch.batch_size
    return batch, stats


@with_context
def prepare(batch: RolloutBatch, cfg: Config) -> RolloutBatch:
    adv = group_normalized_advantages(batch.scores, batch.group_ids, cfg.scale_rewards, cfg.eps_std)
    mask = batch.response_mask
    return batch.replace(
        advantages=adv[:, None] * mask,  # (B, R): one advantage on every token of a response
        token_weights=aggregation_weights(mask, cfg.loss_agg, cfg.max_response_length),
    )


# the shared clipped policy-gradient loss; its logits and temperature serve the entropy bonus only
loss = token_loss


learner_loss = learner_loss_of(loss)
__all__ = ["Config", "learner_loss", "loss", "models_needed", "prepare", "rows_per_unit", "schedule", "select"]
