"""DAPO (Yu et al., 2025): GRPO with clip-higher, token-mean, dynamic sampling and overlong reward shaping.

Loss: PPO-clip on ρ_t with [1 − ε_low, 1 + ε_high] = [0.8, 1.28], token-mean over the batch (1/Σ|o_i|),
A_i group-normalised, no KL (β 0, no reference model). Dynamic sampling: the generate stage keeps only
groups whose correct flags differ (0 < #correct < G) and samples further prompts until the batch holds
``loop.prompts_per_iteration`` groups (``stages/dynamic_sampling.py``, verl's ``filter_groups`` with
metric ``acc``). Overlong punishment (eq. 13): R_i + penalty_factor·R_len(|y_i|) with L_max =
``max_response_length`` and L_cache = ``overlong_buffer`` (``core/overlong.py``), before the advantages.
Departures: the advantage divides by std + 1e-4 (TRL) where verl adds 1e-6; the surplus of the last round
is cut at whole groups, as verl's batch[:train_batch_size·n]; at the round cap verl raises, which is
the default here (``train_when_capped`` trains on the groups kept instead).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import Field, model_validator

from itero.algorithms import grpo, policy_gradient
from itero.algorithms.base import Context, DynamicSampling, Schedule
from itero.algorithms.policy_gradient import LossAgg
from itero.batch import RolloutBatch
from itero.core.advantages import outcome_to_token_rewards
from itero.core.overlong import overlong_penalty


class Config(grpo.Config):
    name: Literal["dapo"] = "dapo"
    epsilon: float = Field(0.2, gt=0.0, lt=1.0)
    epsilon_high: float | None = Field(0.28, gt=0.0)
    loss_agg: LossAgg = "token-mean"
    dynamic_sampling: bool = True
    max_generation_rounds: int = Field(10, ge=0)  # verl's max_num_gen_batches (DAPO's script: 10); 0 = no cap
    prompts_per_round: int | None = Field(None, gt=0)  # verl's gen_batch_size; None = loop.prompts_per_iteration
    train_when_capped: bool = False  # at the cap with too few groups: train on them (verl: stop with an error)
    # L_max is max_response_length (set it to generation.max_new_tokens); L_cache the buffer; None = no shaping
    overlong_buffer: int | None = Field(None, gt=0)
    overlong_penalty_factor: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _overlong_needs_a_length(self):
        if self.overlong_buffer is not None and (
            self.max_response_length is None or self.overlong_buffer > self.max_response_length
        ):
            raise ValueError(
                "overlong_buffer needs max_response_length (L_max, normally generation.max_new_tokens) "
                f"at least as large: got buffer {self.overlong_buffer}, max_response_length {self.max_response_length}"
            )
        return self


rows_per_unit = grpo.rows_per_unit
select = grpo.select
loss = grpo.loss
learner_loss = grpo.learner_loss
models_needed = grpo.models_needed


def schedule(cfg: Config) -> Schedule:
    base = policy_gradient.schedule(cfg)
    if not cfg.dynamic_sampling:
        return base
    spec = DynamicSampling(cfg.max_generation_rounds, cfg.prompts_per_round, cfg.train_when_capped)
    return dataclasses.replace(base, dynamic_sampling=spec)


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    """GRPO's prepare on the scores plus the overlong penalty (the penalised scores are what trains and is logged)."""
    if cfg.overlong_buffer is not None:
        penalty = overlong_penalty(
            batch.response_lengths, cfg.max_response_length, cfg.overlong_buffer, cfg.overlong_penalty_factor
        )
        scores = batch.scores + penalty
        batch = batch.replace(scores=scores, rewards=outcome_to_token_rewards(scores, batch.response_mask))
        if ctx is not None:
            ctx.stats.update(
                overlong_penalty_mean=float(penalty.mean()), overlong_fraction=float((penalty < 0).float().mean())
            )
    return grpo.prepare(batch, cfg, ctx)
