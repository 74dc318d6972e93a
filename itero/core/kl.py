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


def mean_sequence_kl(
    logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, kind: str = "k1", clamp: float | None = None
) -> float:
    """The batch's KL as the adaptive controller reads it (verl's ``apply_kl_penalty``): the token
    mean of k_t over each response (B, T), averaged over the B responses; an empty response counts 0."""
    m = mask.to(torch.float32)
    per_token = kl_estimate(logprobs, ref_logprobs, kind, clamp) * m
    per_sequence = per_token.sum(-1) / m.sum(-1).clamp(min=1.0)  # (B,)
    return float(per_sequence.mean())


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019; TRL's and OpenRLHF's ``AdaptiveKLController``).

    After an iteration whose measured KL(π‖π_ref) was ``current`` over ``n_steps`` samples:
    e = clip(current / target − 1, −0.2, 0.2) and β ← β·(1 + e·n_steps / horizon). A KL above the
    target raises β, one below lowers it, by at most 20 % of n_steps / horizon per update.
    The state is three floats (``state_dict``), so a resumed run continues with the same β.
    """

    def __init__(self, init_coef: float, target: float, horizon: float):
        if not (init_coef >= 0 and target > 0 and horizon > 0):
            raise ValueError(f"need init_coef ≥ 0, target > 0, horizon > 0; got {init_coef}, {target}, {horizon}")
        self.value, self.target, self.horizon = float(init_coef), float(target), float(horizon)

    def update(self, current: float, n_steps: int) -> float:
        """β after an iteration of ``n_steps`` samples whose mean KL was ``current``; returns the new β."""
        error = min(max(current / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value, self.target, self.horizon = (float(state[k]) for k in ("value", "target", "horizon"))
