"""Masked reductions, whitening and loss-aggregation weights over (B, T) tensors."""

from __future__ import annotations

import torch
from torch import Tensor

# "dr-grpo" and "seq-mean-token-sum-norm" are one mode: TRL's dr_grpo, Σ / (B · L). verl's mode of the
# latter name sums its sequences instead of averaging them, B times larger per micro-batch of B.
AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "dr-grpo", "seq-mean-token-sum-norm", "seq-mean-token-sum")


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is set; 0 where the mask is empty (never NaN)."""
    mask = mask.to(x.dtype)
    return masked_sum(x, mask, dim) / mask.sum(dim).clamp(min=1.0)


class MeanMetric(float):
    """A logged mean that carries how many entries it averages (``weight``), so the learner combines the
    means of micro-batches and ranks into the mean over all their entries. A plain float metric is
    weighted by its micro-batch's share of the units instead, which is exact for per-sequence or
    per-pair metrics but not for token means over micro-batches of unequal token counts."""

    weight: float

    def __new__(cls, value: float, weight: float) -> MeanMetric:
        metric = super().__new__(cls, value)
        metric.weight = float(weight)
        return metric


def mean_metric(x: Tensor, mask: Tensor) -> MeanMetric:
    """``masked_mean(x, mask)`` as a logged metric over the mask's entries."""
    return MeanMetric(float(masked_mean(x.detach().float(), mask)), float(mask.sum()))


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_sum((x - mean) ** 2, mask) / n.clamp(min=1.0)
    if unbiased:
        var = var * n / (n - 1).clamp(min=1.0)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x − mean) / std over the masked entries of the whole tensor; masked-out entries become 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def aggregation_weights(response_mask: Tensor, mode: str, max_length: int | None = None) -> Tensor:
    """Per-token weights w (B, T) so that Σ w·loss_t is the batch loss under ``mode``.

    - token-mean: every valid token of the batch counts the same (DAPO).
    - seq-mean-token-mean: mean over each sequence's tokens, then over sequences (original GRPO).
    - dr-grpo (alias seq-mean-token-sum-norm): Σ loss / (B · max_length), a constant normaliser, TRL's
      dr_grpo; max_length defaults to the width T. verl's seq-mean-token-sum-norm is Σ loss / max_length
      per micro-batch (sequences summed, not averaged): B times this for a micro-batch of B.
    - seq-mean-token-sum: Σ_t loss per sequence, then mean over sequences (sequence NLL).
    Computing weights once over the whole batch makes any micro-batch split give the same gradient.
    """
    m = response_mask.to(torch.float32)
    B = m.shape[0]
    if mode == "token-mean":
        return m / m.sum().clamp(min=1.0)
    if mode == "seq-mean-token-mean":
        return m / (m.sum(-1, keepdim=True).clamp(min=1.0) * B)
    if mode in ("dr-grpo", "seq-mean-token-sum-norm"):
        return m / (B * (max_length or m.shape[1]))
    if mode == "seq-mean-token-sum":
        return m / B
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {', '.join(AGGREGATIONS)}")


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 − Var(G − V) / Var(G) over valid tokens: 1 = the critic predicts the returns, ≤ 0 = no better than a constant."""
    var_returns = masked_var(returns, mask)
    if float(var_returns) == 0.0:
        return float("nan")
    return float(1.0 - masked_var(returns - values, mask) / var_returns)
