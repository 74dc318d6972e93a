"""REINFORCE++-baseline: group-mean baseline, then advantages whitened over every token of the batch; PPO-clip.

A_t = whiten(R − mean_group R) over all valid tokens of the iteration's batch (OpenRLHF
``reinforce_baseline`` / verl): the group mean removes the prompt's difficulty, the global
whitening (rather than GRPO's per-group std) keeps the scale from exploding on near-unanimous groups.
The loss is GRPO's (``policy_gradient.token_loss``), token-mean by default (OpenRLHF, verl).
Departures: OpenRLHF puts a k1 KL penalty in the per-token reward and whitens the cumulative
returns; here the KL is the optional β·k3 loss term (verl's ``use_kl_loss``), so without KL the
advantage is the same on every token of a response. Whitening uses the unbiased variance + 1e-8.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from itero.algorithms.policy_gradient import (
    LossAgg,
    PolicyGradientConfig,
    learner_loss_of,
    models_needed,
    schedule,
    select_all,
    token_loss,
    with_context,
)
from itero.batch import RolloutBatch
from itero.core.advantages import reinforce_pp_advantages
from itero.core.masked import aggregation_weights


class Config(PolicyGradientConfig):
    name: Literal["reinforce_pp"] = "reinforce_pp"
    loss_agg: LossAgg = "token-mean"
    max_response_length: int | None = Field(None, gt=0)  # seq-mean-token-sum-norm's constant; None = width


rows_per_unit = 1
select = select_all  # every row: after whitening even a unanimous group has a non-zero advantage


@with_context
def prepare(batch: RolloutBatch, cfg: Config) -> RolloutBatch:
    mask = batch.response_mask
    return batch.replace(
        advantages=reinforce_pp_advantages(batch.scores, batch.group_ids, mask),  # (B, R)
        token_weights=aggregation_weights(mask, cfg.loss_agg, cfg.max_response_length),
    )


# the shared clipped policy-gradient loss; its logits and temperature serve the entropy bonus only
loss = token_loss


learner_loss = learner_loss_of(loss)
__all__ = ["Config", "learner_loss", "loss", "models_needed", "prepare", "rows_per_unit", "schedule", "select"]
