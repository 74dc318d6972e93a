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
    return clipped_pg_loss_from_log_ratio(logprobs - old_logprobs, advantages, eps_low, eps_high, dual_clip)


def clipped_pg_loss_from_log_ratio(
    log_ratio: Tensor,
    advantages: Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`clipped_pg_loss` of a given log-ratio (B, T): a token's, or GSPO's sequence log-ratio."""
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    ratio = torch.exp(log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO))
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


def sequence_log_ratio(
    logprobs: Tensor, old_logprobs: Tensor, response_mask: Tensor, token_gradient: bool = False
) -> Tensor:
    """GSPO's log s_i = mean_t (log π_θ(y_t) − log π_old(y_t)) over each response's tokens, on every token (B, T).

    ``token_gradient`` (GSPO-token): log s_{i,t} = sg[log s_i] + log π_θ(y_t) − sg[log π_θ(y_t)], the same
    value, but each token's gradient is its own ∇log π_θ(y_t) scaled by s_i, so a per-token advantage
    weights its own token. With one advantage per response both give GSPO's gradient under a
    per-sequence token mean. logprobs, old_logprobs, response_mask (B, T).
    """
    mask = response_mask.to(logprobs.dtype)
    seq = ((logprobs - old_logprobs) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    if token_gradient:
        return seq.detach() + logprobs - logprobs.detach()
    return seq.expand_as(logprobs)


def cispo_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, eps_low: float | None, eps_high: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (MiniMax-M1): ℓ_t = −sg[clip(ρ_t, 1−ε_low, 1+ε_high)]·A_t·log π_θ(y_t).

    The weight is a constant, so every token keeps the gradient −w_t·A_t·∇log π_θ(y_t): clipping bounds
    the weight instead of dropping the token, as PPO's clip does. ``eps_low`` None: no lower bound (as
    MiniMax ran it). logprobs, old_logprobs (B, T); advantages (B, T) or (B, 1). Returns the per-token
    loss (B, T) and detached stats ``ratio`` and ``clipped`` (True where the weight was clipped).
    """
    ratio = torch.exp((logprobs - old_logprobs).detach().clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO))
    low = None if eps_low is None else 1.0 - eps_low
    weight = ratio.clamp(low, 1.0 + eps_high)
    loss = -weight * advantages * logprobs
    return loss, {"ratio": ratio, "clipped": weight != ratio}


def entropy_bonus_loss(entropy: Tensor, coef: float) -> Tensor:
    """−coef·H_t per token (B, T): subtracting the entropy rewards keeping the distribution spread (verl's
    ``entropy_coeff``). ``entropy`` (B, T) must carry its gradient (``core.logprobs.entropy_from_logits``)."""
    return -coef * entropy


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, eps_v: float) -> Tensor:
    """½·max((V − G)², (clip(V, V_old − ε_v, V_old + ε_v) − G)²), per token (B, T)."""
    v_clipped = old_values + (values - old_values).clamp(-eps_v, eps_v)
    return 0.5 * torch.maximum((values - returns) ** 2, (v_clipped - returns) ** 2)


def nll_loss(logprobs: Tensor) -> Tensor:
    """−log π_θ(y_t), per token (B, T). Weighting picks batch token-mean (RLHFlow) or per-sequence mean."""
    return -logprobs
