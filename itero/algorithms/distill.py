"""On-policy distillation (Thinking Machines, 2025; Agarwal et al. GKD 2024; Gu et al. MiniLLM 2024): the
student samples, a frozen teacher scores the same tokens, the student descends the per-token reverse KL.

Per token of the student's own response, with π_old the student that sampled and π_T the teacher:
    k_t = log π_old(y_t) − log π_T(y_t)      (the sampled-token estimate of KL(π_student ‖ π_T) at s_t)
    A_t = −c·k_t                             (``kl_coef`` c; ``kl_discount`` γ > 0: A_t = Σ_{t'≥t} γ^{t'−t}·(−c·k_t'))
and the loss is Tinker's importance-sampling policy gradient ℓ_t = −ρ_t·A_t, ρ_t = π_θ(y_t)/π_old(y_t),
so on-policy ∇ℓ = Σ_t c·k_t·∇log π_θ(y_t): each token is pushed down by how much more likely the
student finds it than the teacher. This is ``incorporate_kl_penalty`` in tinker-cookbook's
``tinker_cookbook/distillation/train_on_policy.py`` (``kl_penalty_coef`` 1, ``kl_discount_factor`` 0,
``loss_fn="importance_sampling"``) with the student's log-probs from the learner instead of the sampler.

``signal: teacher_likelihood`` is the sequence-reward form (slime's first OPD example scored each sample
by the teacher's log-probs of it): R_i = the teacher's mean (``likelihood_agg: sum``: summed)
log-likelihood of response i, centred on its prompt's group, on every token of the response.
``task_reward_weight`` w adds w·(score − group mean), the task's reward as Tinker's env advantage.
Departures: Tinker sums the loss over tokens; itero aggregates by ``loss_agg`` (token-mean by default),
which only rescales the learning rate. The teacher must share the student's tokenizer (checked in preflight).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from itero.algorithms import policy_gradient
from itero.algorithms.base import Context
from itero.algorithms.policy_gradient import (
    LossAgg,
    PolicyGradientConfig,
    learner_loss_of,
    schedule,
    select_all,
    token_loss,
)
from itero.batch import RolloutBatch
from itero.core.masked import aggregation_weights, masked_mean, masked_sum


class Config(PolicyGradientConfig):
    name: Literal["distill"] = "distill"
    teacher_path: str  # the frozen teacher: a model folder or hub name sharing the student's tokenizer
    signal: Literal["reverse_kl", "teacher_likelihood"] = "reverse_kl"
    kl_coef: float = Field(1.0, gt=0.0)  # Tinker's kl_penalty_coef
    kl_discount: float = Field(0.0, ge=0.0, le=1.0)  # Tinker's kl_discount_factor: 0 = each token its own KL
    likelihood_agg: Literal["mean", "sum"] = "mean"  # teacher_likelihood: R_i over the response's tokens
    task_reward_weight: float = Field(0.0, ge=0.0)  # adds w·(score − group mean) to every token's advantage
    # importance_sampling: −ρ_t·A_t unclipped (Tinker's default); ppo: the clipped loss with ε
    loss: Literal["importance_sampling", "ppo"] = "importance_sampling"
    loss_agg: LossAgg = "token-mean"

    min_samples_per_prompt: ClassVar[int] = 1  # the teacher is the baseline; no group needed

    def policy_terms(self, batch: RolloutBatch, logprobs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.loss == "ppo":
            return super().policy_terms(batch, logprobs)
        return importance_sampling_loss(logprobs, batch.old_logprobs, batch.advantages)


rows_per_unit = 1
select = select_all


def importance_sampling_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor) -> tuple[Tensor, dict]:
    """Tinker's ``importance_sampling`` loss per token: −exp(log π_θ − log π_old)·A, (B, R); never clipped."""
    ratio = torch.exp(logprobs - old_logprobs)
    return -ratio * advantages, {"ratio": ratio.detach(), "clipped": torch.zeros_like(ratio, dtype=torch.bool)}


def reverse_kl(student_logprobs: Tensor, teacher_logprobs: Tensor, response_mask: Tensor) -> Tensor:
    """(B, R) k_t = log π_student(y_t) − log π_T(y_t) on the response tokens, 0 elsewhere."""
    return (student_logprobs - teacher_logprobs) * response_mask


