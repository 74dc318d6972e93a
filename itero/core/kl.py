"""Per-token KL estimators between π_θ (or π_old) and π_ref, and KL reward shaping.

With x = log π(y_t) − log π_ref(y_t) for y_t ~ π:
  k1 = x                    unbiased, can be negative per token
  k2 = ½·x²                 biased, low variance, ≥ 0
  k3 = exp(−x) + x − 1      unbiased, ≥ 0 (Schulman's estimator; GRPO's KL term)

Clamp: the estimate is clamped to [−c, c] (OpenRLHF, verl). Since k2, k3 ≥ 0 this equals VinePPO's
[0, c] for k3, so one symmetric parameter reproduces both sources; only k1 feels the lower bound.
"""

from __future__ import annotations

import torch
from torch import Tensor

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k1", clamp: float | None = None) -> Tensor:
    """Per-token KL estimate (B, T) from sampled-token log-probs (B, T); see the module docstring."""
    dtype = torch.promote_types(logprobs.dtype, torch.float32)  # bf16 log-probs: subtract in float32
    x = logprobs.to(dtype) - ref_logprobs.to(dtype)
    if kind == "k1":
        k = x
    elif kind == "k2":
        k = 0.5 * x**2
    elif kind == "k3":
        k = torch.expm1(-x) + x  # = exp(−x) − 1 + x, accurate near x = 0
    else:
        raise ValueError(f"unknown KL estimator {kind!r}; choose one of {', '.join(KL_ESTIMATORS)}")
    return k if clamp is None else k.clamp(-clamp, clamp)


def kl_reward(
    logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, coef: float, kind: str = "k1", clamp: float | None = None
) -> Tensor:
    """Per-token reward term −coef·k_t·m_t (B, T), added to the outcome reward."""
    k = kl_estimate(logprobs, ref_logprobs, kind, clamp)
    return -coef * k * mask.to(k.dtype)
