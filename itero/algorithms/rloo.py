"""RLOO (REINFORCE Leave-One-Out) as TRL: the whole response is one action with a leave-one-out baseline.

R_i ← R_i − β·Σ_t (log π_old(y_t) − log π_ref(y_t)) (sequence KL in the reward, when β > 0), then
A_i = R_i − mean_{j≠i} R_j over the k responses of the prompt. The ratio is per sequence,
ρ_i = exp(Σ_t log π_θ − Σ_t log π_old), and the loss is the mean over responses of
max(−A_i ρ_i, −A_i clip(ρ_i, 1−ε_low, 1+ε_high)): at ρ = 1 this is REINFORCE on the summed log-prob.
Defaults are TRL's rloo_config (β 0.05, ε 0.2, normalize_advantages false; TRL's k = 2 is
``generation.n_samples_per_prompt``). Departure: a group of one gets advantage 0 instead of an error.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from itero.algorithms.policy_gradient import (
    PolicyGradientConfig,
    kl_metrics,
    learner_loss_of,
    models_needed,
    ratio_metrics,
    schedule,
    select_all,
    with_context,
)
from itero.batch import RolloutBatch
from itero.core.advantages import leave_one_out_advantages, outcome_to_token_rewards
from itero.core.kl import kl_reward
from itero.core.losses import clipped_pg_loss


class Config(PolicyGradientConfig):
    name: Literal["rloo"] = "rloo"
    beta: float = Field(0.05, ge=0.0)  # sequence KL(π_old‖π_ref) subtracted from the reward (k1 summed)
    normalize_advantages: bool = False  # whiten A over the batch (TRL option, ε 1e-4)

    @property
    def measured_kl_estimator(self) -> str:
        """The adaptive controller reads the KL the reward subtracts: k1 (its token mean, as verl's)."""
        return "k1"

    @model_validator(mode="after")
    def _no_token_entropy(self):
        if self.entropy_coef > 0:
            raise ValueError("rloo's loss is per sequence: entropy_coef is not supported; use grpo or reinforce_pp")
        return self


rows_per_unit = 1
select = select_all


@with_context
def prepare(batch: RolloutBatch, cfg: Config) -> RolloutBatch:
    mask = batch.response_mask
    rewards = outcome_to_token_rewards(batch.scores, mask)  # (B, R): the score at the last token
    if cfg.beta > 0:
        rewards = rewards + kl_reward(batch.old_logprobs, batch.ref_logprobs, mask, cfg.beta, "k1")
    adv = leave_one_out_advantages(rewards.sum(-1), batch.group_ids)  # (B,): the KL-shaped sequence reward
    if cfg.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-4) if adv.numel() > 1 else torch.zeros_like(adv)
    B = batch.batch_size
    return batch.replace(
        rewards=rewards,
        advantages=adv[:, None] * mask,  # (B, R), constant along the response
        seq_weights=torch.full((B,), 1.0 / max(B, 1)),  # mean over responses
    )


def loss(batch: RolloutBatch, logprobs: Tensor, cfg: Config) -> tuple[Tensor, dict[str, float]]:
    mask = batch.response_mask.to(logprobs.dtype)
    seq_logp = (logprobs * mask).sum(-1, keepdim=True)  # (B, 1)
    seq_old = (batch.old_logprobs * mask).sum(-1, keepdim=True)
    seq_adv = (batch.advantages * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    per_seq, stats = clipped_pg_loss(seq_logp, seq_old, seq_adv, cfg.epsilon, cfg.clip_high, cfg.dual_clip)
    metrics = ratio_metrics(stats["ratio"], stats["clipped"], mask.sum(-1, keepdim=True) > 0)
    metrics.update(kl_metrics(batch, logprobs))
    return (batch.seq_weights * per_seq.squeeze(-1)).sum(), metrics


learner_loss = learner_loss_of(loss)
__all__ = ["Config", "learner_loss", "loss", "models_needed", "prepare", "rows_per_unit", "schedule", "select"]
