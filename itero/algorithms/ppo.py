"""PPO for LLMs with a value model: token rewards, GAE, whitening, PPO-clip actor, clipped value loss.

Per iteration (the loop fills ``old_logprobs``, ``ref_logprobs`` and the critic's ``values`` first):
r_t = 1[t = last]·clamp(R, ±reward_clip) − β·k_t (KL in the reward, ``kl_mode: reward``, k1 as
OpenRLHF) → GAE(γ, λ) with V after the last token 0 → advantages whitened over every valid token of
the batch → the clipped actor loss of ``policy_gradient.token_loss`` (plus β·k3 when ``kl_mode: loss``,
VinePPO's klLoss) and the clipped value loss ½·max((V−G)², (clip(V, V_old ± ε_v) − G)²) for the critic.
The critic is a separate model with its own optimizer (``value_lr``), trained on the same batch after
the actor, as OpenRLHF and verl do. Defaults: OpenRLHF/RTO (γ 1, λ 0.95, ε 0.2, ε_v 0.2, k1 KL in the
reward, β 0.01, critic from the policy or a reward model); VinePPO's PPO is ``lam: 1, kl_mode: loss,
beta: 1e-4, kl_clamp: 10, ratio_threshold: 10``.
``advantage_estimator: return`` with ``value_model: none`` is REINFORCE on the return G_t (no critic).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from itero.algorithms import policy_gradient
from itero.algorithms.base import Context, Schedule
from itero.algorithms.policy_gradient import (
    LossAgg,
    PolicyGradientConfig,
    apply_negative_weight,
    learner_loss_of,
    pull_logprobs,
    select_all,
    token_loss,
)
from itero.batch import RolloutBatch
from itero.core.advantages import gae, outcome_to_token_rewards
from itero.core.kl import kl_reward
from itero.core.losses import clipped_value_loss
from itero.core.masked import aggregation_weights, masked_whiten, mean_metric

KlEstimator = Literal["k1", "k2", "k3"]


class Config(PolicyGradientConfig):
    name: Literal["ppo"] = "ppo"
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    lam: float = Field(0.95, ge=0.0, le=1.0)
    advantage_estimator: Literal["gae", "return"] = "gae"  # return: A_t = G_t, no baseline
    value_model: Literal["policy", "reward_model", "none"] = "policy"  # what the critic starts from
    value_model_path: str | None = None  # value_model=reward_model: an itero train-rm folder
    value_lr: float = Field(1e-4, gt=0.0)  # the critic's AdamW lr (RTO: 9e-6 for an 8B critic)
    value_epsilon: float = Field(0.2, gt=0.0)  # ε_v of the clipped value loss
    # the first N iterations train the critic only, so the actor's first advantages come from a critic
    # that has seen the task (verl's trainer.critic_warmup, OpenRLHF's --freezing_actor_steps)
    critic_warmup: int = Field(0, ge=0)
    beta: float = Field(0.01, ge=0.0)  # KL coefficient, in the reward or as a loss (kl_mode)
    kl_mode: Literal["reward", "loss"] = "reward"
    kl_estimator: KlEstimator = "k1"  # of the KL in the reward; the KL loss is always k3
    reward_clip: float | None = Field(10.0, gt=0.0)  # clamp the outcome score (OpenRLHF)
    whiten_advantages: bool = True
    loss_agg: LossAgg = "token-mean"

    needs_value_model: ClassVar[bool] = True
    min_samples_per_prompt: ClassVar[int] = 1  # the critic is the baseline: no group needed (RTO samples 1)

    @property
    def needs_critic(self) -> bool:
        return self.value_model != "none"

    @property
    def kl_loss_coef(self) -> float:
        return self.beta if self.kl_mode == "loss" else 0.0

    @property
    def measured_kl_estimator(self) -> str:
        return self.kl_estimator if self.kl_mode == "reward" else "k3"

    @model_validator(mode="after")
    def _consistent(self):
        if self.advantage_estimator == "gae" and self.value_model == "none":
            raise ValueError(
                "algorithm.advantage_estimator=gae needs a value model but algorithm.value_model=none; "
                "set value_model to policy or reward_model, or advantage_estimator=return"
            )
        if self.critic_warmup and not self.needs_critic:
            raise ValueError(
                f"algorithm.critic_warmup={self.critic_warmup} trains a critic first, but algorithm.value_model=none has none"
            )
        if self.value_model == "reward_model" and not self.value_model_path:
            raise ValueError(
                "algorithm.value_model=reward_model needs algorithm.value_model_path (an itero train-rm folder)"
            )
        return self


rows_per_unit = 1
select = select_all


def models_needed(cfg: Config) -> dict[str, str]:
    """The policy-gradient models, and the critic's start: the initial policy or a reward model folder."""
    critic = {"critic": "initial" if cfg.value_model == "policy" else cfg.value_model_path} if cfg.needs_critic else {}
    return {**policy_gradient.models_needed(cfg), **critic}


