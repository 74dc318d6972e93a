"""Truncated importance sampling (TIS) for the rollout-engine / learner mismatch.

An inference engine (vLLM: other kernels, bf16, batch-dependent reductions) samples from π_sampler,
which is not exactly the learner's π_old even with the same weights, so "on-policy" updates are
slightly off-policy. TIS re-weights each token's policy-gradient term by the importance ratio,
truncated from above so that rare tokens the engine under-weighted cannot blow up the gradient:

    w_t = min(π_old(y_t) / π_sampler(y_t), C)

(Yao et al., "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training", 2025; verl's
``rollout_is`` with token-level truncation). The weights are constants: both log-probs come from
no-grad passes, so the gradient flows only through the policy-gradient loss they multiply.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def tis_weights(old_logprobs: Tensor, sampler_logprobs: Tensor, response_mask: Tensor, cap: float) -> Tensor:
    """min(exp(old − sampler), cap) on response tokens and 0 on padding. All inputs (B, R); returns (B, R) float.

    The log-ratio is clamped at log(cap) before the exponential: the same value as min(exp(·), cap)
    without overflowing to inf when the engine gave a token almost no probability. Padding gets 0,
    not 1, so a weight can never carry a padded position's garbage log-probs into a loss.
    """
    if not cap > 0:
        raise ValueError(f"the TIS cap must be > 0 (typically 2), got {cap}")
    if old_logprobs.shape != sampler_logprobs.shape or old_logprobs.shape != response_mask.shape:
        raise ValueError(
            f"old_logprobs {tuple(old_logprobs.shape)}, sampler_logprobs {tuple(sampler_logprobs.shape)} and "
            f"response_mask {tuple(response_mask.shape)} must have the same (B, R) shape"
        )
    log_ratio = (old_logprobs.float() - sampler_logprobs.float()).clamp(max=math.log(cap))
    weights = log_ratio.exp()
    return torch.where(response_mask.bool(), weights, torch.zeros_like(weights)).detach()
