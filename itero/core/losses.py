"""Per-token policy-gradient, value and NLL losses (docs/formulas.md).

Nothing here reduces over tokens: callers multiply the (B, T) per-token loss by weights from
``itero.core.masked.aggregation_weights`` (which carry the response mask) and sum, so the same
function serves token-mean, per-sequence-mean and Dr.GRPO's constant normaliser.
"""

from __future__ import annotations

import torch
from torch import Tensor

# exp(20) ≈ 5e8: far past any clip range, yet a stale or off-policy token cannot overflow to inf (verl).
_MAX_LOG_RATIO = 20.0


def clipped_pg_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip: ℓ_t = max(−A_t·ρ_t, −A_t·clip(ρ_t, 1−ε_low, 1+ε_high)), ρ_t = exp(logp − logp_old).

    logprobs, old_logprobs (B, T); advantages (B, T), or (B, 1) for one advantage per sequence.
    Asymmetric ε is DAPO's clip-higher. ``dual_clip`` = c > 1 (Dual-clip PPO, verl): for A_t < 0
    the loss is further capped at −A_t·c, so a huge ratio on a negative-advantage token cannot blow up.
    The log-ratio is clamped to ±20 before exp (verl), which only matters for absurd ratios.

    Returns the per-token loss (B, T) and detached per-token stats: ``ratio`` (B, T),
    ``clipped`` (B, T) bool, True where the clipped branch is the one taken (its gradient is 0),
    ``dual_clipped`` (B, T) bool, True where the dual-clip cap is taken.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    log_ratio = (logprobs - old_logprobs).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = torch.maximum(unclipped, clipped)
    is_clipped = clipped > unclipped
    is_dual = torch.zeros_like(is_clipped)
    if dual_clip is not None:
        cap = -advantages * dual_clip
        is_dual = (advantages < 0) & (loss > cap)
        loss = torch.where(is_dual, cap, loss)
    stats = {"ratio": ratio.detach(), "clipped": is_clipped.detach(), "dual_clipped": is_dual.detach()}
    return loss, stats


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, eps_v: float) -> Tensor:
    """½·max((V − G)², (clip(V, V_old − ε_v, V_old + ε_v) − G)²), per token (B, T)."""
    v_clipped = old_values + (values - old_values).clamp(-eps_v, eps_v)
    return 0.5 * torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)


def nll_loss(logprobs: Tensor) -> Tensor:
    """−log π_θ(y_t), per token (B, T). Weighting picks batch token-mean (RLHFlow) or per-sequence mean."""
    return -logprobs