def schedule(cfg: Config) -> Schedule:
    return Schedule(
        logprobs_at_sampling_temperature=cfg.logprobs_at_sampling_temperature,
        actor_frozen_iterations=cfg.critic_warmup,
        critic_lr=cfg.value_lr if cfg.needs_critic else None,
        state=policy_gradient.kl_state(cfg),
        tis_cap=cfg.tis_cap,
    )


def pull_inputs(batch: RolloutBatch, cfg: Config, ctx: Context) -> RolloutBatch:
    """π_ref, π_old and the critic's V_old from the loop's context."""
    batch = pull_logprobs(batch, cfg, ctx)
    return batch.replace(values=ctx.values()) if cfg.needs_critic else batch


def token_rewards(batch: RolloutBatch, cfg: Config) -> Tensor:
    """r_t (B, R): the clamped outcome at the last response token, minus β·k_t(π_old, π_ref) per token."""
    mask = batch.response_mask
    scores = batch.scores if cfg.reward_clip is None else batch.scores.clamp(-cfg.reward_clip, cfg.reward_clip)
    rewards = outcome_to_token_rewards(scores, mask)
    if cfg.beta > 0 and cfg.kl_mode == "reward":
        rewards = rewards + kl_reward(
            batch.old_logprobs, batch.ref_logprobs, mask, cfg.beta, cfg.kl_estimator, cfg.kl_clamp
        )
    return rewards


def prepare(
    batch: RolloutBatch, cfg: Config, ctx: Context | None = None, rewards: Tensor | None = None
) -> RolloutBatch:
    """GAE over ``rewards`` (default :func:`token_rewards`; RTO passes its own) and the critic's values."""
    if ctx is not None:
        return apply_negative_weight(prepare(pull_inputs(batch, cfg, ctx), cfg, rewards=rewards), cfg)
    mask = batch.response_mask
    rewards = token_rewards(batch, cfg) if rewards is None else rewards
    values = batch.values if cfg.needs_critic else rewards.new_zeros(rewards.shape)
    if cfg.advantage_estimator == "gae":
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
    else:  # the discounted return-to-go, no baseline (a critic, if any, still learns to predict it)
        advantages, returns = gae(rewards, torch.zeros_like(rewards), mask, cfg.gamma, 1.0)
    if cfg.whiten_advantages:
        advantages = masked_whiten(advantages, mask)
    return batch.replace(
        rewards=rewards,
        values=values,
        advantages=advantages,
        returns=returns,
        token_weights=aggregation_weights(mask, cfg.loss_agg),
    )


# the shared clipped policy-gradient loss; its logits and temperature serve the entropy bonus only
loss = token_loss


learner_loss = learner_loss_of(loss)


def value_loss(batch: RolloutBatch, values: Tensor, cfg: Config) -> tuple[Tensor, dict[str, float]]:
    """Clipped value loss of the critic's ``values`` (B, R) against ``returns``, around V_old = ``batch.values``."""
    mask = batch.response_mask
    per_token = clipped_value_loss(values, batch.values, batch.returns, cfg.value_epsilon)
    # clipped = the clipped branch is the larger one, so its zero gradient is the one taken (verl's vf_clipfrac)
    v_clipped = batch.values + (values - batch.values).clamp(-cfg.value_epsilon, cfg.value_epsilon)
    clipped = (v_clipped - batch.returns) ** 2 > (values - batch.returns) ** 2
    return (batch.token_weights * per_token).sum(), {
        "value_clip_fraction": mean_metric(clipped.float(), mask),
        "value_mean": mean_metric(values, mask),
    }
