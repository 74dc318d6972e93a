"""CISPO (MiniMax-M1, 2025): REINFORCE with a clipped, stop-gradient importance weight on every token.

ℓ_t = −sg[clip(ρ_t, 1 − ε_low, 1 + ε_high)]·A_i·log π_θ(y_t), ρ_t = π_θ(y_t)/π_old(y_t), token-mean over
the batch (MiniMax's 1/Σ|o_i|); A_i is GRPO's group-normalised advantage. Unlike PPO's clip, which
zeroes the gradient of a token whose ratio left the range, every token keeps −w_t·A_i·∇log π_θ(y_t);
only its weight is bounded, so rare tokens that move fast ("However", "Wait") still train.
Defaults: no lower bound (``epsilon: null``; MiniMax "did not impose a lower bound" and tuned only
ε_high, whose value the paper does not give); ε_high 4, i.e. weights capped at 5, which is TRL's
``loss_type="cispo"`` with ``epsilon_high=5`` (TRL clamps the ratio at epsilon_high itself); β 0.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from torch import Tensor

from itero.algorithms import grpo
from itero.algorithms.policy_gradient import LossAgg
from itero.batch import RolloutBatch
from itero.core.losses import cispo_loss


class Config(grpo.Config):
    name: Literal["cispo"] = "cispo"
    epsilon: float | None = Field(None, gt=0.0, le=1.0)  # ε_low of the weight; None = no lower bound
    epsilon_high: float = Field(4.0, gt=0.0)  # the weight is capped at 1 + ε_high
    loss_agg: LossAgg = "token-mean"
    importance_level: Literal["token"] = "token"

    @model_validator(mode="after")
    def _no_dual_clip(self):
        if self.dual_clip is not None:
            raise ValueError(
                "cispo clips the weight itself, there is no PPO branch to dual-clip: leave dual_clip unset"
            )
        return self

    def policy_terms(self, batch: RolloutBatch, logprobs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return cispo_loss(logprobs, batch.old_logprobs, batch.advantages, self.epsilon, self.epsilon_high)


rows_per_unit = grpo.rows_per_unit
select = grpo.select
prepare = grpo.prepare
loss = grpo.loss
learner_loss = grpo.learner_loss
models_needed = grpo.models_needed
schedule = grpo.schedule
