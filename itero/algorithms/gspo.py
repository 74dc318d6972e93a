"""GSPO (Group Sequence Policy Optimization, Qwen 2025): GRPO with one importance ratio per response.

s_i = exp((1/|y_i|)·Σ_t (log π_θ(y_t) − log π_old(y_t))), the length-normalised sequence likelihood
ratio, is clipped to [1 − ε_low, 1 + ε_high] in PPO's max(−A_i·s_i, −A_i·clip(s_i)) and averaged over
the responses (per-sequence token mean); A_i is GRPO's group-normalised advantage. GSPO-token
(``importance_level: sequence-token``) has the value s_i on every token and gradient
s_i·∇log π_θ(y_t) per token, for per-token advantages. Everything else is ``grpo``.
Defaults: the paper's clip range ε_low 3e-4, ε_high 4e-4; aggregation seq-mean-token-mean, as TRL's
GSPO setting (``importance_sampling_level="sequence"``, ``loss_type="grpo"``); β 0 (the paper gives none).
The ratio only departs from 1 off-policy: with ``training.epochs`` 1 and one optimizer step per
iteration, GSPO equals GRPO.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from itero.algorithms import grpo
from itero.algorithms.policy_gradient import LossAgg


class Config(grpo.Config):
    name: Literal["gspo"] = "gspo"
    importance_level: Literal["sequence", "sequence-token"] = "sequence"
    epsilon: float = Field(3e-4, gt=0.0, lt=1.0)
    epsilon_high: float | None = Field(4e-4, gt=0.0)
    loss_agg: LossAgg = "seq-mean-token-mean"


rows_per_unit = grpo.rows_per_unit
select = grpo.select
prepare = grpo.prepare
loss = grpo.loss
learner_loss = grpo.learner_loss
models_needed = grpo.models_needed
schedule = grpo.schedule