def discounted_future_sum(x: Tensor, gamma: float) -> Tensor:
    """(B, R) Σ_{t'≥t} γ^{t'−t}·x_t' along each row (Tinker's ``discounted_future_sum_vectorized``);
    γ = 0 returns x. Padding must be 0 in ``x``: it adds nothing to the earlier tokens."""
    if gamma == 0.0:
        return x
    R = x.shape[1]
    steps = torch.arange(R, dtype=x.dtype, device=x.device)
    ahead = steps[None, :] - steps[:, None]  # (R, R): t' − t
    weights = torch.where(ahead >= 0, torch.tensor(gamma, dtype=x.dtype) ** ahead.clamp(min=0), 0.0)
    return x @ weights.T


def reverse_kl_advantages(
    student_logprobs: Tensor, teacher_logprobs: Tensor, response_mask: Tensor, coef: float, discount: float
) -> Tensor:
    """(B, R) A_t = −c·k_t, summed over the future with γ = ``discount`` when it is > 0."""
    k = reverse_kl(student_logprobs, teacher_logprobs, response_mask)
    return discounted_future_sum(-coef * k, discount) * response_mask


def teacher_likelihood(teacher_logprobs: Tensor, response_mask: Tensor, agg: str) -> Tensor:
    """(B,) R_i = mean or sum over response i's tokens of log π_T(y_t)."""
    if agg == "sum":
        return masked_sum(teacher_logprobs, response_mask, dim=-1)
    return masked_mean(teacher_logprobs, response_mask, dim=-1)


def group_centred(scores: Tensor, group_ids: Tensor) -> Tensor:
    """(B,) score − its prompt group's mean (0 for a group of one): Tinker's ``compute_advantages``."""
    _, index, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, index, scores.to(torch.float64))
    return scores - (sums / counts)[index].to(scores.dtype)


def distill_advantages(batch: RolloutBatch, teacher_logprobs: Tensor, cfg: Config) -> Tensor:
    """(B, R) the advantages of ``cfg.signal`` (+ the task reward's share), 0 on padding."""
    mask = batch.response_mask
    if cfg.signal == "reverse_kl":
        adv = reverse_kl_advantages(batch.old_logprobs, teacher_logprobs, mask, cfg.kl_coef, cfg.kl_discount)
    else:
        seq = teacher_likelihood(teacher_logprobs, mask, cfg.likelihood_agg)
        adv = cfg.kl_coef * group_centred(seq, batch.group_ids)[:, None] * mask
    if cfg.task_reward_weight > 0:
        adv = adv + cfg.task_reward_weight * group_centred(batch.scores.float(), batch.group_ids)[:, None] * mask
    return adv


def prepare(batch: RolloutBatch, cfg: Config, ctx: Context | None = None) -> RolloutBatch:
    """Pulls π_old and the teacher's log-probs of the same tokens from ``ctx`` and sets the advantages;
    prepare.json gets the batch's token-mean reverse KL to the teacher (``teacher_kl``)."""
    if ctx is None:
        raise ValueError("distill's prepare pulls the teacher's log-probs: it needs the prepare context")
    batch = policy_gradient.pull_logprobs(batch, cfg, ctx)
    teacher = ctx.logprobs("teacher")  # (B, R), the same tokens scored by the frozen teacher
    mask = batch.response_mask
    ctx.stats["teacher_kl"] = float(masked_mean(reverse_kl(batch.old_logprobs, teacher, mask), mask))
    ctx.stats["teacher_logprob"] = float(masked_mean(teacher, mask))
    return batch.replace(
        advantages=distill_advantages(batch, teacher, cfg),
        token_weights=aggregation_weights(mask, cfg.loss_agg),
    )


def models_needed(cfg: Config) -> dict[str, str]:
    """The policy-gradient models (π_old; π_ref when β > 0) and the frozen teacher."""
    return {**policy_gradient.models_needed(cfg), "teacher": cfg.teacher_path}


loss = token_loss
learner_loss = learner_loss_of(loss)
__all__ = ["Config", "learner_loss", "loss", "models_needed", "prepare", "rows_per_unit", "schedule", "select"]
