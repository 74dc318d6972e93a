"""Credit assignment: token rewards, GAE, group baselines (GRPO / RLOO / REINFORCE++), VinePPO steps.

Group ids may be any integers, in any order: they are mapped to dense indices with ``torch.unique``
and every per-group statistic is a scatter (``index_add``), so nothing assumes contiguous groups.
"""

from __future__ import annotations

import torch
from torch import Tensor

from itero.core.masked import masked_whiten

GROUP_SCALES = ("group", "batch", "none")


def outcome_to_token_rewards(scores: Tensor, response_mask: Tensor) -> Tensor:
    """Put each row's score at its last valid response token (B,), (B, T) → (B, T); empty rows get 0."""
    mask = response_mask.bool()
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).max(-1).values  # (B,), −1 for an empty row
    rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    rewards.scatter_(1, last.clamp(min=0)[:, None], scores[:, None])
    return rewards * (last >= 0)[:, None].to(scores.dtype)


def gae(rewards: Tensor, values: Tensor, response_mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """GAE over response tokens: δ_t = r_t + γV_{t+1} − V_t, A_t = δ_t + γλA_{t+1}, G_t = A_t + V_t.

    All (B, T). V after the last valid token is 0. Masked positions are skipped: their reward and
    value are ignored and the recursion carries over them to the next valid token (verl), so a
    mask with holes (e.g. tool output inside a response) works. Outputs are 0 on masked positions.
    No whitening here: callers apply ``masked_whiten`` over the whole rollout batch.
    """
    m = response_mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])  # (B,)
    next_adv = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        next_value = torch.where(m[:, t] > 0, values[:, t], next_value)
        next_adv = torch.where(m[:, t] > 0, adv, next_adv)
        advantages[:, t] = adv * m[:, t]
    returns = (advantages + values) * m
    return advantages, returns


def _groups(group_ids: Tensor) -> tuple[Tensor, int, Tensor]:
    """Dense group index (B,), number of groups G, group sizes (G,) float."""
    _, index, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    return index, counts.numel(), counts.to(torch.float64)


def _group_sum(x: Tensor, index: Tensor, n_groups: int) -> Tensor:
    return torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, index, x)


def _group_mean(scores: Tensor, index: Tensor, n_groups: int, counts: Tensor) -> Tensor:
    return _group_sum(scores, index, n_groups) / counts.to(scores.dtype)  # (G,)


def group_normalized_advantages(scores: Tensor, group_ids: Tensor, scale: str = "group", eps: float = 1e-4) -> Tensor:
    """GRPO: A_i = (R_i − mean_group(R)) / (std + ε) (TRL). (B,) → (B,)

    ``scale``: "group" = unbiased std within the group, "batch" = unbiased std of all scores,
    "none" = no division (Dr.GRPO). A group of one has std 0 (not NaN) and advantage 0.
    """
    if scale not in GROUP_SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; choose one of {', '.join(GROUP_SCALES)}")
    index, G, counts = _groups(group_ids)
    centred = scores - _group_mean(scores, index, G, counts)[index]
    if scale == "none":
        return centred
    if scale == "batch":
        std = scores.std() if scores.numel() > 1 else scores.new_zeros(())
    else:
        var = _group_sum(centred**2, index, G) / (counts - 1).clamp(min=1).to(scores.dtype)
        std = var.sqrt()[index]
    return centred / (std + eps)


def leave_one_out_advantages(scores: Tensor, group_ids: Tensor) -> Tensor:
    """RLOO: A_i = R_i − (Σ_j R_j − R_i)/(k − 1) over the k rows of i's group. (B,) → (B,)

    A group of one has no baseline; its advantage is 0 (TRL requires k ≥ 2 instead).
    """
    index, G, counts = _groups(group_ids)
    k = counts.to(scores.dtype)[index]
    baseline = (_group_sum(scores, index, G)[index] - scores) / (k - 1).clamp(min=1)
    return torch.where(k > 1, scores - baseline, torch.zeros_like(scores))


