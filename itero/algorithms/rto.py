"""RTO: PPO whose per-token reward is a DPO model's implicit reward plus the outcome score.

r_t = clamp(β₁·(log π_dpo(y_t) − log π_ref(y_t)), ±c) − β_kl·(log π_old(y_t) − log π_ref(y_t))
      + 1[t = last]·clamp(R, ±reward_clip),
then GAE, whitening, PPO-clip and the clipped value loss exactly as ``ppo``. π_ref is the initial
(SFT) model; π_dpo is loaded frozen from ``dpo_model_path`` (a folder written by an itero ``dpo``
run: ``runs/<name>/iter_<k>/checkpoint``), or trained first in the same run: ``dpo_iterations``
iterations of iterative DPO from the initial policy (the ``dpo`` section: a ``dpo`` algorithm config,
every loss option of it; and ``dpo_lr``), in ``<run>/dpo_model/``, before the first RTO iteration.
Order as RTO's ``compute_reward``: scale by β₁, then clamp (only when c > 0). Defaults: RTO's script
(β₁ 0.05, c 0.05, β_kl 0.01 as k1 in the reward, λ 0.95); the critic starts from the reward model
when ``value_model: reward_model`` (RTO) or from the policy.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from pydantic import Field, model_validator
from torch import Tensor

from itero.algorithms import ppo
from itero.algorithms.base import Context, PreRun, Schedule
from itero.algorithms.dpo import Config as DPOConfig
from itero.algorithms.policy_gradient import apply_negative_weight
from itero.batch import RolloutBatch

rows_per_unit = 1
select = ppo.select
loss = ppo.loss
value_loss = ppo.value_loss
learner_loss = ppo.learner_loss


class Config(ppo.Config):
    name: Literal["rto"] = "rto"  # type: ignore[assignment]
    dpo_model_path: str = ""  # frozen DPO policy, or
    dpo_iterations: int = Field(0, ge=0)  # > 0: train it first, in this run (iterative DPO from the initial policy)
    # the iterative DPO that trains the DPO model in the run (its loss, β, NLL weight, pairing, ...)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    dpo_lr: float | None = Field(None, gt=0.0)  # None: training.lr
    dpo_reward_scale: float = Field(0.05, gt=0.0)  # β₁
    dpo_reward_clip: float = Field(0.05, ge=0.0)  # c; 0 = no clamp
    kl_mode: Literal["reward"] = "reward"  # RTO's KL is a reward term  # type: ignore[assignment]
    reference: Literal["initial"] = "initial"  # the DPO reward is relative to the SFT model  # type: ignore[assignment]

    needs_dpo_model: ClassVar[bool] = True

    @property
    def needs_reference(self) -> bool:
        return True  # the DPO token reward needs log π_ref even when β_kl = 0

    @property
    def min_samples_per_prompt(self) -> int:  # type: ignore[override]
        return 2 if self.dpo_iterations else 1  # training the DPO model needs pairs

    @model_validator(mode="after")
    def _has_dpo_model(self):
        if not self.dpo_model_path and not self.dpo_iterations:
            raise ValueError(
                "algorithm=rto needs a DPO model: algorithm.dpo_model_path (a DPO policy folder, e.g. "
                "runs/<dpo-run>/iter_1/checkpoint from `itero train configs/iterative_dpo.yaml`) or "
                "algorithm.dpo_iterations=N to train it first in this run"
            )
        if self.dpo_model_path and self.dpo_iterations:
            raise ValueError(
                f"algorithm.dpo_model_path={self.dpo_model_path!r} and algorithm.dpo_iterations={self.dpo_iterations}: "
                "give one DPO model, a folder or the iterations that train it"
            )
        return self


def dpo_token_rewards(dpo_logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, scale: float, clip: float) -> Tensor:
    """clamp(β₁·(log π_dpo − log π_ref), ±c)·m per token (B, R); c = 0 leaves it unclamped."""
    r = scale * (dpo_logprobs - ref_logprobs)
    if clip > 0:
        r = r.clamp(-clip, clip)
    return r * mask.to(r.dtype)


def models_needed(cfg: Config) -> dict[str, str]:
    """PPO's models, π_ref = the initial policy, and the DPO model: the folder given, or the one the
    pre-run of ``schedule`` writes in this run."""
    dpo_model = cfg.dpo_model_path or f"run:dpo_model/iter_{cfg.dpo_iterations}/checkpoint"
    return {**ppo.models_needed(cfg), "reference": "initial", "dpo_model": dpo_model}


def schedule(cfg: Config) -> Schedule:
    """PPO's, after an iterative-DPO run in ``<run>/dpo_model/`` when the DPO model is trained in the run."""
    pre_runs = ()
    if cfg.dpo_iterations:
        pre_runs = (PreRun("dpo_model", cfg.dpo, cfg.dpo_iterations, cfg.dpo_lr),)
    return dataclasses.replace(ppo.schedule(cfg), pre_runs=pre_runs)


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    if ctx is not None:
        batch = ppo.pull_inputs(batch, cfg, ctx).replace(dpo_logprobs=ctx.logprobs("dpo_model"))
        return apply_negative_weight(prepare(batch, cfg), cfg)
    dpo = dpo_token_rewards(
        batch.dpo_logprobs, batch.ref_logprobs, batch.response_mask, cfg.dpo_reward_scale, cfg.dpo_reward_clip
    )
    return ppo.prepare(batch, cfg, rewards=ppo.token_rewards(batch, cfg) + dpo)