def reinforce_pp_advantages(scores: Tensor, group_ids: Tensor, response_mask: Tensor) -> Tensor:
    """REINFORCE++-baseline: R − mean_group(R) on every valid token, then whitened over all valid tokens.

    (B,), (B,), (B, T) → (B, T). Whitening is ``masked_whiten`` (unbiased variance, +1e-8), where
    OpenRLHF uses the biased variance clamped at 1e-8. KL-in-reward is left to the caller.
    """
    centred = group_normalized_advantages(scores, group_ids, scale="none")
    mask = response_mask.to(scores.dtype)
    return masked_whiten(centred[:, None] * mask, mask)


def step_advantages_from_mc_values(step_rewards: Tensor, values: Tensor, step_mask: Tensor | None = None) -> Tensor:
    """VinePPO: A_i = r_i + V̂(s_{i+1}) − V̂(s_i), V̂ after the last step = 0, γ = 1.

    step_rewards, values (B, S); ``step_mask`` (B, S) bool marks the steps of each row (right-padded;
    default: all). A NaN in ``values`` at a valid step means "not estimated" (VinePPO's step cap):
    it is back-filled as V̂(s_i) = r_i + V̂(s_{i+1}), which gives that step advantage 0.
    Returns (B, S), 0 on padded steps.
    """
    mask = torch.ones_like(values, dtype=torch.bool) if step_mask is None else step_mask.bool()
    values = torch.where(mask, values, torch.zeros_like(values))
    rewards = torch.where(mask, step_rewards, torch.zeros_like(step_rewards))
    if torch.isnan(values).any():
        filled = values.clone()
        after = torch.zeros_like(values[:, 0])  # V̂(s_{i+1}), 0 past the end
        for i in reversed(range(values.shape[1])):
            filled[:, i] = torch.where(torch.isnan(values[:, i]), rewards[:, i] + after, values[:, i])
            after = filled[:, i]
        values = filled
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # padded steps hold 0
    return (rewards + next_values - values) * mask.to(values.dtype)


def broadcast_step_advantages(step_adv: Tensor, token_step_index: Tensor, response_mask: Tensor) -> Tensor:
    """Token t gets the advantage of the step its first character lies in. (B, S), (B, T) long, (B, T) → (B, T).

    ``token_step_index`` may hold anything (e.g. −1) on masked positions.
    """
    picked = step_adv.gather(1, token_step_index.long().clamp(0, step_adv.shape[1] - 1))
    return picked * response_mask.to(step_adv.dtype)


def scale_negative_advantages(advantages: Tensor, weight: float) -> Tensor:
    """A where A ≥ 0, weight·A where A < 0: 0 keeps only the reinforcement of better-than-baseline
    samples (positive-sample reinforcement), 1 is the algorithm unchanged."""
    return torch.where(advantages < 0, advantages * weight, advantages)


def _group_spread(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """max − min of the scores of each group (G,), and the dense group index of each row (B,)."""
    index, G, _ = _groups(group_ids)
    hi = torch.full((G,), -torch.inf, dtype=scores.dtype, device=scores.device).scatter_reduce(0, index, scores, "amax")
    lo = torch.full((G,), torch.inf, dtype=scores.dtype, device=scores.device).scatter_reduce(0, index, scores, "amin")
    return hi - lo, index


def zero_variance_group_fraction(scores: Tensor, group_ids: Tensor) -> float:
    """Fraction of groups whose scores are all equal (no learning signal for group baselines)."""
    spread, _ = _group_spread(scores, group_ids)
    return (spread == 0).float().mean().item()


def in_varied_group(scores: Tensor, group_ids: Tensor) -> Tensor:
    """(B,) bool: True where the row's group has at least two different scores (DAPO's dynamic-sampling filter)."""
    spread, index = _group_spread(scores, group_ids)
    return (spread > 0)[index]
